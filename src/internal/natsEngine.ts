/**
 * The Engine on NATS JetStream (servers 2.9 and later; only 2.9 features are used).
 *
 * - One stream per peer, `TETHER_OUT_<token>` on `tether.out.<token>`: limits retention, `max_msgs`,
 *   `max_bytes` (stored size), `discard: new` for rejectNew / `old` for dropOldest, `max_age` = maxAge + margin
 *   (the backstop), publishes with `Nats-Msg-Id` (dedup within `duplicate_window`).
 * - Acks: a durable pull consumer per holder revision, `ack_policy: all`; an ack also purges the stream
 *   below it, so the stream holds exactly the un-acked frames (what the bounds count). A new holder reads the
 *   previous consumer's ack floor and delivered sequence, creates its own consumer from the ack floor and
 *   flags what the previous one had delivered (`redelivered`), then deletes the old consumer.
 * - KV `tether_peers` (the directory), `tether_leases` (bucket TTL = the lease TTL; create / CAS update),
 *   `tether_inbound` (key → node, honoured only while `node.<id>` is in `tether_leases`), `tether_acks` (per peer,
 *   the last sequence acknowledged as written and the last handed to a holder, each recorded before it takes
 *   effect: the server persists a consumer's ack floor and delivered sequence lazily, and a kill -9 of it can roll
 *   them back, which would turn written frames into unflagged duplicates or into a false gap).
 * - Node requests on `tether.node.<id>`.
 * @internal
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  JetStreamApiError,
  jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import type { JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import type { KV } from "@nats-io/kv"
import { connect, headers } from "@nats-io/transport-node"
import type { NatsConnection } from "@nats-io/transport-node"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Engine from "../Engine.js"
import type * as NatsEngine from "../NatsEngine.js"
import { EngineError, EngineTag, NoResponder, nodeLease, PeerExists } from "./engine.js"

/** @internal */
export const defaults = {
  leaseTtl: 3000,
  ageMarginMillis: 1000,
  duplicateWindowMillis: 120_000,
  opTimeoutMillis: 5000,
  replicas: 1
} as const

/** A key as a subject token and stream-name suffix: `k<key>` when it is plain, else `x<hex of UTF-8>`. @internal */
export const token = (key: string): string =>
  /^[A-Za-z0-9_-]+$/.test(key) ? `k${key}` : `x${Buffer.from(key, "utf8").toString("hex")}`

/** Marks an append that retries one whose outcome was unknown (the server's dedup forgets across a restart). */
const retryHeader = "Tether-Retry"

/** The inverse of {@link token}. @internal */
export const untoken = (t: string): string =>
  t.startsWith("x") ? Buffer.from(t.slice(1), "hex").toString("utf8") : t.slice(1)

/** A peer's marks in `tether_acks`: the last sequence acked as written (`a`), the last handed to a holder (`d`). */
const readMarks = (s: string): { a: number; d: number } => {
  try {
    const v = JSON.parse(s) as { a?: unknown; d?: unknown }
    return { a: Number(v.a) || 0, d: Number(v.d) || 0 }
  } catch {
    return { a: 0, d: 0 }
  }
}

/** A holder's consumer is named after its lease revision and its node, so the next holder knows whom it follows. */
const consumerName = (revision: number, node: string) => `holder-${revision}-${token(node)}`
const consumerNode = (name: string): Option.Option<string> => {
  const m = /^holder-(\d+)-([kx][A-Za-z0-9_-]*)$/.exec(name)
  return m === null ? Option.none() : Option.some(untoken(m[2]!))
}

const streamOf = (key: string) => `TETHER_OUT_${token(key)}`
const subjectOf = (key: string) => `tether.out.${token(key)}`
const nanos = (ms: number) => Math.round(ms * 1_000_000)
/** Lease names (`out.<key>`, `node.<id>`) as KV keys. */
const leaseKey = (name: string) => {
  const dot = name.indexOf(".")
  return `${name.slice(0, dot)}.${token(name.slice(dot + 1))}`
}

