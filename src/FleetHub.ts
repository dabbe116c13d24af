/**
 * One logical {@link Hub.Hub} across processes: every node runs a FleetHub over a shared {@link Engine.Engine}
 * (`NatsEngine` in production, `MemoryEngine` in tests) and the application keeps using `Hub.Tag`.
 *
 * - **Outbound peers declared as data** (`addPeer(key, kind, spec)`, a {@link PeerKind.PeerKind} registered on
 *   every node): a send from any node is appended to the peer's durable log (idempotently, with an id per
 *   frame); while the engine is unreachable frames wait in the sending node's in-memory `Backlog` (the kind's
 *   bounds, reported as today) and are flushed in order with the same ids.
 * - **Exactly one holder**: the node holding the peer's lease runs its `Dialer`, feeds it from the log while
 *   it is connected and acknowledges by the *written* watermark (a frame is acked once its connection's
 *   `framesOut` passed it, or its connection closed without handing it back). It stops writing — aborting the
 *   connection — the moment it cannot prove it still holds the lease (`LeaseLost`).
 * - **Across a holder's death** the guarantee is at-least-once: the next holder replays the un-acked window in
 *   order and every replayed frame is flagged — a `PossibleDuplicate` event, {@link isPossibleDuplicate} on the
 *   frame written, and the kind's `markDuplicate` rewrite (FIX: PossDupFlag=Y). Everything else is exactly once.
 * - **Bounds**: `BacklogFull` when the durable log refuses (rejectNew); frames older than `maxAge` are dropped
 *   by the holder and reported `Expired` with their payloads; what the engine removed by itself (drop-oldest,
 *   its age backstop) shows as a gap in the log's sequence, reported as `Lost` with a count.
 * - **Inbound peers** (and `addDialer`, a node-local dialer as with `Hub`) stay on their node; other nodes
 *   reach them through the engine's registry, whose entries die with the node's lease: a send to a peer of a
 *   dead node fails `UnknownPeer`, no ghosts. A send the engine could not route because it was unreachable (to
 *   a peer this node does not have, while the engine is `Unavailable`) fails `ConnectionClosed` with an
 *   `IoError` reason coded `"EngineUnavailable"` — {@link isEngineUnavailable} — not `UnknownPeer`: the peer
 *   may well exist. (What the engine said last still stands: a key it last reported unregistered, or on a node
 *   gone since, fails `UnknownPeer` as before.)
 * - `broadcast` reaches every declared outbound peer and every peer on every live node. A node it cannot ask
 *   (the engine unreachable, the request timed out, the node gone) has its inbound peers listed in `failed` —
 *   the ones this node knows of: from that node's answer to the last broadcast and from where sends found
 *   them — with the engine's error ({@link isEngineUnavailable}), or `UnknownPeer` for a node gone. A peer
 *   this node never heard of is not listed: its key is not known here.
 *
 * @since 0.2.0
 */
import type * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Engine from "./Engine.js"
import type * as Hub from "./Hub.js"
import * as internal from "./internal/fleetHub.js"
import type * as PeerKind from "./PeerKind.js"

