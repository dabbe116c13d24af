/**
 * The hub: a registry of keyed peers (dialers it owns, inbound connections it
 * watches), addressed one by one or all at once with one shared buffer.
 * @internal
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberMap from "effect/FiberMap"
import * as FiberSet from "effect/FiberSet"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as PubSub from "effect/PubSub"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Connection from "../Connection.js"
import * as Dialer from "../Dialer.js"
import * as DR from "../DisconnectReason.js"
import * as Framing from "../Framing.js"
import type * as Hub from "../Hub.js"

/** @internal */
export const TypeId: Hub.TypeId = Symbol.for("tether/Hub") as Hub.TypeId

/** @internal */
export const isHub = (u: unknown): u is Hub.Hub => Predicate.hasProperty(u, TypeId)

/** @internal */
export class UnknownPeer extends Data.TaggedError("UnknownPeer")<{
  readonly key: string
  /** Never registered, or gone (an inbound peer that disconnected, a stopped or removed dialer). */
  readonly reason: "NotRegistered"
}> {
  override get message() {
    return `unknown peer: ${this.key}`
  }
}

/** @internal */
export class DuplicatePeer extends Data.TaggedError("DuplicatePeer")<{
  readonly key: string
  readonly reason: "AlreadyRegistered" | "HubClosing"
}> {
  override get message() {
    return this.reason === "HubClosing" ? `hub closing: cannot add ${this.key}` : `peer already registered: ${this.key}`
  }
}

/** @internal */
export const Event: Data.TaggedEnum.Constructor<Hub.Event> = Data.taggedEnum<Hub.Event>()

/** @internal */
export class HubTag extends Context.Tag("tether/Hub")<HubTag, Hub.Hub>() {}

/** What an inbound peer cannot have decoded: the frame cut in the middle, if any, then the undelivered ones (as the Dialer requeues). */
const resendable = (o: Connection.CloseOutcome): ReadonlyArray<Uint8Array> =>
  o.truncated === undefined ? o.undelivered : [o.truncated, ...o.undelivered]

/** @internal */
export const defaults = {
  eventsCapacity: 1024
} as const

type Peer =
  | { readonly kind: "outbound"; readonly dialer: Dialer.Dialer; readonly scope: Scope.CloseableScope }
  | { readonly kind: "inbound"; readonly conn: Connection.Connection }

/** The hub's peer table, for `toJSON` (not part of the public shape). */
const peersKey: unique symbol = Symbol("tether/Hub/peers")
interface HubImpl extends Hub.Hub {
  readonly [peersKey]: ReadonlyMap<string, Peer>
}

/** What a hub shows of itself (`toJSON`, `toString`, Node's inspect): its wire format and its peers' keys and kinds. */
const HubProto: Pick<HubImpl, typeof TypeId | "toJSON" | "toString" | typeof Inspectable.NodeInspectSymbol> = {
  [TypeId]: TypeId,
  toJSON(this: HubImpl) {
    return {
      _id: "Hub",
      codec: this.codec.name,
      peers: Array.from(this[peersKey], ([key, p]) => ({ key, kind: p.kind }))
    }
  },
  toString(this: HubImpl) {
    return Inspectable.format(this.toJSON())
  },
  [Inspectable.NodeInspectSymbol](this: HubImpl) {
    return this.toJSON()
  }
}

const sameWire = (a: Framing.Codec, b: Framing.Codec) =>
  a === b || (a.name === b.name && a.maxFrameBytes === b.maxFrameBytes)