const describe = (e: unknown) => (e instanceof Error ? e.message : String(e))
/** The server answered and said no (a JetStream API error) or could not be reached. */
const unavailable = (what: string) => (cause: unknown) =>
  new EngineError({
    reason: cause instanceof JetStreamApiError && !/no responders/i.test(describe(cause)) ? "Protocol" : "Unavailable",
    detail: `${what}: ${describe(cause)}`,
    cause
  })
const isNotFound = (e: unknown) => /not found/i.test(describe(e))

const peersBucket = "tether_peers"
const leasesBucket = "tether_leases"

/**
 * The keys of a KV bucket (those matching `filter`), each once, as of one moment: the subjects its stream holds
 * (one stream info request with a subjects filter, paged by the client; deleted keys included, as markers). Not
 * the client's `kv.keys()`: it lists with a consumer that also delivers what is written while it runs, so a key
 * updated during a listing came twice, and one updated faster than the listing read kept it from ever ending.
 */
const listKeys = (jsm: JetStreamManager, bucket: string, filter = ">"): Promise<Array<string>> =>
  jsm.streams.info(`KV_${bucket}`, { subjects_filter: `$KV.${bucket}.${filter}` }).then((info) => {
    const prefix = `$KV.${bucket}.`.length
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix))
  })

