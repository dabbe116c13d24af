/**
 * FleetHub: one logical Hub over several nodes sharing an Engine. Outbound peers declared as data live in
 * durable per-peer logs; exactly one node (the lease holder) runs each one's Dialer and acks what it wrote;
 * inbound peers stay on the node holding their socket and are reached through the engine's registry.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberMap from "effect/FiberMap"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Backlog from "../Backlog.js"
import * as Connection from "../Connection.js"
import * as Dialer from "../Dialer.js"
import * as DR from "../DisconnectReason.js"
import type * as Engine from "../Engine.js"
import type * as FleetHub from "../FleetHub.js"
import * as Framing from "../Framing.js"
import type * as Hub from "../Hub.js"
import type * as PeerKind from "../PeerKind.js"
import { BacklogFull } from "./backlog.js"
import { DialerStopped } from "./dialer.js"
import { EngineError, EngineTag, holdLease, nodeLease, outLease } from "./engine.js"
import * as hub from "./hub.js"
import { bounds as kindBounds } from "./peerKind.js"

/** @internal */
export const TypeId: FleetHub.TypeId = Symbol.for("tether/FleetHub") as FleetHub.TypeId

/** @internal */
export const isFleetHub = (u: unknown): u is FleetHub.FleetHub => Predicate.hasProperty(u, TypeId)

/** @internal */
export const FleetEvent: Data.TaggedEnum.Constructor<FleetHub.FleetEvent> = Data.taggedEnum<FleetHub.FleetEvent>()

/** @internal */
export const defaults = {
  leaseTtl: "3 seconds",
  fetchBatch: 64,
  requestTimeout: "2 seconds",
  retryInterval: "200 millis",
  ackInterval: "50 millis"
} as const

// ---- metrics ----
/** @internal */
export const heldPeers = Metric.gauge("tether_fleet_held_peers", { description: "outbound peers this node holds" })
/** @internal */
export const moves = Metric.counter("tether_fleet_moves_total", {
  description: "outbound peers taken over from another node",
  incremental: true
})
/** @internal */
export const redelivered = Metric.counter("tether_fleet_redelivered_total", {
  description: "frames redelivered after a move (possible duplicates)",
  incremental: true
})
/** @internal */
export const publishLatency = Metric.timerWithBoundaries("tether_fleet_publish_seconds", [
  0.0005,
  0.001,
  0.002,
  0.005,
  0.01,
  0.02,
  0.05,
  0.1,
  0.25,
  1
], "engine append latency")

/** The `IoError` code of a send the engine could not route (unreachable: the peer may well exist). @internal */
export const engineUnavailableCode = "EngineUnavailable"
/** The `IoError` code of a send the engine could not route for another engine failure. @internal */
export const engineErrorCode = "EngineError"

/** A send the engine could not route: reported as the failure it is, not as an unknown peer. @internal */
export const engineFailure = (key: string, e: EngineError): Connection.ConnectionClosed =>
  new Connection.ConnectionClosed({
    reason: DR.IoError({
      message: `${key} not reached: ${e.message}`,
      code: e.reason === "Unavailable" ? engineUnavailableCode : engineErrorCode
    })
  })

/** @internal */
export const isEngineUnavailable = (e: Hub.SendError): boolean =>
  e._tag === "ConnectionClosed" && e.reason._tag === "IoError" && e.reason.code === engineUnavailableCode

const possibleDuplicates = new WeakSet<Uint8Array>()
/** @internal */
export const isPossibleDuplicate = (frame: Uint8Array): boolean => possibleDuplicates.has(frame)

// ---- node requests (JSON; frames in base64) ----
type WireError = { readonly _tag: string; readonly [k: string]: unknown }
type Request =
  | { readonly op: "send"; readonly key: string; readonly frame: string }
  | { readonly op: "broadcast"; readonly frame: string }
type Reply =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: WireError }
  | {
    readonly ok: "broadcast"
    readonly accepted: ReadonlyArray<string>
    readonly failed: ReadonlyArray<{ key: string; error: WireError }>
  }

const b64 = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString("base64")
const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64"))
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v))
const dec = (u: Uint8Array): unknown => JSON.parse(new TextDecoder().decode(u))

const toWire = (e: Hub.SendError): WireError => {
  switch (e._tag) {
    case "UnknownPeer":
      return { _tag: e._tag, key: e.key }
    case "BacklogFull":
      return { _tag: e._tag, reason: e.reason, messages: e.messages, bytes: e.bytes }
    case "DialerStopped":
      return { _tag: e._tag, reason: e.reason }
    case "FrameError":
      return { _tag: e._tag, reason: e.reason, message: e.message }
    case "ConnectionClosed":
      return { _tag: e._tag, reason: DR.describe(e.reason) }
  }
}
const fromWire = (key: string, w: WireError): Hub.SendError => {
  switch (w._tag) {
    case "UnknownPeer":
      return new hub.UnknownPeer({ key, reason: "NotRegistered" })
    case "BacklogFull":
      return new BacklogFull({
        reason: w["reason"] === "maxBytes" ? "maxBytes" : "maxMessages",
        messages: Number(w["messages"]),
        bytes: Number(w["bytes"])
      })
    case "DialerStopped":
      return new DialerStopped({ reason: String(w["reason"]) })
    case "FrameError":
      return new Framing.FrameError({
        reason: w["reason"] === "FrameTooLarge" ? "FrameTooLarge" : "MalformedFrame",
        message: String(w["message"])
      })
    default:
      return new Connection.ConnectionClosed({ reason: DR.LocalClose({ message: `on its node: ${String(w["reason"])}` }) })
  }
}

interface Pending {
  readonly seq: number
  readonly frame: Uint8Array
  conn: Connection.Connection | undefined
  pos: number
  done: boolean
}