/** @internal */
export const make = (options?: Hub.Options): Effect.Effect<Hub.Hub, never, Scope.Scope> =>
  Effect.gen(function*() {
    const codec = options?.codec ?? Framing.lengthPrefixed()
    const pubsub = yield* PubSub.sliding<Hub.Event>(options?.eventsCapacity ?? defaults.eventsCapacity)
    const userOnEvent = options?.onEvent
    const emit = (event: Hub.Event): Effect.Effect<void> =>
      Effect.zipRight(PubSub.publish(pubsub, event), userOnEvent === undefined ? Effect.void : userOnEvent(event))
    const peers = new Map<string, Peer>()
    const watchers = yield* FiberMap.make<string>()
    // closes the scopes of dialers that stopped by themselves (their own loop cannot close them)
    const closers = yield* FiberSet.make()
    let closing = false

    const lookup = (key: string) =>
      Effect.suspend(() => {
        const p = peers.get(key)
        return p === undefined ? Effect.fail(new UnknownPeer({ key, reason: "NotRegistered" })) : Effect.succeed(p)
      })

    const addDialer = <E, R>(key: string, dialerOptions: Dialer.Options<E, R>) =>
      Effect.gen(function*() {
        if (closing) return yield* Effect.fail(new DuplicatePeer({ key, reason: "HubClosing" }))
        if (peers.has(key)) return yield* Effect.fail(new DuplicatePeer({ key, reason: "AlreadyRegistered" }))
        const scope = yield* Scope.make(ExecutionStrategy.sequential)
        let dialerRef: Dialer.Dialer | undefined
        const userDialerOnEvent = dialerOptions.onEvent
        const onEvent = (e: Dialer.Event): Effect.Effect<void> => {
          const mapped: Option.Option<Hub.Event> = Dialer.Event.$match(e, {
            Connected: (c) =>
              Option.some(
                c.reconnected
                  ? Event.Reconnected({ key, connectionId: c.connectionId })
                  : Event.Connected({ key, kind: "outbound", connectionId: c.connectionId })
              ),
            Disconnected: (d) =>
              Option.some(Event.Disconnected({ key, kind: "outbound", reason: d.reason, undelivered: [], requeued: d.requeued })),
            BacklogOverflow: (o) =>
              Option.some(Event.BacklogOverflow({ key, policy: o.policy, reason: o.reason, frames: o.frames })),
            Expired: (x) => Option.some(Event.Expired({ key, frames: x.frames })),
            Discarded: (x) => Option.some(Event.Discarded({ key, frames: x.frames, reason: x.reason })),
            Stopped: (s) => {
              const p = peers.get(key)
              if (p !== undefined && p.kind === "outbound" && p.dialer === dialerRef) peers.delete(key)
              return Option.some(Event.Removed({ key, kind: "outbound", reason: s.reason, undelivered: s.undelivered }))
            },
            WaitingForWindow: () => Option.none(),
            NewPeriod: () => Option.none(),
            Connecting: () => Option.none(),
            ConnectFailed: () => Option.none()
          })
          let own = Option.isSome(mapped) ? emit(mapped.value) : Effect.void
          if (e._tag === "Stopped") {
            // the dialer's own loop emits this: close its scope from another fiber, owned by the hub
            own = Effect.zipRight(own, FiberSet.run(closers, Scope.close(scope, Exit.void)))
          }
          return userDialerOnEvent === undefined ? own : Effect.zipRight(own, userDialerOnEvent(e))
        }
        const dialer = yield* Dialer.make({ id: key, ...dialerOptions, onEvent }).pipe(Scope.extend(scope))
        dialerRef = dialer
        // the dialer may already have stopped (e.g. an exhausted backoff): then it is not registered
        if (dialer.unsafeStats().status !== "Stopped") peers.set(key, { kind: "outbound", dialer, scope })
        else yield* Scope.close(scope, Exit.void)
        return dialer
      })

    const addInbound = (key: string, conn: Connection.Connection) =>
      Effect.gen(function*() {
        if (closing) return yield* Effect.fail(new DuplicatePeer({ key, reason: "HubClosing" }))
        if (peers.has(key)) return yield* Effect.fail(new DuplicatePeer({ key, reason: "AlreadyRegistered" }))
        const peer: Peer = { kind: "inbound", conn }
        peers.set(key, peer)
        yield* emit(Event.Connected({ key, kind: "inbound", connectionId: conn.id }))
        // when it closes: unregister and report what it had queued
        yield* FiberMap.run(
          watchers,
          key,
          Effect.flatMap(conn.outcome, (o) =>
            Effect.suspend(() => {
              if (peers.get(key) !== peer) return Effect.void
              peers.delete(key)
              return emit(Event.Disconnected({
                key,
                kind: "inbound",
                reason: o.reason,
                undelivered: resendable(o),
                requeued: 0
              }))
            }))
        )
      })

    const remove = (key: string) =>
      Effect.flatMap(lookup(key), (p): Effect.Effect<ReadonlyArray<Uint8Array>> => {
        peers.delete(key)
        if (p.kind === "outbound") {
          return p.dialer.stop(`removed from hub`).pipe(
            Effect.zipLeft(Scope.close(p.scope, Exit.void)),
            Effect.map((o) => o.undelivered)
          )
        }
        return p.conn.close(DR.LocalClose({ message: "removed from hub" })).pipe(
          Effect.tap((o) =>
            emit(Event.Removed({ key, kind: "inbound", reason: "removed from hub", undelivered: resendable(o) }))
          ),
          Effect.map(resendable)
        )
      })

    const send = (key: string, frame: Uint8Array): Effect.Effect<void, Hub.SendError> =>
      Effect.flatMap(
        lookup(key),
        (p): Effect.Effect<void, Hub.SendError> => p.kind === "outbound" ? p.dialer.send(frame) : p.conn.send(frame)
      )

    const broadcast = (frame: Uint8Array): Effect.Effect<Hub.BroadcastResult, Framing.FrameError> =>
      Effect.suspend(() => {
        const err = codec.check(frame)
        if (err) return Effect.fail(err)
        // encoded once: every peer on the same wire format gets this one buffer
        const shared = new Connection.Encoded(Framing.encode(codec, frame), frame)
        const targets = Array.from(peers.entries())
        const sendTo = (p: Peer): Effect.Effect<void, Hub.SendError> => {
          if (p.kind === "outbound") {
            return sameWire(p.dialer.codec, codec) ? p.dialer.sendEncoded(shared) : p.dialer.send(frame)
          }
          return sameWire(p.conn.codec, codec) ? p.conn.sendEncoded(shared) : p.conn.send(frame)
        }
        // first pass, in order and without forking: every peer with room takes the frame at once
        const tryTo = (p: Peer): Effect.Effect<"accepted" | "full", Hub.SendError> => {
          if (p.kind === "outbound") {
            return sameWire(p.dialer.codec, codec)
              ? p.dialer.trySendEncoded(shared)
              : Effect.as(p.dialer.send(frame), "accepted" as const)
          }
          return sameWire(p.conn.codec, codec) ? p.conn.trySendEncoded(shared) : p.conn.trySend(frame)
        }
        const accepted: Array<string> = []
        const failed: Array<{ readonly key: string; readonly error: Hub.SendError }> = []
        const full: Array<[string, Peer]> = []
        return Effect.forEach(targets, ([key, p]) =>
          Effect.match(tryTo(p), {
            onFailure: (error) => {
              failed.push({ key, error })
            },
            onSuccess: (r) => {
              if (r === "accepted") accepted.push(key)
              else full.push([key, p])
            }
          }), { discard: true }).pipe(
            // second pass: the peers whose queue was full are waited for concurrently (one slow peer
            // does not hold up the others)
            Effect.zipRight(Effect.forEach(full, ([key, p]) =>
              Effect.match(sendTo(p), {
                onFailure: (error) => {
                  failed.push({ key, error })
                },
                onSuccess: () => {
                  accepted.push(key)
                }
              }), { concurrency: "unbounded", discard: true })),
            Effect.as<Hub.BroadcastResult>({ accepted, failed })
          )
      })

    // closing the hub stops its dialers (their undelivered frames are reported as Removed events);
    // inbound connections belong to whoever accepted them and are only unregistered
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closing = true
        const all = Array.from(peers.entries())
        peers.clear()
        return Effect.forEach(all, ([, p]) =>
          p.kind === "outbound"
            ? Effect.zipRight(p.dialer.stop("hub closed"), Scope.close(p.scope, Exit.void))
            : Effect.void, { concurrency: "unbounded", discard: true })
      })
    )

    const hub: Hub.Hub = Object.assign(Object.create(HubProto), {
      [peersKey]: peers,
      codec,
      addDialer,
      addInbound,
      remove,
      send,
      broadcast,
      keys: Effect.sync(() => Array.from(peers.keys())),
      peer: (key) =>
        Effect.sync(() => {
          const p = peers.get(key)
          if (p === undefined) return Option.none()
          return Option.some<Hub.PeerInfo>(
            p.kind === "outbound"
              ? { key, kind: "outbound", dialer: Option.some(p.dialer), connection: Option.none() }
              : { key, kind: "inbound", dialer: Option.none(), connection: Option.some(p.conn) }
          )
        }),
      events: Stream.fromPubSub(pubsub),
      subscribe: PubSub.subscribe(pubsub)
    } satisfies Omit<HubImpl, keyof typeof HubProto>)
    return hub
  })

/** @internal */
export const layer = (options?: Hub.Options): Layer.Layer<HubTag> => Layer.scoped(HubTag, make(options))
