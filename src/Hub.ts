/**
 * A registry of keyed peers — outbound {@link Dialer.Dialer}s it owns and
 * inbound {@link Connection.Connection}s it watches — addressed one by one or
 * all at once.
 *
 * - `send(key, frame)`: an unknown key fails with {@link UnknownPeer}; a
 *   dialer that is reconnecting keeps the frame in its backlog and replays it
 *   exactly once.
 * - `broadcast(frame)`: the frame is encoded **once**; every peer on the hub's
 *   wire format gets the same buffer (a peer with another codec gets its own
 *   encoding). One peer's failure does not fail the others: the result lists
 *   who accepted and who did not.
 * - An inbound peer that disconnects is removed, and what it had queued but
 *   not written is reported in its `Disconnected` event.
 * - Events go to a bounded **sliding** PubSub: a subscriber that falls behind
 *   loses the oldest events, never blocks the hub. Use `onEvent` for a
 *   lossless, inline view.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Inspectable from "effect/Inspectable"
import type * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Backlog from "./Backlog.js"
import type * as Connection from "./Connection.js"
import type * as Dialer from "./Dialer.js"
import type { DisconnectReason } from "./DisconnectReason.js"
import type * as Framing from "./Framing.js"
import * as cfg from "./internal/config.js"
import * as internal from "./internal/hub.js"

/**
 * No peer is registered under `key`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Framing, Hub } from "effect-tether"
 *
 * const sendOrWarn = (hub: Hub.Hub, key: string) =>
 *   hub.send(key, Framing.utf8("x")).pipe(Effect.catchTag("UnknownPeer", (e) => Effect.logWarning(e.message)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const UnknownPeer: typeof internal.UnknownPeer = internal.UnknownPeer

/**
 * The instance type of {@link UnknownPeer}.
 *
 * @example
 * ```ts
 * import type { Hub } from "effect-tether"
 *
 * const which = (e: Hub.UnknownPeer) => e.key
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type UnknownPeer = internal.UnknownPeer

/**
 * A peer is already registered under `key` (or the hub is closing).
 *
 * @example
 * ```ts
 * import { Hub } from "effect-tether"
 *
 * const e = new Hub.DuplicatePeer({ key: "venue-1", reason: "AlreadyRegistered" })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const DuplicatePeer: typeof internal.DuplicatePeer = internal.DuplicatePeer

/**
 * The instance type of {@link DuplicatePeer}.
 *
 * @example
 * ```ts
 * import type { Hub } from "effect-tether"
 *
 * const why = (e: Hub.DuplicatePeer) => `${e.key}: ${e.reason}`
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type DuplicatePeer = internal.DuplicatePeer

/**
 * Why `remove` failed: the key is not registered, or (on a FleetHub) the engine could not be reached, and the
 * peer is still declared.
 *
 * @example
 * ```ts
 * import type { Hub } from "effect-tether"
 *
 * const describe = (e: Hub.RemoveError) => e._tag
 * ```
 *
 * @since 0.4.0
 * @category errors
 */
export type RemoveError = UnknownPeer | Connection.ConnectionClosed

