/**
 * The in-memory engine: one shared store, one Engine per node, time from the Clock (TestClock in tests).
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Engine from "../Engine.js"
import type * as MemoryEngine from "../MemoryEngine.js"
import { EngineError, EngineTag, NoResponder, nodeLease, outLease, PeerExists } from "./engine.js"

interface Stored {
  readonly seq: number
  readonly id: string
  readonly frame: Uint8Array
  readonly storedAt: number
  readonly retried: boolean
}

interface Log {
  readonly record: Engine.PeerRecord
  readonly bounds: Engine.Bounds
  entries: Array<Stored>
  bytes: number
  nextSeq: number
  ackFloor: number
  delivered: number
  dedup: Map<string, { readonly seq: number; readonly at: number }>
  changed: Deferred.Deferred<void>
  epoch: number
}

interface LeaseRecord {
  holder: string
  revision: number
  expiresAt: number
  previous: Option.Option<string>
}

/** @internal */
export const ageMarginMillis = 1000
/** @internal */
export const dedupWindowMillis = 120_000

/** @internal */
export const makeCluster = (): MemoryEngine.Cluster => {
  const logs = new Map<string, Log>()
  const leases = new Map<string, LeaseRecord>()
  let revisions = 0
  const registry = new Map<string, string>()
  const handlers = new Map<string, (message: Uint8Array) => Effect.Effect<Uint8Array>>()
  const down = new Set<string>()
  let unavailable = false
  /** Peers whose next append is stored but answered `Unavailable` (its reply lost). */
  const loseReply = new Set<string>()
  /** Per node: how late the replies to its operations (all, or those named) arrive. */
  const replyDelays = new Map<string, { readonly millis: number; readonly ops: ReadonlySet<string> | undefined }>()

  const gate = (node: string) =>
    Effect.suspend(() =>
      unavailable || down.has(node)
        ? Effect.fail(new EngineError({ reason: "Unavailable", detail: `memory engine unreachable from ${node}`, unsent: true }))
        : Effect.void
    )
  const alive = (name: string, now: number) => {
    const l = leases.get(name)
    return l !== undefined && l.expiresAt > now ? l : undefined
  }
  // the engine's own limits: drop what is older than maxAge + margin, silently (a gap in seq)
  const trimAge = (log: Log, now: number) => {
    if (!Number.isFinite(log.bounds.maxAgeMillis)) return
    const limit = log.bounds.maxAgeMillis + ageMarginMillis
    while (log.entries.length > 0 && now - log.entries[0]!.storedAt >= limit) {
      log.bytes -= log.entries.shift()!.frame.byteLength
    }
  }
  const notify = (log: Log) => {
    const d = log.changed
    log.changed = Deferred.unsafeMake<void>(FiberId.none)
    Deferred.unsafeDone(d, Effect.void)
  }

  const engineFor = (node: string): Engine.Engine => {
    /** The engine acts when asked; its reply (success or failure) reaches the node `millis` later. */
    const delayed = <A, E>(name: string, self: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.suspend(() => {
        const d = replyDelays.get(node)
        if (d === undefined || d.millis <= 0 || (d.ops !== undefined && !d.ops.has(name))) return self
        return Effect.flatMap(Effect.exit(self), (exit) => Effect.zipRight(Effect.sleep(Duration.millis(d.millis)), exit))
      })
    const op = <A, E>(f: (now: number) => Effect.Effect<A, E>): Effect.Effect<A, E | EngineError> =>
      Effect.zipRight(gate(node), Effect.flatMap(Clock.currentTimeMillis, f))
    const sync = <A>(f: (now: number) => A): Effect.Effect<A, EngineError> => op((now) => Effect.sync(() => f(now)))

    const consume = (key: string, lease: Engine.Lease) =>
      op((): Effect.Effect<Engine.Consumer, EngineError> => {
        const log = logs.get(key)
        if (log === undefined) return Effect.fail(new EngineError({ reason: "Protocol", detail: `no log for ${key}` }))
        const epoch = ++log.epoch
        let cursor = log.ackFloor + 1
        const fenced = (now: number) => {
          const l = alive(lease.name, now)
          return logs.get(key) !== log || log.epoch !== epoch || l === undefined || l.holder !== node ||
            l.revision !== lease.revision
        }
        const fenceError = new EngineError({ reason: "Fenced", detail: `${node} no longer holds ${lease.name}` })
        const fetch = (max: number, waitMillis: number): Effect.Effect<ReadonlyArray<Engine.Entry>, EngineError> =>
          op((now) => {
            if (fenced(now)) return Effect.fail(fenceError)
            trimAge(log, now)
            const out: Array<Engine.Entry> = []
            for (const e of log.entries) {
              if (out.length >= max) break
              if (e.seq < cursor) continue
              out.push({
                seq: e.seq,
                id: e.id,
                frame: e.frame,
                storedAt: e.storedAt,
                redelivered: e.seq <= log.delivered,
                retried: e.retried
              })
            }
            if (out.length > 0) {
              const last = out[out.length - 1]!.seq
              cursor = last + 1
              if (last > log.delivered) log.delivered = last
              return Effect.succeed(out)
            }
            if (waitMillis <= 0) return Effect.succeed(out)
            const changed = log.changed
            return Effect.raceFirst(
              Effect.zipRight(Deferred.await(changed), fetch(max, 0)),
              Effect.as(Effect.sleep(Duration.millis(waitMillis)), [] as ReadonlyArray<Engine.Entry>)
            )
          })
        const ack = (seq: number) =>
          op((now) => {
            if (fenced(now)) return Effect.fail(fenceError)
            if (seq > log.ackFloor) log.ackFloor = seq
            while (log.entries.length > 0 && log.entries[0]!.seq <= log.ackFloor) {
              log.bytes -= log.entries.shift()!.frame.byteLength
            }
            return Effect.void
          })
        return Effect.succeed({ start: cursor, fetch, ack })
      })

    const base: Engine.Engine = {
      node,
      declare: (record, bounds) =>
        op((): Effect.Effect<void, PeerExists> => {
          if (logs.has(record.key)) return Effect.fail(new PeerExists({ key: record.key }))
          logs.set(record.key, {
            record,
            bounds,
            entries: [],
            bytes: 0,
            nextSeq: 1,
            ackFloor: 0,
            delivered: 0,
            dedup: new Map(),
            changed: Deferred.unsafeMake<void>(FiberId.none),
            epoch: 0
          })
          return Effect.void
        }),
      undeclare: (key) =>
        sync(() => {
          const log = logs.get(key)
          logs.delete(key)
          if (log !== undefined) notify(log)
          return log === undefined ? [] : log.entries.map((e) => e.frame)
        }),
      peers: sync(() => Array.from(logs.values(), (l) => l.record)),
      peer: (key) => sync(() => Option.fromNullable(logs.get(key)?.record)),
      append: (key, id, frame, retry) =>
        op((now): Effect.Effect<Engine.AppendResult, EngineError> => {
          const log = logs.get(key)
          if (log === undefined) return Effect.fail(new EngineError({ reason: "Protocol", detail: `no log for ${key}` }))
          trimAge(log, now)
          for (const [k, d] of log.dedup) {
            if (now - d.at < dedupWindowMillis) break
            log.dedup.delete(k)
          }
          const dup = log.dedup.get(id)
          if (dup !== undefined) return Effect.succeed({ _tag: "Duplicate", seq: dup.seq })
          const { maxBytes, maxMessages, policy } = log.bounds
          const size = frame.byteLength
          if (policy === "rejectNew") {
            if (log.entries.length >= maxMessages) return Effect.succeed({ _tag: "Full", reason: "maxMessages" })
            if (log.bytes + size > maxBytes && log.entries.length > 0) {
              return Effect.succeed({ _tag: "Full", reason: "maxBytes" })
            }
          } else {
            // drop-oldest: silent, as JetStream's discard old (the consumer sees the gap)
            while (log.entries.length > 0 && (log.entries.length >= maxMessages || log.bytes + size > maxBytes)) {
              log.bytes -= log.entries.shift()!.frame.byteLength
            }
          }
          const seq = log.nextSeq++
          log.entries.push({ seq, id, frame: frame.slice(), storedAt: now, retried: retry === true })
          log.bytes += size
          log.dedup.set(id, { seq, at: now })
          notify(log)
          if (loseReply.delete(key)) {
            return Effect.fail(new EngineError({ reason: "Unavailable", detail: `append to ${key}: reply lost` }))
          }
          return Effect.succeed({ _tag: "Appended", seq })
        }),
      consume,
      acquire: (name, ttlMillis) =>
        sync((now) => {
          const l = leases.get(name)
          if (l !== undefined && l.expiresAt > now) return Option.none()
          const rec: LeaseRecord = {
            holder: node,
            revision: ++revisions,
            expiresAt: now + ttlMillis,
            previous: l === undefined ? Option.none() : Option.some(l.holder)
          }
          leases.set(name, rec)
          return Option.some<Engine.Lease>({ name, holder: node, revision: rec.revision, previous: rec.previous })
        }),
      refresh: (lease, ttlMillis) =>
        sync((now) => {
          const l = alive(lease.name, now)
          if (l === undefined || l.holder !== node || l.revision !== lease.revision) return Option.none()
          l.expiresAt = now + ttlMillis
          return Option.some(lease)
        }),
      release: (lease) =>
        sync(() => {
          const l = leases.get(lease.name)
          if (l !== undefined && l.holder === node && l.revision === lease.revision) l.expiresAt = 0
        }),
      register: (key) => sync(() => void registry.set(key, node)),
      unregister: (key) =>
        sync(() => {
          if (registry.get(key) === node) registry.delete(key)
        }),
      locate: (key) =>
        sync((now) => {
          const n = registry.get(key)
          if (n === undefined) return Option.none()
          if (alive(nodeLease(n), now) === undefined) {
            registry.delete(key) // owned by a dead node: no ghost
            return Option.none()
          }
          return Option.some(n)
        }),
      nodes: sync((now) => {
        const out: Array<string> = []
        for (const [name, l] of leases) if (name.startsWith("node.") && l.expiresAt > now) out.push(l.holder)
        return out.sort()
      }),
      holders: sync((now) => {
        const out: Array<string> = []
        for (const [name, l] of leases) if (name.startsWith("hold.") && l.expiresAt > now) out.push(l.holder)
        return out.sort()
      }),
      request: (to, message) =>
        Effect.zipRight(
          gate(node),
          Effect.suspend(() => {
            const h = down.has(to) ? undefined : handlers.get(to)
            return h === undefined ? Effect.fail(new NoResponder({ node: to, reason: "NoResponders" })) : h(message)
          })
        ),
      serve: (handler) =>
        Effect.zipRight(
          gate(node),
          Effect.acquireRelease(Effect.sync(() => handlers.set(node, handler)), () =>
            Effect.sync(() => {
              if (handlers.get(node) === handler) handlers.delete(node)
            }))
        ).pipe(Effect.asVoid)
    }
    return {
      ...base,
      declare: (record, bounds) => delayed("declare", base.declare(record, bounds)),
      undeclare: (key) => delayed("undeclare", base.undeclare(key)),
      peers: delayed("peers", base.peers),
      peer: (key) => delayed("peer", base.peer(key)),
      append: (key, id, frame, retry) => delayed("append", base.append(key, id, frame, retry)),
      acquire: (name, ttlMillis) => delayed("acquire", base.acquire(name, ttlMillis)),
      refresh: (lease, ttlMillis) => delayed("refresh", base.refresh(lease, ttlMillis)),
      release: (lease) => delayed("release", base.release(lease)),
      register: (key) => delayed("register", base.register(key)),
      unregister: (key) => delayed("unregister", base.unregister(key)),
      locate: (key) => delayed("locate", base.locate(key)),
      nodes: delayed("nodes", base.nodes),
      holders: delayed("holders", base.holders),
      request: (to, message, timeoutMillis) => delayed("request", base.request(to, message, timeoutMillis))
    }
  }

  return {
    engine: engineFor,
    layer: (node) => Layer.succeed(EngineTag, engineFor(node)),
    crash: (node) => {
      down.add(node)
    },
    revive: (node) => {
      down.delete(node)
    },
    setUnavailable: (u) => {
      unavailable = u
    },
    loseAppendReply: (key) => {
      loseReply.add(key)
    },
    setReplyDelay: (node, millis, ops) => {
      replyDelays.set(node, { millis, ops: ops === undefined ? undefined : new Set(ops) })
    },
    forgetAppendIds: () => {
      for (const log of logs.values()) log.dedup.clear()
    },
    holderOf: (key) => {
      const l = leases.get(outLease(key))
      return l === undefined ? Option.none() : Option.some(l.holder)
    },
    logSize: (key) => logs.get(key)?.entries.length ?? 0
  }
}