/** @internal */
export const make = (
  options: NatsEngine.Options
): Effect.Effect<Engine.Engine, EngineError, Scope.Scope> =>
  Effect.gen(function*() {
    const node = options.node
    const ttl = options.leaseTtl ?? defaults.leaseTtl
    const margin = options.ageMarginMillis ?? defaults.ageMarginMillis
    const opTimeout = options.timeoutMillis ?? defaults.opTimeoutMillis
    const replicas = options.replicas ?? defaults.replicas
    const nc: NatsConnection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          connect({
            servers: options.servers as Array<string>,
            name: `tether-${node}`,
            reconnect: true,
            maxReconnectAttempts: -1,
            reconnectTimeWait: 250,
            timeout: opTimeout
          }),
        catch: unavailable("connect")
      }),
      // drain (bounded), then close
      (c) =>
        Effect.promise(() => c.drain().catch(() => undefined)).pipe(
          Effect.timeout("2 seconds"),
          Effect.ignore,
          Effect.zipRight(Effect.promise(() => c.close().catch(() => undefined)))
        )
    )
    const js: JetStreamClient = jetstream(nc, { timeout: opTimeout })
    const jsm: JetStreamManager = yield* Effect.tryPromise({
      try: () => jetstreamManager(nc, { timeout: opTimeout }),
      catch: unavailable("jetstream")
    })
    const kvm = new Kvm(js)
    const bucket = (name: string, extra: { ttl?: number }) =>
      Effect.tryPromise({
        try: () => kvm.create(name, { history: 1, replicas, ...extra }),
        catch: unavailable(`kv ${name}`)
      })
    const peersKv: KV = yield* bucket(peersBucket, {})
    const leasesKv: KV = yield* bucket(leasesBucket, { ttl })
    const inboundKv: KV = yield* bucket("tether_inbound", {})
    // per peer, the last sequence its holder acknowledged as written, recorded before the consumer ack: a
    // consumer's ack floor is persisted lazily by the server, and a kill -9 of it can roll the floor back behind
    // the purge (which would look like entries the engine dropped)
    const acksKv: KV = yield* bucket("tether_acks", {})

    // the link to the server: while it is down every operation fails `Unavailable` at once (the client would
    // otherwise hold each request until its timeout and then drop it), and one in flight when it drops fails then
    let link = { up: true, lost: yield* Deferred.make<void>() }
    // (a plain loop over the iterator: Stream.fromAsyncIterable's release awaits `return()`, which the client
    // only settles once the connection is closed, after this scope's finalizers)
    const statuses = nc.status()[Symbol.asyncIterator]()
    yield* Effect.promise(() => statuses.next()).pipe(
      Effect.flatMap((r) => r.done === true ? Effect.fail("closed" as const) : Effect.succeed(r.value)),
      Effect.flatMap((s) =>
        Effect.suspend(() => {
          if (s.type === "disconnect" && link.up) {
            const was = link
            link = { up: false, lost: was.lost }
            return Deferred.succeed(was.lost, undefined)
          }
          if (s.type === "reconnect" && !link.up) {
            return Effect.map(Deferred.make<void>(), (lost) => void (link = { up: true, lost }))
          }
          return Effect.void
        })
      ),
      Effect.forever,
      Effect.ignore,
      Effect.forkScoped
    )
    const down = (what: string) =>
      new EngineError({ reason: "Unavailable", detail: `${what}: not connected to the NATS server`, unsent: true })
    /**
     * A promise-returning operation, failing fast while the link is down. Only `waitForLink` operations (a
     * consumer waiting for entries) are also cut short when it drops: racing every publish against the signal
     * costs two fibers per operation, and one in flight at the drop is bounded by its own timeout.
     */
    const linked = <A, E>(what: string, op: Effect.Effect<A, E>, waitForLink = false): Effect.Effect<A, E | EngineError> =>
      Effect.suspend(() => {
        const l = link
        if (!l.up) return Effect.fail(down(what))
        if (!waitForLink) return op
        // (the signal is interruptible: the loser of a race is interrupted, even inside an acquire)
        return Effect.raceFirst(op, Effect.interruptible(Effect.zipRight(Deferred.await(l.lost), Effect.fail(down(what)))))
      })
    const attempt = <A>(what: string, f: () => Promise<A>, waitForLink = false) =>
      linked(what, Effect.tryPromise({ try: f, catch: unavailable(what) }), waitForLink)

    const declare = (record: Engine.PeerRecord, bounds: Engine.Bounds): Effect.Effect<void, EngineError | PeerExists> =>
      Effect.gen(function*() {
        const existing = yield* attempt("peer", () => peersKv.get(token(record.key)))
        if (existing !== null && existing.operation === "PUT") {
          return yield* Effect.fail(new PeerExists({ key: record.key }))
        }
        yield* attempt("ack floor reset", () => acksKv.purge(token(record.key))).pipe(Effect.ignore)
        yield* attempt("stream add", () =>
          jsm.streams.add({
            name: streamOf(record.key),
            subjects: [subjectOf(record.key)],
            retention: RetentionPolicy.Limits,
            storage: StorageType.File,
            num_replicas: replicas,
            max_msgs: bounds.maxMessages,
            max_bytes: bounds.maxBytes,
            max_age: Number.isFinite(bounds.maxAgeMillis) ? nanos(bounds.maxAgeMillis + margin) : 0,
            discard: bounds.policy === "rejectNew" ? DiscardPolicy.New : DiscardPolicy.Old,
            duplicate_window: nanos(
              Math.min(options.duplicateWindowMillis ?? defaults.duplicateWindowMillis, bounds.maxAgeMillis + margin)
            )
          }))
        yield* attempt("peer create", () => peersKv.create(token(record.key), JSON.stringify(record))).pipe(
          Effect.catchAll((e): Effect.Effect<never, EngineError | PeerExists> =>
            /exists|wrong last sequence/i.test(describe(e.cause)) ? Effect.fail(new PeerExists({ key: record.key })) : Effect.fail(e)
          )
        )
      })

    const undeclare = (key: string) =>
      Effect.gen(function*() {
        const name = streamOf(key)
        const frames: Array<Uint8Array> = []
        const info = yield* attempt("stream info", () => jsm.streams.info(name)).pipe(Effect.option)
        if (Option.isSome(info)) {
          const { first_seq, last_seq, messages } = info.value.state
          if (messages > 0) {
            for (let seq = first_seq; seq <= last_seq; seq++) {
              const m = yield* attempt("get", () => jsm.streams.getMessage(name, { seq })).pipe(Effect.option)
              if (Option.isSome(m) && m.value !== null) frames.push(m.value.data)
            }
          }
          yield* attempt("stream delete", () => jsm.streams.delete(name)).pipe(Effect.ignore)
        }
        yield* attempt("peer delete", () => peersKv.delete(token(key)))
        yield* attempt("ack floor delete", () => acksKv.purge(token(key))).pipe(Effect.ignore)
        return frames
      })

    const readRecord = (bytes: Uint8Array): Engine.PeerRecord => JSON.parse(new TextDecoder().decode(bytes))

    const peers = Effect.gen(function*() {
      const keys = yield* attempt("peers", () => listKeys(jsm, peersBucket))
      const out: Array<Engine.PeerRecord> = []
      for (const k of keys) {
        const e = yield* attempt("peer", () => peersKv.get(k))
        if (e !== null && e.operation === "PUT") out.push(readRecord(e.value))
      }
      return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    })

    const peer = (key: string) =>
      Effect.map(
        attempt("peer", () => peersKv.get(token(key))),
        (e) => (e !== null && e.operation === "PUT" ? Option.some(readRecord(e.value)) : Option.none())
      )

    // "no responders" to a publish: either the peer's stream is gone, or JetStream is not serving (yet)
    const noLog = (key: string, m: string, cause: unknown) =>
      Effect.flatMap(
        Effect.either(attempt("stream info", () => jsm.streams.info(streamOf(key)))),
        (info): Effect.Effect<never, EngineError> =>
          Effect.fail(
            info._tag === "Left" && isNotFound(info.left.cause)
              ? new EngineError({ reason: "Protocol", detail: `no log for ${key}: ${m}`, cause })
              : new EngineError({ reason: "Unavailable", detail: `publish to ${key}: ${m}`, cause })
          )
      )
    const append = (key: string, id: string, frame: Uint8Array, retry?: boolean) =>
      linked("publish", Effect.tryPromise({
        try: () => {
          const h = retry === true ? headers() : undefined
          h?.set(retryHeader, "1")
          return js.publish(subjectOf(key), frame, { msgID: id, timeout: opTimeout, ...(h === undefined ? {} : { headers: h }) })
        },
        catch: (e): EngineError | "maxMessages" | "maxBytes" | { readonly noLog: string; readonly cause: unknown } => {
          const m = describe(e)
          if (/maximum messages/i.test(m)) return "maxMessages"
          if (/maximum bytes/i.test(m)) return "maxBytes"
          if (/no responders|stream not found/i.test(m)) return { noLog: m, cause: e }
          // anything else is worth a retry (with the same id, so never stored twice): JetStream restarting,
          // a lost ack, a timeout
          return new EngineError({ reason: "Unavailable", detail: `publish: ${m}`, cause: e })
        }
      })).pipe(
        Effect.map((ack): Engine.AppendResult =>
          ack.duplicate ? { _tag: "Duplicate", seq: ack.seq } : { _tag: "Appended", seq: ack.seq }
        ),
        Effect.catchAll((e) =>
          typeof e === "string"
            ? Effect.succeed<Engine.AppendResult>({ _tag: "Full", reason: e })
            : "noLog" in e
            ? noLog(key, e.noLog, e.cause)
            : Effect.fail(e)
        )
      )

    const consume = (key: string, lease: Engine.Lease) =>
      Effect.gen(function*() {
        const stream = streamOf(key)
        const name = consumerName(lease.revision, node)
        const list = yield* attempt("consumers", async () => {
          const out: Array<{ name: string; ackFloor: number; delivered: number; created: string }> = []
          for await (const c of jsm.consumers.list(stream)) {
            // a consumer created at a start sequence reports ack floor 0 until its first ack
            const floor = Math.max(c.ack_floor.stream_seq, (c.config.opt_start_seq ?? 1) - 1)
            out.push({ name: c.name, ackFloor: floor, delivered: c.delivered.stream_seq, created: c.created })
          }
          return out
        })
        const info = yield* attempt("stream info", () => jsm.streams.info(stream))
        const recorded = yield* attempt("ack floor", () => acksKv.get(token(key)))
        const rec = recorded !== null && recorded.operation === "PUT" ? readMarks(recorded.string()) : { a: 0, d: 0 }
        // acks purge: the stream's first sequence is the ack floor + 1 unless the engine dropped the head
        const ackFloor = Math.max(0, rec.a, ...list.map((c) => c.ackFloor))
        const delivered = Math.max(0, rec.d, ...list.map((c) => c.delivered))
        const marks = { a: ackFloor, d: delivered }
        const record = attempt("marks", () => acksKv.put(token(key), JSON.stringify(marks)))
        const start = ackFloor + 1
        // the holder before this one: the node of the newest consumer (the lease KV forgets an expired holder)
        const revisionOf = (n: string) => Number(/^holder-(\d+)-/.exec(n)?.[1] ?? 0)
        const newest = list.slice().sort((a, b) =>
          revisionOf(b.name) - revisionOf(a.name) || (a.created < b.created ? 1 : a.created > b.created ? -1 : 0)
        )[0]
        const previous = newest === undefined ? Option.none<string>() : consumerNode(newest.name)
        const from = Math.max(start, info.state.first_seq)
        yield* attempt("consumer add", () =>
          jsm.consumers.add(stream, {
            durable_name: name,
            ack_policy: AckPolicy.All,
            ack_wait: nanos(3_600_000),
            max_ack_pending: -1,
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: from
          }))
        for (const c of list) yield* attempt("consumer delete", () => jsm.consumers.delete(stream, c.name)).pipe(Effect.ignore)
        const consumer = yield* attempt("consumer", () => js.consumers.get(stream, name))
        const unacked = new Map<number, JsMsg>()
        // one long-lived pull (the client keeps up to `max_messages` buffered); a fetch takes what is buffered,
        // waiting (on the Clock) only for the first entry
        const messages = yield* Effect.acquireRelease(
          attempt("consume", () => consumer.consume({ max_messages: options.fetchBatch ?? 256 })),
          (m) => Effect.sync(() => m.stop())
        )
        const it = messages[Symbol.asyncIterator]()
        let waiting: Promise<IteratorResult<JsMsg>> | undefined
        const next = () =>
          (waiting ??= it.next().catch((e) => {
            waiting = undefined
            throw e
          }))
        const toEntry = (m: JsMsg): Engine.Entry => {
          unacked.set(m.seq, m)
          return {
            seq: m.seq,
            id: m.headers?.get("Nats-Msg-Id") ?? "",
            // a copy: the client may reuse the buffer it read the message into
            frame: m.data.slice(),
            storedAt: Number(BigInt(m.info.timestampNanos) / 1_000_000n),
            redelivered: m.redelivered || m.seq <= delivered,
            retried: m.headers?.get(retryHeader) === "1"
          }
        }
        const gone = new EngineError({ reason: "Fenced", detail: `consumer ${name} of ${key} is gone` })
        const stillThere = Effect.flatMap(
          Effect.either(attempt("consumer info", () => jsm.consumers.info(stream, name))),
          (info) => (info._tag === "Left" && isNotFound(info.left.cause) ? Effect.fail(gone) : Effect.void)
        )
        // entries taken from the client whose delivery could not be recorded yet: handed out by the next fetch
        let carry: Array<Engine.Entry> = []
        /** Records how far this holder is about to deliver before it hands the entries out. */
        const deliver = (out: Array<Engine.Entry>) =>
          Effect.suspend(() => {
            const last = out[out.length - 1]!.seq
            if (last <= marks.d) return Effect.succeed<ReadonlyArray<Engine.Entry>>(out)
            const before = marks.d
            marks.d = last
            return record.pipe(
              Effect.as<ReadonlyArray<Engine.Entry>>(out),
              Effect.tapError(() =>
                Effect.sync(() => {
                  marks.d = before
                  carry = out
                })
              )
            )
          })
        const fetch = (max: number, waitMillis: number): Effect.Effect<ReadonlyArray<Engine.Entry>, EngineError> =>
          Effect.suspend(() => {
            if (carry.length === 0) return take(max, waitMillis)
            const out = carry
            carry = []
            return deliver(out)
          })
        const take = (max: number, waitMillis: number): Effect.Effect<ReadonlyArray<Engine.Entry>, EngineError> =>
          Effect.gen(function*() {
            const first = yield* Effect.raceFirst(
              Effect.map(attempt("fetch", next, true), Option.some),
              Effect.as(Effect.sleep(Duration.millis(waitMillis)), Option.none<IteratorResult<JsMsg>>())
            )
            if (Option.isNone(first)) {
              // nothing came: a superseded (deleted) consumer is silent, so ask whether it still exists
              yield* stillThere
              return []
            }
            waiting = undefined
            if (first.value.done === true) return yield* Effect.fail(gone)
            const out = [toEntry(first.value.value)]
            // then what the client has buffered: whatever comes within a millisecond (an entry not taken in time
            // stays in `waiting` for the next fetch; the iterator's pending count runs one ahead, so it cannot say)
            while (out.length < max) {
              const r = yield* Effect.raceFirst(
                Effect.map(attempt("fetch", next, true), Option.some),
                Effect.as(Effect.sleep(Duration.millis(1)), Option.none<IteratorResult<JsMsg>>())
              )
              if (Option.isNone(r) || r.value.done === true) break
              waiting = undefined
              out.push(toEntry(r.value.value))
            }
            return yield* deliver(out)
          })
        const ack = (seq: number) =>
          Effect.gen(function*() {
            const m = unacked.get(seq)
            if (m === undefined) return
            if (seq > marks.a) {
              const before = marks.a
              marks.a = seq
              yield* Effect.tapError(record, () => Effect.sync(() => void (marks.a = before)))
            }
            const ok = yield* attempt("ack", () => m.ackAck())
            if (!ok) return yield* Effect.fail(new EngineError({ reason: "Unavailable", detail: "ack not confirmed" }))
            for (const s of Array.from(unacked.keys())) if (s <= seq) unacked.delete(s)
            // the stream keeps exactly the un-acked frames: what its bounds count
            yield* attempt("purge", () => jsm.streams.purge(stream, { seq: seq + 1 }))
          })
        return { start, previous, fetch, ack } satisfies Engine.Consumer
      })

    const acquire = (name: string, _ttlMillis: number) =>
      attempt("lease create", () => leasesKv.create(leaseKey(name), node)).pipe(
        Effect.map((revision) => Option.some<Engine.Lease>({ name, holder: node, revision, previous: Option.none() })),
        Effect.catchAll((e) =>
          /exists|wrong last sequence/i.test(describe(e.cause)) ? Effect.succeed(Option.none()) : Effect.fail(e)
        )
      )
    const refresh = (lease: Engine.Lease, _ttlMillis: number) =>
      attempt("lease update", () => leasesKv.update(leaseKey(lease.name), node, lease.revision)).pipe(
        Effect.map((revision) => Option.some<Engine.Lease>({ ...lease, revision })),
        Effect.catchAll((e) =>
          /wrong last sequence/i.test(describe(e.cause)) ? Effect.succeed(Option.none()) : Effect.fail(e)
        )
      )
    const release = (lease: Engine.Lease) =>
      attempt("lease delete", () => leasesKv.delete(leaseKey(lease.name), { previousSeq: lease.revision })).pipe(
        Effect.catchAll((e) => (/wrong last sequence/i.test(describe(e.cause)) ? Effect.void : Effect.fail(e)))
      )
    const nodeAlive = (n: string) =>
      Effect.map(attempt("lease", () => leasesKv.get(leaseKey(nodeLease(n)))), (e) => e !== null && e.operation === "PUT")

    const locate = (key: string) =>
      Effect.gen(function*() {
        const e = yield* attempt("inbound", () => inboundKv.get(token(key)))
        if (e === null || e.operation !== "PUT") return Option.none<string>()
        const n = e.string()
        if (yield* nodeAlive(n)) return Option.some(n)
        // owned by a dead node: remove the ghost
        yield* attempt("inbound delete", () => inboundKv.delete(token(key), { previousSeq: e.revision })).pipe(Effect.ignore)
        return Option.none<string>()
      })

    const live = (prefix: "node" | "hold") => Effect.gen(function*() {
      const out: Array<string> = []
      const keys = yield* attempt("nodes", () => listKeys(jsm, leasesBucket, `${prefix}.>`))
      for (const k of keys) {
        const e = yield* attempt("lease", () => leasesKv.get(k))
        if (e !== null && e.operation === "PUT") out.push(e.string())
      }
      return out.sort()
    })
    const nodes = live("node")
    const holders = live("hold")

    const request = (to: string, message: Uint8Array, timeoutMillis: number) =>
      linked("request", Effect.tryPromise({
        try: () => nc.request(`tether.node.${token(to)}`, message, { timeout: timeoutMillis }),
        catch: (e): NoResponder | EngineError => {
          const m = describe(e) + " " + describe((e as { cause?: unknown }).cause)
          if (/no responders/i.test(m)) return new NoResponder({ node: to, reason: "NoResponders" })
          if (/timeout/i.test(m)) return new NoResponder({ node: to, reason: "Timeout" })
          return unavailable("request")(e)
        }
      })).pipe(Effect.map((m) => m.data))

    const serve = (handler: (message: Uint8Array) => Effect.Effect<Uint8Array>) =>
      Effect.gen(function*() {
        // the client's callback runs each request as a fiber of this scope's set (interrupted with it)
        const run = yield* FiberSet.makeRuntime<never>()
        yield* Effect.acquireRelease(
          Effect.try({
            try: () =>
              nc.subscribe(`tether.node.${token(node)}`, {
                callback: (err, m) => {
                  if (err !== null) return
                  run(Effect.flatMap(handler(m.data), (reply) => Effect.sync(() => m.respond(reply))))
                }
              }),
            catch: unavailable("subscribe")
          }),
          (s) => Effect.sync(() => s.unsubscribe())
        )
        // the subscription reaches the server asynchronously: a request from another node right after `serve`
        // would find no responder; a flush (a PING answered after the SUB) makes it known before we return
        yield* Effect.tryPromise({ try: () => nc.flush(), catch: unavailable("flush") })
      })

    return {
      node,
      declare,
      undeclare,
      peers,
      peer,
      append,
      consume,
      acquire,
      refresh,
      release,
      register: (key) => Effect.asVoid(attempt("register", () => inboundKv.put(token(key), node))),
      unregister: (key) =>
        Effect.gen(function*() {
          const e = yield* attempt("inbound", () => inboundKv.get(token(key)))
          if (e !== null && e.operation === "PUT" && e.string() === node) {
            yield* attempt("unregister", () => inboundKv.delete(token(key), { previousSeq: e.revision })).pipe(Effect.ignore)
          }
        }),
      locate,
      nodes,
      holders,
      request,
      serve
    } satisfies Engine.Engine
  })

/** @internal */
export const layer = (options: NatsEngine.Options): Layer.Layer<EngineTag, EngineError> =>
  Layer.scoped(EngineTag, make(options))