/**
 * Why a send to one peer failed.
 *
 * @example
 * ```ts
 * import type { Hub } from "effect-tether"
 *
 * const describe = (e: Hub.SendError) => e._tag
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type SendError =
  | UnknownPeer
  | Connection.ConnectionClosed
  | Framing.FrameError
  | Backlog.BacklogFull
  | Dialer.DialerStopped

/**
 * Hub events, each with the peer's key.
 *
 * - `Connected` / `Reconnected`: a dialer's first / later connection, or an inbound peer added.
 * - `Disconnected`: a connection ended. For an inbound peer, `undelivered` are
 *   the frames it had accepted but not written (lost with it, reported here): the
 *   frame cut in the middle (`CloseOutcome.truncated`, undecodable by the peer), if
 *   any, then those none of whose bytes reached the kernel — all safe to resend;
 *   for a dialer they went back to its backlog (`requeued`).
 * - `BacklogOverflow`, `Expired`, `Discarded`: frames a dialer's backlog gave up on (evictions under
 *   `dropOldest` come one event per burst, see `Backlog.Options.policy`).
 * - `Removed`: a peer left the hub (dialer stopped or `remove`), with the frames handed back.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Hub } from "effect-tether"
 *
 * const log = (e: Hub.Event) => Effect.logInfo(`${e.key}: ${e._tag}`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Event = Data.TaggedEnum<{
  Connected: { readonly key: string; readonly kind: PeerKind; readonly connectionId: string }
  Reconnected: { readonly key: string; readonly connectionId: string }
  Disconnected: {
    readonly key: string
    readonly kind: PeerKind
    readonly reason: DisconnectReason
    readonly undelivered: ReadonlyArray<Uint8Array>
    readonly requeued: number
  }
  BacklogOverflow: {
    readonly key: string
    readonly policy: Backlog.Policy
    readonly reason: "evicted" | "maxMessages" | "maxBytes"
    readonly frames: ReadonlyArray<Uint8Array>
  }
  Expired: { readonly key: string; readonly frames: ReadonlyArray<Uint8Array> }
  Discarded: { readonly key: string; readonly frames: ReadonlyArray<Uint8Array>; readonly reason: string }
  Removed: {
    readonly key: string
    readonly kind: PeerKind
    readonly reason: string
    readonly undelivered: ReadonlyArray<Uint8Array>
  }
}>

/**
 * Constructors and matchers for {@link Event}.
 *
 * @example
 * ```ts
 * import { Hub } from "effect-tether"
 *
 * const isDown = Hub.Event.$is("Disconnected")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const Event: Data.TaggedEnum.Constructor<Event> = internal.Event

/**
 * Outbound (a dialer the hub owns) or inbound (an accepted connection it watches).
 *
 * @example
 * ```ts
 * import type { Hub } from "effect-tether"
 *
 * const k: Hub.PeerKind = "inbound"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type PeerKind = "outbound" | "inbound"

/**
 * A registered peer.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import type { Hub } from "effect-tether"
 *
 * const kindOf = (hub: Hub.Hub, key: string) => Effect.map(hub.peer(key), Option.map((p) => p.kind))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerInfo {
  readonly key: string
  readonly kind: PeerKind
  readonly dialer: Option.Option<Dialer.Dialer>
  readonly connection: Option.Option<Connection.Connection>
}

/**
 * What a broadcast did: the keys that accepted the frame (sent, or kept in a
 * backlog) and those that did not, with why.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Framing, type Hub } from "effect-tether"
 *
 * const tick = (hub: Hub.Hub) =>
 *   Effect.map(hub.broadcast(Framing.utf8("tick")), (r) => `${r.accepted.length} ok, ${r.failed.length} failed`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface BroadcastResult {
  readonly accepted: ReadonlyArray<string>
  readonly failed: ReadonlyArray<{ readonly key: string; readonly error: SendError }>
}

/**
 * Hub options.
 *
 * @example
 * ```ts
 * import { Framing, type Hub } from "effect-tether"
 *
 * const options: Hub.Options = { codec: Framing.lengthPrefixed({ maxFrameBytes: 1 << 20 }), eventsCapacity: 4096 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The wire format broadcasts are encoded with, once (default: 4-byte length prefix). */
  readonly codec?: Framing.Codec | undefined
  /** Capacity of the sliding event PubSub (default 1024). */
  readonly eventsCapacity?: number | undefined
  /** Called inline for every event (lossless); must not block. */
  readonly onEvent?: ((event: Event) => Effect.Effect<void>) | undefined
}