interface Holder {
  readonly key: string
  lease: Engine.Lease
  /** Clock millis until which the lease is known to be ours (last confirmed refresh + TTL). */
  validUntil: number
  fenced: boolean
  /** Acks what the closed dialer wrote (set by the feed; used by a graceful drop). */
  finish: Effect.Effect<void>
  readonly dialer: Dialer.Dialer
  readonly scope: Scope.CloseableScope
}

interface Lane {
  readonly permit: Effect.Semaphore
  backlog: Backlog.Backlog | undefined
  /** The backlog's own scope (in the hub's), closed when the peer is removed. */
  scope: Scope.CloseableScope | undefined
  n: number
}

const peersKey: unique symbol = Symbol("tether/FleetHub/peers")
interface FleetImpl extends FleetHub.FleetHub {
  readonly [peersKey]: () => ReadonlyArray<{ key: string; kind: string }>
}
const FleetProto: Pick<
  FleetImpl,
  typeof TypeId | typeof hub.TypeId | "toJSON" | "toString" | typeof Inspectable.NodeInspectSymbol
> = {
  [TypeId]: TypeId,
  [hub.TypeId]: hub.TypeId,
  toJSON(this: FleetImpl) {
    return { _id: "FleetHub", node: this.node, codec: this.codec.name, peers: this[peersKey]() }
  },
  toString(this: FleetImpl) {
    return Inspectable.format(this.toJSON())
  },
  [Inspectable.NodeInspectSymbol](this: FleetImpl) {
    return this.toJSON()
  }
}

const millis = (d: Duration.DurationInput) => Duration.toMillis(Duration.decode(d))