/**
 * The unique identifier of a {@link FleetHub}.
 *
 * @example
 * ```ts
 * import { FleetHub } from "effect-tether"
 *
 * const isFleet = (u: object) => FleetHub.TypeId in u
 * ```
 *
 * @since 0.2.0
 * @category symbols
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * The type of {@link TypeId}.
 *
 * @example
 * ```ts
 * import type { FleetHub } from "effect-tether"
 *
 * type Id = FleetHub.TypeId
 * ```
 *
 * @since 0.2.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * The events only a fleet has.
 *
 * - `Moved`: this node took an outbound peer over (`from` is the previous holder when the engine knows it).
 * - `PossibleDuplicate`: frames replayed after a move that a previous holder may already have written.
 * - `LeaseLost`: this node stopped writing to a peer because it could not prove it still held it.
 * - `Lost`: the engine removed `count` frames by itself (drop-oldest or its age backstop) before the holder
 *   read them — their payloads are gone, their number is reported.
 *
 * @example
 * ```ts
 * import type { FleetHub } from "effect-tether"
 *
 * const show = (e: FleetHub.FleetEvent) => `${e.key}: ${e._tag}`
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type FleetEvent = Data.TaggedEnum<{
  Moved: {
    readonly key: string
    readonly from: Option.Option<string>
    readonly to: string
    readonly revision: number
  }
  PossibleDuplicate: { readonly key: string; readonly frames: ReadonlyArray<Uint8Array> }
  LeaseLost: { readonly key: string; readonly reason: string }
  Lost: { readonly key: string; readonly fromSeq: number; readonly count: number }
}>

/**
 * Constructors and matchers for {@link FleetEvent}.
 *
 * @example
 * ```ts
 * import { FleetHub } from "effect-tether"
 *
 * const isMove = FleetHub.FleetEvent.$is("Moved")
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const FleetEvent: Data.TaggedEnum.Constructor<FleetEvent> = internal.FleetEvent

/**
 * Every event of a fleet node: the Hub's and the fleet's own.
 *
 * @example
 * ```ts
 * import type { FleetHub } from "effect-tether"
 *
 * const tag = (e: FleetHub.Event) => e._tag
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type Event = Hub.Event | FleetEvent

/**
 * FleetHub options (the Hub's, plus the fleet's).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { type FleetHub, PeerKind } from "effect-tether"
 *
 * const Venue = PeerKind.make("venue", {
 *   spec: Schema.Struct({ port: Schema.Number }),
 *   dialer: (_key, spec) => ({ host: "127.0.0.1", port: spec.port })
 * })
 * const options: FleetHub.Options = { kinds: [Venue], leaseTtl: "3 seconds" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options extends Hub.Options {
  /** The peer kinds this node can run (register the same on every node). */
  readonly kinds: ReadonlyArray<PeerKind.PeerKind<any, any>>
  /** Lease TTL of nodes and held peers (default 3 s): a dead node's peers move, and its inbound keys vanish, after it. */
  readonly leaseTtl?: Duration.DurationInput | undefined
  /** How often leases are renewed and free peers taken (default a third of the TTL). */
  readonly tick?: Duration.DurationInput | undefined
  /** Whether this node takes outbound peers (default true); `false`: a client-only node that sends and routes. */
  readonly hold?: boolean | undefined
  /** Most entries a holder reads from a log at once (default 64). */
  readonly fetchBatch?: number | undefined
  /** Deadline of a request to another node (default 2 s). */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /** How soon a holder with written, un-acked frames comes back to ack them (default 50 ms). */
  readonly ackInterval?: Duration.DurationInput | undefined
  /** Pause between flush attempts of the in-memory backlog while the engine is unreachable (default 200 ms). */
  readonly retryInterval?: Duration.DurationInput | undefined
  /** Called inline for every event, the fleet's included (lossless); must not block. */
  readonly onFleetEvent?: ((event: Event) => Effect.Effect<void>) | undefined
}

/**
 * A fleet node: a {@link Hub.Hub} (same interface and events) plus the fleet's surface.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { FleetHub, Framing, MemoryEngine, PeerKind } from "effect-tether"
 *
 * const Venue = PeerKind.make("venue", {
 *   spec: Schema.Struct({ port: Schema.Number }),
 *   dialer: (_key, spec) => ({ host: "127.0.0.1", port: spec.port })
 * })
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const fleet = yield* FleetHub.make({ kinds: [Venue] })
 *     yield* fleet.addPeer("venue-a", Venue, { port: 9001 })
 *     yield* fleet.send("venue-a", Framing.utf8("order"))
 *   })
 * ).pipe(Effect.provide(MemoryEngine.makeCluster().layer("node-1")))
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface FleetHub extends Hub.Hub {
  readonly [TypeId]: TypeId
  /** This node's id (the engine's). */
  readonly node: string
  /** Declares an outbound peer as data; some node (maybe another) takes it and runs its dialer. */
  readonly addPeer: <S, I>(
    key: string,
    kind: PeerKind.PeerKind<S, I>,
    spec: S
  ) => Effect.Effect<void, Hub.DuplicatePeer | Engine.EngineError>
  /** The outbound peers this node holds now. */
  readonly held: Effect.Effect<ReadonlyArray<string>>
  /** Every event, the fleet's included (sliding buffer). */
  readonly fleetEvents: Stream.Stream<Event>
  /** A subscription to {@link fleetEvents}, from now on. */
  readonly subscribeFleet: Effect.Effect<Queue.Dequeue<Event>, never, Scope.Scope>
}

/**
 * Whether `u` is a {@link FleetHub}.
 *
 * @example
 * ```ts
 * import { FleetHub } from "effect-tether"
 *
 * FleetHub.isFleetHub({}) // false
 * ```
 *
 * @since 0.2.0
 * @category guards
 */
export const isFleetHub: (u: unknown) => u is FleetHub = internal.isFleetHub