/**
 * The unique identifier of a {@link Hub}: every hub carries it, so {@link isHub} can tell one.
 *
 * @example
 * ```ts
 * import { Hub } from "effect-tether"
 *
 * const hasId = (u: object) => Hub.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * The type of {@link TypeId}.
 *
 * @example
 * ```ts
 * import type { Hub } from "effect-tether"
 *
 * type Id = Hub.TypeId
 * ```
 *
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * A hub. Make one with {@link make} (in a scope) or {@link layer}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Framing, Hub } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const hub = yield* Hub.make()
 *     yield* hub.addDialer("venue-a", { host: "127.0.0.1", port: 9001 })
 *     yield* hub.addDialer("venue-b", { host: "127.0.0.1", port: 9002 })
 *     yield* hub.send("venue-a", Framing.utf8("order"))
 *     yield* hub.broadcast(Framing.utf8("heartbeat"))
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Hub extends Inspectable.Inspectable {
  readonly [TypeId]: TypeId
  /** The broadcast wire format. */
  readonly codec: Framing.Codec
  /** Starts a dialer owned by the hub (its `id` defaults to the key). */
  readonly addDialer: <E = never, R = never>(
    key: string,
    options: Dialer.Options<E, R>
  ) => Effect.Effect<Dialer.Dialer, DuplicatePeer, R>
  /** Registers an accepted connection; it is removed (and reported) when it closes. */
  readonly addInbound: (key: string, connection: Connection.Connection) => Effect.Effect<void, DuplicatePeer>
  /**
   * Unregisters a peer and closes it gracefully (a dialer is stopped); returns its undelivered frames. Fails
   * `UnknownPeer` for a key that is not registered; `ConnectionClosed` only on a FleetHub whose engine could
   * not be reached or could not delete the peer's log (`FleetHub.isEngineUnavailable`): the peer stays declared.
   */
  readonly remove: (key: string) => Effect.Effect<ReadonlyArray<Uint8Array>, RemoveError>
  readonly send: (key: string, frame: Uint8Array) => Effect.Effect<void, SendError>
  /** Encodes once and sends to every peer; fails only for a frame the hub's codec cannot encode. */
  readonly broadcast: (frame: Uint8Array) => Effect.Effect<BroadcastResult, Framing.FrameError>
  readonly keys: Effect.Effect<ReadonlyArray<string>>
  readonly peer: (key: string) => Effect.Effect<Option.Option<PeerInfo>>
  /** Events from the moment the stream starts (sliding buffer). */
  readonly events: Stream.Stream<Event>
  /** A subscription to the events, from now on (sliding buffer). */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event>, never, Scope.Scope>
}

/**
 * Whether `u` is a {@link Hub}. A hub is also Inspectable: `toJSON`, `toString` and Node's inspect show its wire
 * format and its peers (key and kind), never its internals.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Hub } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const hub = yield* Hub.make()
 *     Hub.isHub(hub) // true
 *     yield* Effect.log(hub.toJSON()) // { _id: "Hub", codec: "lengthPrefixed", peers: [] }
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isHub: (u: unknown) => u is Hub = internal.isHub

/**
 * The service tag of a {@link Hub}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Framing, Hub } from "effect-tether"
 *
 * const program = Effect.flatMap(Hub.Tag, (hub) => hub.broadcast(Framing.utf8("x")))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Tag: typeof internal.HubTag = internal.HubTag

/**
 * The identifier type of {@link Tag} (what a layer providing a hub provides).
 *
 * @example
 * ```ts
 * import type { Layer } from "effect"
 * import type { Hub } from "effect-tether"
 *
 * type HubLayer = Layer.Layer<Hub.Tag>
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export type Tag = internal.HubTag

/**
 * Makes a hub in the current scope. Closing the scope stops its dialers (their
 * undelivered frames are reported in `Removed` events) and unregisters the
 * inbound connections (which belong to whoever accepted them).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Hub } from "effect-tether"
 *
 * const program = Effect.scoped(Effect.flatMap(Hub.make({ eventsCapacity: 256 }), (hub) => hub.keys))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<Hub, never, Scope.Scope> = internal.make

/**
 * A layer providing a {@link Hub} for the lifetime of the layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Framing, Hub } from "effect-tether"
 *
 * const program = Effect.flatMap(Hub.Tag, (hub) => hub.broadcast(Framing.utf8("x"))).pipe(
 *   Effect.provide(Hub.layer())
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: (options?: Options) => Layer.Layer<Tag> = internal.layer

/**
 * A {@link Hub} layer, its options read from Config when the layer is built
 * (Effect's `layerConfig` convention): `Settings.hub` for the `TETHER_*` keys,
 * or a config of your own.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Framing, Hub, Settings } from "effect-tether"
 *
 * const program = Effect.flatMap(Hub.Tag, (hub) => hub.broadcast(Framing.utf8("x"))).pipe(
 *   Effect.provide(Hub.layerConfig(Settings.hub))
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (config: Config.Config.Wrap<Options>): Layer.Layer<Tag, ConfigError.ConfigError> =>
  cfg.layerConfig(config, (options: Options) => layer(options))