/** @internal */
export const make = (
  options: FleetHub.Options
): Effect.Effect<FleetHub.FleetHub, EngineError, Scope.Scope | EngineTag> =>
  Effect.gen(function*() {
    const engine = yield* EngineTag
    const node = engine.node
    const hubScope = yield* Effect.scope
    const codec = options.codec ?? Framing.lengthPrefixed()
    const kinds = new Map<string, PeerKind.PeerKind<any, any>>(options.kinds.map((k) => [k.name, k]))
    const ttl = millis(options.leaseTtl ?? defaults.leaseTtl)
    const tick = options.tick === undefined ? Math.max(1, Math.floor(ttl / 3)) : millis(options.tick)
    const batch = options.fetchBatch ?? defaults.fetchBatch
    const requestTimeout = millis(options.requestTimeout ?? defaults.requestTimeout)
    const retryInterval = Duration.decode(options.retryInterval ?? defaults.retryInterval)
    const ackInterval = millis(options.ackInterval ?? defaults.ackInterval)
    const incarnation = `${node}.${yield* Clock.currentTimeMillis}`

    const capacity = options.eventsCapacity ?? hub.defaults.eventsCapacity
    const hubEvents = yield* PubSub.sliding<Hub.Event>(capacity)
    const fleetEvents = yield* PubSub.sliding<FleetHub.Event>(capacity)
    const emitFleet = (e: FleetHub.Event): Effect.Effect<void> =>
      PubSub.publish(fleetEvents, e).pipe(
        Effect.zipRight(options.onFleetEvent === undefined ? Effect.void : options.onFleetEvent(e))
      )
    const emit = (e: Hub.Event): Effect.Effect<void> =>
      PubSub.publish(hubEvents, e).pipe(
        Effect.zipRight(options.onEvent === undefined ? Effect.void : options.onEvent(e)),
        Effect.zipRight(emitFleet(e))
      )
    const quiet = <A, E, R>(self: Effect.Effect<A, E, R>, what: string) =>
      Effect.catchAll(self, (e) => Effect.logDebug(`fleet ${node}: ${what} failed`, e))

    // ---- the local part: inbound connections and node-local dialers, reached from other nodes by request ----
    const local = yield* hub.make({
      codec,
      eventsCapacity: options.eventsCapacity,
      onEvent: (e) => {
        const gone = e._tag === "Removed" || (e._tag === "Disconnected" && e.kind === "inbound")
        return Effect.zipRight(emit(e), gone ? quiet(engine.unregister(e.key), "unregister") : Effect.void)
      }
    })

    // ---- this node's lease: its registry entries live as long as it does ----
    const acquired = yield* engine.acquire(nodeLease(node), ttl)
    if (Option.isNone(acquired)) {
      return yield* Effect.fail(new EngineError({ reason: "Protocol", detail: `node id ${node} is in use` }))
    }
    let myLease = acquired.value
    yield* Effect.addFinalizer(() => quiet(engine.release(myLease), "release node lease"))
    // a node that takes outbound peers says so (the fair share counts these nodes only)
    let myHold: Engine.Lease | undefined = undefined
    if (options.hold !== false) {
      myHold = Option.getOrUndefined(yield* engine.acquire(holdLease(node), ttl))
      yield* Effect.addFinalizer(() => myHold === undefined ? Effect.void : quiet(engine.release(myHold), "release hold lease"))
    }

    // ---- the peer directory, cached between ticks ----
    const directory = new Map<string, Engine.PeerRecord>()
    const find = (key: string): Effect.Effect<Option.Option<Engine.PeerRecord>, EngineError> => {
      const hit = directory.get(key)
      if (hit !== undefined) return Effect.succeed(Option.some(hit))
      return engine.peer(key).pipe(
        Effect.tap((r) => Option.isSome(r) ? Effect.sync(() => directory.set(key, r.value)) : Effect.void)
      )
    }
    const lookup = (key: string): Effect.Effect<Option.Option<Engine.PeerRecord>> =>
      Effect.orElseSucceed(find(key), () => Option.none())

    // ---- outbound sends: the durable log, with a bounded in-memory backlog in front while the engine is away ----
    const lanes = new Map<string, Lane>()
    const flushers = yield* FiberMap.make<string>()
    const ids = new WeakMap<Connection.Encoded, string>()
    /** Buffered frames an attempt may have stored already (a timeout, a lost reply): retried as such. */
    const uncertain = new WeakSet<Connection.Encoded>()
    const laneOf = (key: string): Lane => {
      let l = lanes.get(key)
      if (l === undefined) {
        l = { permit: Effect.unsafeMakeSemaphore(1), backlog: undefined, scope: undefined, n: 0 }
        lanes.set(key, l)
      }
      return l
    }
    const backlogEvent = (key: string, policy: Backlog.Policy) => (e: Backlog.Event): Effect.Effect<void> => {
      switch (e._tag) {
        case "Evicted":
          return emit(hub.Event.BacklogOverflow({ key, policy, reason: "evicted", frames: e.frames }))
        case "Rejected":
          return emit(hub.Event.BacklogOverflow({ key, policy, reason: e.reason, frames: e.frames }))
        case "Expired":
          return emit(hub.Event.Expired({ key, frames: e.frames }))
        case "Discarded":
          return emit(hub.Event.Discarded({ key, frames: e.frames, reason: e.reason }))
      }
    }
    const full = (b: Engine.Bounds, reason: "maxMessages" | "maxBytes") =>
      new BacklogFull({ reason, messages: b.maxMessages, bytes: b.maxBytes })

    const timedAppend = (key: string, id: string, frame: Uint8Array, retry = false) =>
      Effect.gen(function*() {
        const t0 = yield* Clock.currentTimeNanos
        const r = yield* engine.append(key, id, frame, retry)
        const t1 = yield* Clock.currentTimeNanos
        yield* Metric.update(publishLatency, Duration.nanos(t1 - t0))
        return r
      })

    const flush = (key: string, lane: Lane, b: Engine.Bounds): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (true) {
          yield* Effect.sleep(retryInterval)
          const done = yield* lane.permit.withPermits(1)(Effect.gen(function*() {
            const backlog = lane.backlog!
            const items = yield* backlog.takeAll
            for (let i = 0; i < items.length; i++) {
              const item = items[i]!
              const frame = Backlog.payload(item)
              const id = item instanceof Connection.Encoded ? ids.get(item) ?? `${incarnation}/${key}/x${i}` : ""
              // a retry of an attempt whose outcome is unknown: it may have been stored (and its dedup forgotten
              // by a restarted engine)
              const retry = item instanceof Connection.Encoded && uncertain.has(item)
              const r = yield* Effect.either(timedAppend(key, id, frame, retry))
              if (r._tag === "Left") {
                if (r.left.reason === "Unavailable") {
                  if (r.left.unsent !== true && item instanceof Connection.Encoded) uncertain.add(item)
                  yield* backlog.prepend(items.slice(i))
                  return false
                }
                // the peer is gone from the directory: these frames cannot be delivered
                yield* emit(hub.Event.Discarded({ key, frames: items.slice(i).map(Backlog.payload), reason: r.left.message }))
                return true
              }
              if (r.right._tag === "Full") {
                yield* emit(hub.Event.BacklogOverflow({ key, policy: b.policy, reason: r.right.reason, frames: [frame] }))
              }
            }
            return true
          }))
          if (done) return
        }
      })

    const sendOutbound = (rec: Engine.PeerRecord, frame: Uint8Array): Effect.Effect<void, Hub.SendError> => {
      const kind = kinds.get(rec.kind)
      const b = kind === undefined ? kindBounds({ backlog: {} } as PeerKind.PeerKind<any, any>) : kindBounds(kind)
      const lane = laneOf(rec.key)
      const buffer = (id: string, unknown: boolean): Effect.Effect<void, Hub.SendError> =>
        Effect.gen(function*() {
          if (lane.backlog === undefined) {
            const scope = yield* Scope.fork(hubScope, ExecutionStrategy.sequential)
            lane.scope = scope
            lane.backlog = yield* Backlog.make({
              ...kind?.backlog,
              onEvent: backlogEvent(rec.key, b.policy)
            }).pipe(Scope.extend(scope))
          }
          const item = new Connection.Encoded(frame, frame)
          ids.set(item, id)
          if (unknown) uncertain.add(item)
          yield* lane.backlog.offer(item)
          yield* FiberMap.run(flushers, rec.key, flush(rec.key, lane, b), { onlyIfMissing: true })
        })
      return lane.permit.withPermits(1)(Effect.suspend(() => {
        const id = `${incarnation}/${rec.key}/${++lane.n}`
        if (lane.backlog !== undefined && lane.backlog.size() > 0) return buffer(id, false)
        return timedAppend(rec.key, id, frame).pipe(
          Effect.matchEffect({
            onFailure: (e): Effect.Effect<void, Hub.SendError> => {
              if (e.reason === "Unavailable") return buffer(id, e.unsent !== true)
              directory.delete(rec.key)
              return Effect.fail(new hub.UnknownPeer({ key: rec.key, reason: "NotRegistered" }))
            },
            onSuccess: (r) => (r._tag === "Full" ? Effect.fail(full(b, r.reason)) : Effect.void)
          })
        )
      }))
    }

    const remoteSend = (to: string, key: string, frame: Uint8Array): Effect.Effect<void, Hub.SendError> =>
      engine.request(to, enc({ op: "send", key, frame: b64(frame) } satisfies Request), requestTimeout).pipe(
        // no responder: the node is gone, and its inbound peers with it; the engine down: it could not be asked
        Effect.mapError((e): Hub.SendError =>
          e._tag === "NoResponder" ? new hub.UnknownPeer({ key, reason: "NotRegistered" }) : engineFailure(key, e)
        ),
        Effect.flatMap((bytes) => {
          const r = dec(bytes) as Reply
          return r.ok === false ? Effect.fail(fromWire(key, r.error)) : Effect.void
        })
      )

    /** What the engine last said of a key this node sent to and did not find in its directory: the node it is
     * registered on, or `null` (not registered). Bounded (oldest first out). */
    const located = new Map<string, string | null>()
    const remember = (key: string, at: string | null) => {
      located.delete(key)
      located.set(key, at)
      if (located.size > 4096) located.delete(located.keys().next().value!)
    }
    /** As far as this node knew when the engine last answered: no peer under `key` (none, or on a dead node). */
    const knownGone = (key: string) => {
      const last = located.get(key)
      return last === null || (last !== undefined && (last === node || !liveNodes.includes(last)))
    }

    /** The inbound keys each other live node answered the last broadcast for (bounded by the nodes' peers). */
    const reachedOn = new Map<string, ReadonlyArray<string>>()
    /** The inbound peers this node knows on `to`: its last broadcast answer, and where sends found keys. */
    const knownOn = (to: string): ReadonlyArray<string> => {
      const keys = new Set(reachedOn.get(to))
      for (const [key, at] of located) if (at === to) keys.add(key)
      return Array.from(keys)
    }

    const send = (key: string, frame: Uint8Array): Effect.Effect<void, Hub.SendError> =>
      Effect.gen(function*() {
        const err = codec.check(frame)
        if (err) return yield* Effect.fail(err)
        if (yield* Effect.map(local.peer(key), Option.isSome)) return yield* local.send(key, frame)
        const rec = yield* Effect.either(find(key))
        if (rec._tag === "Right" && Option.isSome(rec.right)) return yield* sendOutbound(rec.right.value, frame)
        const at = yield* Effect.either(engine.locate(key))
        if (at._tag === "Right") {
          remember(key, Option.getOrNull(at.right))
          if (Option.isSome(at.right) && at.right.value !== node) return yield* remoteSend(at.right.value, key, frame)
        }
        // the engine could not say whether (or where) the peer is: that is the failure, not an unknown peer —
        // unless what it said last (and the directory and live nodes as of the last tick) leave no peer there
        const failed = rec._tag === "Left" ? rec.left : at._tag === "Left" ? at.left : undefined
        if (failed !== undefined && !knownGone(key)) return yield* Effect.fail(engineFailure(key, failed))
        return yield* Effect.fail(new hub.UnknownPeer({ key, reason: "NotRegistered" }))
      })

    const broadcast = (frame: Uint8Array): Effect.Effect<Hub.BroadcastResult, Framing.FrameError> =>
      Effect.gen(function*() {
        const err = codec.check(frame)
        if (err) return yield* Effect.fail(err)
        const accepted: Array<string> = []
        const failed: Array<{ readonly key: string; readonly error: Hub.SendError }> = []
        // the directory and the live nodes as of the last tick (listing them per broadcast costs a round trip per
        // peer and node): a peer or node that appeared elsewhere within one tick is not reached, as if it came after
        const records = Array.from(directory.values())
        yield* Effect.forEach(records, (rec) =>
          Effect.match(sendOutbound(rec, frame), {
            onFailure: (error) => void failed.push({ key: rec.key, error }),
            onSuccess: () => void accepted.push(rec.key)
          }), { concurrency: 16, discard: true })
        const mine = yield* local.broadcast(frame)
        accepted.push(...mine.accepted)
        failed.push(...mine.failed)
        const others = liveNodes.filter((n) => n !== node)
        for (const n of reachedOn.keys()) if (!others.includes(n)) reachedOn.delete(n)
        const message = enc({ op: "broadcast", frame: b64(frame) } satisfies Request)
        yield* Effect.forEach(others, (to) =>
          engine.request(to, message, requestTimeout).pipe(
            Effect.map((bytes) => {
              const r = dec(bytes) as Reply
              if (r.ok === true) return
              if (r.ok === false) {
                for (const key of knownOn(to)) failed.push({ key, error: fromWire(key, r.error) })
                return
              }
              accepted.push(...r.accepted)
              for (const f of r.failed) failed.push({ key: f.key, error: fromWire(f.key, f.error) })
              reachedOn.set(to, [...r.accepted, ...r.failed.map((f) => f.key)])
            }),
            // The node could not be asked. Its inbound peers that this node knows of (from the node's last answer
            // and from where sends found them) are reported as not reached: with the engine's error while the
            // engine is unreachable or the request timed out, `UnknownPeer` when the node is gone (no responder).
            Effect.catchAll((e) =>
              Effect.suspend(() => {
                const keys = knownOn(to)
                if (e._tag === "NoResponder") {
                  reachedOn.delete(to)
                  for (const key of keys) failed.push({ key, error: new hub.UnknownPeer({ key, reason: "NotRegistered" }) })
                } else {
                  for (const key of keys) failed.push({ key, error: engineFailure(key, e) })
                }
                return Effect.logDebug(`fleet ${node}: broadcast to ${to}: ${e.message}; ${keys.length} peers not reached`)
              })
            )
          ), { concurrency: "unbounded", discard: true })
        // a key that moved between nodes may be known on one that could not be asked and have taken it on another
        const took = new Set(accepted)
        return { accepted, failed: failed.filter((f) => !took.has(f.key)) }
      })

    const serveRequest = (bytes: Uint8Array): Effect.Effect<Uint8Array> =>
      Effect.suspend(() => {
        const req = dec(bytes) as Request
        if (req.op === "send") {
          return local.send(req.key, unb64(req.frame)).pipe(
            Effect.match({
              onFailure: (e): Reply => ({ ok: false, error: toWire(e) }),
              onSuccess: (): Reply => ({ ok: true })
            }),
            Effect.map(enc)
          )
        }
        return local.broadcast(unb64(req.frame)).pipe(
          Effect.match({
            onFailure: (e): Reply => ({ ok: false, error: toWire(e) }),
            onSuccess: (r): Reply => ({
              ok: "broadcast",
              accepted: r.accepted,
              failed: r.failed.map((f) => ({ key: f.key, error: toWire(f.error) }))
            })
          }),
          Effect.map(enc)
        )
      }).pipe(Effect.catchAllDefect(() => Effect.succeed(enc({ ok: false, error: { _tag: "Protocol" } }))))
    yield* engine.serve(serveRequest)

    // ---- holders: one Dialer per outbound peer whose lease this node has ----
    const held = new Map<string, Holder>()
    const updateHeld = () => Metric.set(heldPeers, held.size)

    const dropHolder = (h: Holder, reason: string, lost: boolean): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (h.fenced && !held.has(h.key)) return
        h.fenced = true
        held.delete(h.key)
        if (lost) {
          // stop writing at once: abort the live connection (its queue is not flushed), then stop
          yield* emitFleet(FleetEvent.LeaseLost({ key: h.key, reason }))
          const conn = yield* h.dialer.connection
          if (Option.isSome(conn)) yield* conn.value.abort(DR.LocalClose({ message: `lease lost: ${reason}` }))
        }
        yield* h.dialer.stop(reason)
        // a graceful drop: what the dialer wrote before it stopped is acked, so the next holder does not replay it
        if (!lost) yield* h.finish
        yield* Scope.close(h.scope, Exit.void)
        if (!lost) yield* quiet(engine.release(h.lease), "release")
        yield* updateHeld()
      })

    const position = (c: Connection.Connection) => {
      const s = c.unsafeStats()
      return s.framesOut + s.framesInFlight + s.queueDepth
    }

    const feed = (h: Holder, kind: PeerKind.PeerKind<any, any>, consumer: Engine.Consumer): Effect.Effect<void> =>
      Effect.gen(function*() {
        // the feed runs in the holder's scope, which dropping the holder closes: drop from another fiber
        const drop = (reason: string, lost: boolean) =>
          Effect.asVoid(Effect.forkIn(dropHolder(h, reason, lost), hubScope))
        const b = kindBounds(kind)
        const pending: Array<Pending> = []
        const byFrame = new Map<Uint8Array, Pending>()
        let expected = consumer.start
        /** Ids this holder handed to its dialer lately (a retried append seen again is not written twice). */
        const recent = new Set<string>()
        const recentOrder: Array<string> = []
        let lastConn: Connection.Connection | undefined
        const fenced = Effect.map(Clock.currentTimeMillis, (now) => h.fenced || now >= h.validUntil)
        // frames the dialer's own backlog gave up on (reported as Hub events) are done with
        h.dialer.events.pipe(
          Stream.runForEach((e) =>
            Effect.sync(() => {
              if (e._tag !== "Expired" && e._tag !== "Discarded" && e._tag !== "BacklogOverflow") return
              for (const f of e.frames) {
                const p = byFrame.get(f)
                if (p !== undefined) p.done = true
              }
            })
          ),
          Effect.forkIn(h.scope)
        )
        const settle = (conn: Connection.Connection | undefined) =>
          Effect.gen(function*() {
            if (conn === lastConn) return
            // a new connection: what the previous one wrote is done, what it did not went back to the dialer's
            // backlog and was replayed onto this one before it became Connected
            let undelivered = new Set<Uint8Array>()
            if (lastConn !== undefined) {
              const o = yield* lastConn.outcome
              undelivered = new Set(o.truncated === undefined ? o.undelivered : [o.truncated, ...o.undelivered])
            }
            const barrier = conn === undefined ? 0 : position(conn)
            for (const p of pending) {
              if (p.done || p.conn === conn) continue
              if (p.conn !== undefined && p.conn === lastConn && !undelivered.has(p.frame)) p.done = true
              else {
                p.conn = conn
                p.pos = barrier
              }
            }
            lastConn = conn
          })
        const ackWritten = Effect.gen(function*() {
          let upTo = -1
          let n = 0
          for (const p of pending) {
            const written = p.done || (p.conn !== undefined && p.conn === lastConn && p.conn.unsafeStats().framesOut >= p.pos)
            if (!written) break
            upTo = p.seq
            n++
          }
          if (n === 0 || (yield* fenced)) return
          const r = yield* Effect.either(consumer.ack(upTo))
          if (r._tag === "Left") {
            if (r.left.reason === "Fenced") yield* drop("fenced by the engine", true)
            return
          }
          for (const p of pending.splice(0, n)) byFrame.delete(p.frame)
        })

        h.finish = Effect.gen(function*() {
          const c = yield* h.dialer.connection
          if (lastConn !== undefined) {
            const o = yield* lastConn.outcome
            const undelivered = new Set(o.truncated === undefined ? o.undelivered : [o.truncated, ...o.undelivered])
            for (const p of pending) if (p.conn === lastConn && !undelivered.has(p.frame)) p.done = true
          }
          lastConn = Option.getOrUndefined(c)
          const h0 = h.fenced
          h.fenced = false
          yield* ackWritten
          h.fenced = h0
        })
        while (true) {
          if (yield* fenced) return yield* drop("lease expired before it could be renewed", true)
          const status = yield* h.dialer.status
          if (status === "Stopped") return
          const conn = yield* h.dialer.connection
          if (status !== "Connected" || Option.isNone(conn)) {
            yield* ackWritten
            yield* h.dialer.statusChanges.pipe(
              Stream.filter((s) => s === "Connected" || s === "Stopped"),
              Stream.take(1),
              Stream.runDrain,
              Effect.timeout(Duration.millis(tick)),
              Effect.ignore
            )
            continue
          }
          yield* settle(conn.value)
          // frames written but not yet acked: come back soon to ack them
          const got = yield* Effect.either(consumer.fetch(batch, pending.length > 0 ? Math.min(tick, ackInterval) : tick))
          if (got._tag === "Left") {
            if (got.left.reason === "Fenced") return yield* drop("fenced by the engine", true)
            yield* Effect.logDebug(`fleet ${node}: ${h.key}: ${got.left.message}`)
            yield* Effect.sleep(retryInterval)
            continue
          }
          const now = yield* Clock.currentTimeMillis
          const expired: Array<Uint8Array> = []
          const dups: Array<Uint8Array> = []
          for (const e of got.right) {
            if (e.seq > expected) {
              yield* emitFleet(FleetEvent.Lost({ key: h.key, fromSeq: expected, count: e.seq - expected }))
            }
            expected = e.seq + 1
            if (now - e.storedAt >= b.maxAgeMillis) {
              expired.push(e.frame)
              const p: Pending = { seq: e.seq, frame: e.frame, conn: undefined, pos: 0, done: true }
              pending.push(p)
              continue
            }
            if (e.id !== "" && recent.has(e.id)) {
              // handed to this holder's dialer already (which keeps what it could not write): the same append
              // stored twice (a retry the engine could not dedup), or delivered again by a consumer whose state a
              // restarted engine rolled back; skip it
              pending.push({ seq: e.seq, frame: e.frame, conn: undefined, pos: 0, done: true })
              continue
            }
            if (e.id !== "") {
              recent.add(e.id)
              recentOrder.push(e.id)
              if (recentOrder.length > 8192) recent.delete(recentOrder.shift()!)
            }
            let frame = e.frame
            if (e.redelivered || e.retried === true) {
              dups.push(e.frame)
              if (kind.markDuplicate !== undefined) frame = kind.markDuplicate(frame)
              possibleDuplicates.add(frame)
            }
            if (yield* fenced) return yield* drop("lease expired before it could be renewed", true)
            const sent = yield* Effect.either(h.dialer.send(frame))
            if (sent._tag === "Left") {
              if (sent.left._tag === "DialerStopped") return
              // a full dialer backlog (requeued frames): not taken; the consumer is reopened by the next holder
              yield* Effect.logWarning(`fleet ${node}: ${h.key}: ${sent.left.message}; releasing the peer`)
              return yield* drop(sent.left.message, false)
            }
            const c = yield* h.dialer.connection
            const on = Option.getOrUndefined(c)
            const p: Pending = { seq: e.seq, frame, conn: on, pos: on === undefined ? 0 : position(on), done: false }
            pending.push(p)
            byFrame.set(frame, p)
          }
          if (expired.length > 0) yield* emit(hub.Event.Expired({ key: h.key, frames: expired }))
          if (dups.length > 0) {
            yield* Metric.incrementBy(redelivered, dups.length)
            yield* emitFleet(FleetEvent.PossibleDuplicate({ key: h.key, frames: dups }))
          }
          yield* ackWritten
        }
      })

    const startHolder = (rec: Engine.PeerRecord, lease: Engine.Lease, now: number) =>
      Effect.gen(function*() {
        const kind = kinds.get(rec.kind)
        const spec = kind === undefined
          ? Option.none()
          : yield* Effect.option(Schema.decodeUnknown(kind.spec)(rec.spec))
        if (kind === undefined || Option.isNone(spec)) {
          yield* Effect.logWarning(`fleet ${node}: cannot run ${rec.key}: kind ${rec.kind} unknown here or spec invalid`)
          return yield* quiet(engine.release(lease), "release")
        }
        const scope = yield* Scope.fork(hubScope, ExecutionStrategy.sequential)
        const options = kind.dialer(rec.key, spec.value)
        const key = rec.key
        const userOnEvent = options.onEvent
        const onEvent = (e: Dialer.Event): Effect.Effect<void> => {
          const mapped: Option.Option<Hub.Event> = Dialer.Event.$match(e, {
            Connected: (c) =>
              Option.some(
                c.reconnected
                  ? hub.Event.Reconnected({ key, connectionId: c.connectionId })
                  : hub.Event.Connected({ key, kind: "outbound", connectionId: c.connectionId })
              ),
            Disconnected: (d) =>
              Option.some(
                hub.Event.Disconnected({ key, kind: "outbound", reason: d.reason, undelivered: [], requeued: d.requeued })
              ),
            BacklogOverflow: (o) =>
              Option.some(hub.Event.BacklogOverflow({ key, policy: o.policy, reason: o.reason, frames: o.frames })),
            Expired: (x) => Option.some(hub.Event.Expired({ key, frames: x.frames })),
            Discarded: (x) => Option.some(hub.Event.Discarded({ key, frames: x.frames, reason: x.reason })),
            Stopped: () => Option.none(),
            WaitingForWindow: () => Option.none(),
            NewPeriod: () => Option.none(),
            Connecting: () => Option.none(),
            ConnectFailed: () => Option.none()
          })
          const own = Option.isSome(mapped) ? emit(mapped.value) : Effect.void
          return userOnEvent === undefined ? own : Effect.zipRight(own, userOnEvent(e))
        }
        const consumer = yield* engine.consume(key, lease).pipe(Scope.extend(scope), Effect.either)
        if (consumer._tag === "Left") {
          yield* Scope.close(scope, Exit.void)
          return yield* quiet(engine.release(lease), "release")
        }
        const dialer = yield* Dialer.make({ id: key, ...options, onEvent }).pipe(Scope.extend(scope))
        const h: Holder = { key, lease, validUntil: now + ttl, fenced: false, finish: Effect.void, dialer, scope }
        held.set(key, h)
        yield* updateHeld()
        const from = Option.orElse(lease.previous, () => consumer.right.previous ?? Option.none())
        if (Option.isSome(from) && from.value !== node) yield* Metric.increment(moves)
        yield* emitFleet(FleetEvent.Moved({ key, from, to: node, revision: lease.revision }))
        yield* feed(h, kind, consumer.right).pipe(Effect.forkIn(scope))
      })

    // ---- the tick: renew leases, follow the directory, take free peers up to a fair share ----
    const hashOf = (s: string) => {
      let x = 2166136261
      for (let i = 0; i < s.length; i++) x = Math.imul(x ^ s.charCodeAt(i), 16777619)
      return x >>> 0
    }
    const probed = new Set<string>()
    /** Peers this node handed over (rebalancing), with when; ever handed over; taken back, so kept. */
    const shed = new Map<string, number>()
    const handedOver = new Set<string>()
    const kept = new Set<string>()
    /** The nodes whose lease was alive at the last tick (broadcast asks each for its inbound peers). */
    let liveNodes: ReadonlyArray<string> = []
    // renewals run on their own, so a slow directory scan cannot make a held lease lapse
    const renewTick = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const mine = yield* Effect.either(engine.refresh(myLease, ttl))
      if (mine._tag === "Right") {
        if (Option.isSome(mine.right)) myLease = mine.right.value
        else {
          const again = yield* Effect.either(engine.acquire(nodeLease(node), ttl))
          if (again._tag === "Right" && Option.isSome(again.right)) {
            myLease = again.right.value
            // while this node's lease had lapsed its registry entries were fair game (removed as ghosts): the
            // peers it still holds register again
            const mine = yield* local.keys
            yield* Effect.forEach(mine, (k) => quiet(engine.register(k), "register"), { discard: true })
          }
        }
      }
      if (options.hold !== false) {
        const r = myHold === undefined
          ? Effect.succeed(Option.none<Engine.Lease>())
          : engine.refresh(myHold, ttl)
        const hold = yield* Effect.either(r)
        if (hold._tag === "Right") {
          if (Option.isSome(hold.right)) myHold = hold.right.value
          else {
            const again = yield* Effect.either(engine.acquire(holdLease(node), ttl))
            if (again._tag === "Right" && Option.isSome(again.right)) myHold = again.right.value
          }
        }
      }
      yield* Effect.forEach(Array.from(held.values()), (h) =>
        Effect.gen(function*() {
          const r = yield* Effect.either(engine.refresh(h.lease, ttl))
          if (r._tag === "Right") {
            if (Option.isNone(r.right)) yield* dropHolder(h, "lease taken by another node", true)
            else {
              h.lease = r.right.value
              h.validUntil = now + ttl
            }
          } else if (now + tick >= h.validUntil) {
            // cannot renew it in time: stop before it expires (another node may take it then)
            yield* dropHolder(h, "lease could not be renewed", true)
          }
        }), { concurrency: "unbounded", discard: true })
    })
    const runTick = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const records = yield* Effect.either(engine.peers)
      if (records._tag === "Left") return
      const keys = new Set(records.right.map((r) => r.key))
      for (const r of records.right) directory.set(r.key, r)
      for (const k of Array.from(directory.keys())) if (!keys.has(k)) directory.delete(k)
      for (const h of Array.from(held.values())) if (!keys.has(h.key)) yield* dropHolder(h, "removed", false)
      const nodesNow = yield* Effect.either(engine.nodes)
      if (nodesNow._tag === "Right") liveNodes = nodesNow.right
      if (options.hold === false) return
      // the fair share: the peers over the nodes that take peers (client-only nodes do not count)
      const holders = yield* Effect.orElseSucceed(engine.holders, () => [node])
      const target = Math.ceil(records.right.length / Math.max(1, holders.includes(node) ? holders.length : holders.length + 1))
      const order = records.right.slice().sort((a, b) => hashOf(node + a.key) - hashOf(node + b.key))
      // rebalance: above the fair share (a node joined), hand over one peer per tick, gracefully (what was
      // written is acked, the lease released at once), the one this node ranks last; a peer handed over that
      // nobody else took and this node took back is kept (no node with room can run it)
      if (held.size > target) {
        const victim = order.slice().reverse().find((r) => held.has(r.key) && !kept.has(r.key))
        if (victim !== undefined) {
          shed.set(victim.key, now)
          handedOver.add(victim.key)
          yield* dropHolder(held.get(victim.key)!, "rebalanced: handed to a node below its fair share", false)
        }
      }
      for (const [k, at] of shed) {
        // leave a handed-over peer to the others for two lease TTLs (their ticks may be slow)
        if (now - at >= 2 * ttl) shed.delete(k)
      }
      for (const rec of order) {
        if (held.has(rec.key) || !kinds.has(rec.kind) || shed.has(rec.key)) continue
        // the lease runs from the request (a slow tick must not start a holder on a lease already half gone)
        const asked = yield* Clock.currentTimeMillis
        const got = yield* Effect.either(engine.acquire(outLease(rec.key), ttl))
        if (got._tag === "Left" || Option.isNone(got.right)) {
          probed.delete(rec.key)
          continue
        }
        if (held.size < target || probed.has(rec.key)) {
          probed.delete(rec.key)
          if (handedOver.has(rec.key)) kept.add(rec.key)
          yield* startHolder(rec, got.right.value, asked)
        } else {
          // beyond our fair share (some live nodes may not hold peers): take it if it is still free next tick
          probed.add(rec.key)
          yield* quiet(engine.release(got.right.value), "release")
        }
      }
    })
    yield* renewTick.pipe(
      Effect.catchAllCause((c) => Effect.logWarning(`fleet ${node}: lease renewal failed`, c)),
      Effect.zipRight(Effect.sleep(Duration.millis(tick))),
      Effect.forever,
      Effect.forkScoped
    )
    yield* runTick.pipe(
      Effect.catchAllCause((c) => Effect.logWarning(`fleet ${node}: tick failed`, c)),
      Effect.zipRight(Effect.sleep(Duration.millis(tick))),
      Effect.forever,
      Effect.forkScoped
    )
    yield* Effect.addFinalizer(() =>
      Effect.forEach(Array.from(held.values()), (h) => dropHolder(h, "hub closed", false), { discard: true })
    )

    // ---- the Hub surface ----
    const addPeer = <S, I>(key: string, kind: PeerKind.PeerKind<S, I>, spec: S) =>
      Effect.gen(function*() {
        if (!kinds.has(kind.name)) {
          return yield* Effect.fail(new EngineError({ reason: "Protocol", detail: `kind ${kind.name} not registered` }))
        }
        if (Option.isSome(yield* local.peer(key))) {
          return yield* Effect.fail(new hub.DuplicatePeer({ key, reason: "AlreadyRegistered" }))
        }
        const encoded = yield* Schema.encode(kind.spec)(spec).pipe(
          Effect.mapError((e) => new EngineError({ reason: "Protocol", detail: `spec of ${key}: ${e.message}` }))
        )
        const record: Engine.PeerRecord = { key, kind: kind.name, spec: encoded }
        yield* engine.declare(record, kindBounds(kind)).pipe(
          Effect.catchTag("PeerExists", () => Effect.fail(new hub.DuplicatePeer({ key, reason: "AlreadyRegistered" })))
        )
        directory.set(key, record)
      })

    const addDialer = <E, R>(key: string, dialerOptions: Dialer.Options<E, R>) =>
      Effect.gen(function*() {
        if (Option.isSome(yield* lookup(key))) {
          return yield* Effect.fail(new hub.DuplicatePeer({ key, reason: "AlreadyRegistered" }))
        }
        const d = yield* local.addDialer(key, dialerOptions)
        yield* quiet(engine.register(key), "register")
        return d
      })

    const addInbound = (key: string, conn: Connection.Connection) =>
      Effect.gen(function*() {
        if (Option.isSome(yield* lookup(key))) {
          return yield* Effect.fail(new hub.DuplicatePeer({ key, reason: "AlreadyRegistered" }))
        }
        yield* local.addInbound(key, conn)
        yield* quiet(engine.register(key), "register")
      })

    const remove = (key: string): Effect.Effect<ReadonlyArray<Uint8Array>, Hub.RemoveError> =>
      Effect.gen(function*() {
        if (Option.isSome(yield* local.peer(key))) return yield* local.remove(key)
        // the engine could not say whether the peer is declared: that is the failure, not an unknown peer
        const rec = yield* Effect.mapError(find(key), (e) => engineFailure(key, e))
        if (Option.isNone(rec)) return yield* Effect.fail(new hub.UnknownPeer({ key, reason: "NotRegistered" }))
        // stop the holder first (what it wrote is acked), then delete the durable log: what is left in it was not
        // delivered. If the engine cannot delete it, the peer stays declared (held again at the next tick, here or
        // on another node) and the remove fails with the engine's error.
        const h = held.get(key)
        if (h !== undefined) yield* dropHolder(h, "removed from hub", false)
        const left = yield* Effect.mapError(engine.undeclare(key), (e) => engineFailure(key, e))
        directory.delete(key)
        // and the frames still waiting in front of the log for the engine (sent after those in it)
        const lane = lanes.get(key)
        lanes.delete(key)
        // the flusher (there is one only with a backlog) is stopped while this holds the lane's permit: never in
        // the middle of appending what it took from the backlog, which would then be neither here nor reported
        const waiting = lane?.backlog === undefined
          ? []
          : (yield* lane.permit.withPermits(1)(Effect.zipRight(FiberMap.remove(flushers, key), lane.backlog.takeAll)))
            .map(Backlog.payload)
        if (lane?.scope !== undefined) yield* Scope.close(lane.scope, Exit.void)
        const undelivered = waiting.length === 0 ? left : [...left, ...waiting]
        yield* emit(hub.Event.Removed({ key, kind: "outbound", reason: "removed from hub", undelivered }))
        return undelivered
      })

    const keys = Effect.gen(function*() {
      const mine = yield* local.keys
      return [...Array.from(directory.keys()), ...mine]
    })

    const peer = (key: string): Effect.Effect<Option.Option<Hub.PeerInfo>> =>
      Effect.gen(function*() {
        const p = yield* local.peer(key)
        if (Option.isSome(p)) return p
        const h = held.get(key)
        if (h !== undefined) {
          return Option.some<Hub.PeerInfo>({
            key,
            kind: "outbound",
            dialer: Option.some(h.dialer),
            connection: yield* h.dialer.connection
          })
        }
        const rec = yield* lookup(key)
        return Option.map(rec, (): Hub.PeerInfo => ({ key, kind: "outbound", dialer: Option.none(), connection: Option.none() }))
      })

    const self: FleetImpl = Object.assign(Object.create(FleetProto), {
      [peersKey]: () => [
        ...Array.from(directory.values(), (r) => ({ key: r.key, kind: r.kind })),
        ...Array.from(held.keys(), (k) => ({ key: k, kind: "held" }))
      ],
      node,
      codec,
      addDialer,
      addInbound,
      addPeer,
      remove,
      send,
      broadcast,
      keys,
      peer,
      held: Effect.sync(() => Array.from(held.keys()).sort()),
      events: Stream.fromPubSub(hubEvents),
      subscribe: PubSub.subscribe(hubEvents),
      fleetEvents: Stream.fromPubSub(fleetEvents),
      subscribeFleet: PubSub.subscribe(fleetEvents)
    } satisfies Omit<FleetImpl, keyof typeof FleetProto>)
    return self
  })

/** @internal */
export class FleetHubTag extends Context.Tag("tether/FleetHub")<FleetHubTag, FleetHub.FleetHub>() {}

/** @internal */
export const layer = (
  options: FleetHub.Options
): Layer.Layer<hub.HubTag | FleetHubTag, EngineError, EngineTag> =>
  Layer.scopedContext(
    Effect.map(make(options), (h) => Context.make(hub.HubTag, h as Hub.Hub).pipe(Context.add(FleetHubTag, h)))
  )