/**
 * Whether a frame handed to a dialer was a possible duplicate (replayed after a move). Session code that
 * sees the frames it writes can use this to mark a resend.
 *
 * @example
 * ```ts
 * import { FleetHub, Framing } from "effect-tether"
 *
 * FleetHub.isPossibleDuplicate(Framing.utf8("x")) // false
 * ```
 *
 * @since 0.2.0
 * @category guards
 */
export const isPossibleDuplicate: (frame: Uint8Array) => boolean = internal.isPossibleDuplicate

/**
 * Whether a send failed because the engine could not be reached to route it: a send to a peer this node does
 * not have (an inbound peer of another node; an outbound peer it has not cached) while the engine is
 * `Unavailable`, or a request to the peer's node that could not go out. Such a send fails `ConnectionClosed`
 * whose reason is an `IoError` with `code: "EngineUnavailable"` (`"EngineError"` for another engine failure),
 * within `Hub.SendError`, and not `UnknownPeer`: the peer may well exist, and a later send may reach it.
 * What the engine said last still stands while it cannot be asked: a key it last reported as not registered,
 * or registered on a node that is no longer live (as of this node's last tick), fails `UnknownPeer`. (A send to
 * an outbound peer in the node's directory does not fail: it waits in the node's bounded backlog.)
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { FleetHub, Framing, type Hub } from "effect-tether"
 *
 * const sendSoon = (hub: Hub.Hub, key: string) =>
 *   hub.send(key, Framing.utf8("x")).pipe(
 *     Effect.retry({ while: FleetHub.isEngineUnavailable, schedule: Schedule.spaced("1 second"), times: 5 })
 *   )
 * ```
 *
 * @since 0.2.0
 * @category guards
 */
export const isEngineUnavailable: (error: Hub.SendError) => boolean = internal.isEngineUnavailable

/**
 * The service tag of a {@link FleetHub} (its layer provides `Hub.Tag` too).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FleetHub } from "effect-tether"
 *
 * const held = Effect.flatMap(FleetHub.Tag, (f) => f.held)
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export const Tag: typeof internal.FleetHubTag = internal.FleetHubTag

/**
 * The identifier type of {@link Tag}.
 *
 * @example
 * ```ts
 * import type { Layer } from "effect"
 * import type { FleetHub } from "effect-tether"
 *
 * type FleetLayer = Layer.Layer<FleetHub.Tag>
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export type Tag = internal.FleetHubTag

/**
 * Makes a fleet node in the current scope, on the {@link Engine.Engine} in context. Closing the scope stops
 * the dialers it holds (their leases are released, so other nodes take them at once) and releases its node
 * lease.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FleetHub, MemoryEngine } from "effect-tether"
 *
 * const program = Effect.scoped(Effect.flatMap(FleetHub.make({ kinds: [] }), (f) => f.keys)).pipe(
 *   Effect.provide(MemoryEngine.makeCluster().layer("a"))
 * )
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<FleetHub, Engine.EngineError, Scope.Scope | Engine.Tag> = internal.make

/**
 * A layer providing both `Hub.Tag` and {@link Tag}: an app switches from `Hub.layer()` to
 * `FleetHub.layer(...)` plus an engine layer and keeps using `Hub.Tag`.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { FleetHub, Framing, Hub, MemoryEngine } from "effect-tether"
 *
 * const program = Effect.flatMap(Hub.Tag, (hub) => hub.broadcast(Framing.utf8("x"))).pipe(
 *   Effect.provide(FleetHub.layer({ kinds: [] }).pipe(Layer.provide(MemoryEngine.makeCluster().layer("a"))))
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: (options: Options) => Layer.Layer<Hub.Tag | Tag, Engine.EngineError, Engine.Tag> =
  internal.layer

/**
 * The fleet's Effect metrics: `tether_fleet_held_peers` (gauge: outbound peers this node holds),
 * `tether_fleet_moves_total` (peers taken over from another node), `tether_fleet_redelivered_total` (frames
 * replayed after a move, i.e. possible duplicates) and `tether_fleet_publish_seconds` (engine append latency).
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { FleetHub } from "effect-tether"
 *
 * const held = Metric.value(FleetHub.metrics.heldPeers)
 * ```
 *
 * @since 0.2.0
 * @category metrics
 */
export const metrics: {
  readonly heldPeers: typeof internal.heldPeers
  readonly moves: typeof internal.moves
  readonly redelivered: typeof internal.redelivered
  readonly publishLatency: typeof internal.publishLatency
} = {
  heldPeers: internal.heldPeers,
  moves: internal.moves,
  redelivered: internal.redelivered,
  publishLatency: internal.publishLatency
}
