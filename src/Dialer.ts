/**
 * An outbound connection that reconnects by policy, honours "stop" at once,
 * connects only inside its session window, and never loses, duplicates or
 * endlessly hoards the frames sent while it is down.
 *
 * The dialer owns one loop fiber in its scope:
 *
 * 1. wait for the {@link SessionSchedule} window (a new period first discards
 *    the backlog unless `keepAcrossPeriods`, then runs `onNewPeriod`);
 * 2. connect, bounded by `connectTimeout`;
 * 3. make a {@link Connection.Connection} in a child scope, replay the backlog
 *    on it (in order, before any new frame), and run `session(connection)`;
 * 4. when the session decides (`Reconnect` or `Stop`), the connection closes,
 *    or the window ends (`onWindowEnd` runs first, e.g. to send a Logout), the
 *    connection is closed gracefully (bounded by its drain and linger
 *    timeouts) and every frame it had accepted but not written goes back to
 *    the front of the backlog;
 * 5. on `Reconnect`, sleep per the backoff `Schedule` (reset once a connection
 *    stayed up for `resetAfter`) and go again; on `Stop`, end.
 *
 * The stop-gate ({@link Dialer.stop}, closing the scope, a `Stop` decision)
 * is honoured in every state: while waiting for the window, connecting,
 * connected, and during backoff. When the dialer ends, the frames still in
 * the backlog are handed back in its {@link StopOutcome}.
 *
 * **Exactly once.** `send` routes each frame either to the live connection
 * (once the replay is done) or to the backlog; the choice and the commit are
 * one synchronous step. A frame refused by a connection that is closing is
 * routed again; a frame the connection accepted comes back, if it was not
 * written, in that connection's `CloseOutcome.undelivered` and is put back
 * in front of the backlog. "Delivered" means handed to the kernel: frames
 * lost after that (in the peer's socket buffer) are beyond this library.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Inspectable from "effect/Inspectable"
import type * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Queue from "effect/Queue"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Backlog from "./Backlog.js"
import type * as Connection from "./Connection.js"
import type * as Framed from "./Framed.js"
import type { DisconnectReason } from "./DisconnectReason.js"
import type * as Framing from "./Framing.js"
import * as cfg from "./internal/config.js"
import * as internal from "./internal/dialer.js"
import type * as SessionSchedule from "./SessionSchedule.js"
import type * as Transport from "./Transport.js"

/**
 * What a session decides when it ends: connect again, or stop the dialer
 * (e.g. after a fatal protocol error).
 *
 * @example
 * ```ts
 * import { Dialer } from "effect-tether"
 *
 * const d: Dialer.Decision = Dialer.Decision.Stop({ reason: "logon rejected" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Decision = Data.TaggedEnum<{
  Reconnect: {}
  Stop: { readonly reason: string }
}>

/**
 * Constructors and matchers for {@link Decision}.
 *
 * @example
 * ```ts
 * import { Dialer } from "effect-tether"
 *
 * const again = Dialer.Decision.Reconnect()
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const Decision: Data.TaggedEnum.Constructor<Decision> = internal.Decision

/**
 * A send on a dialer that has stopped (or is stopping). `reason` is why.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Dialer } from "effect-tether"
 *
 * const sendOrLog = (dialer: Dialer.Dialer, frame: Uint8Array) =>
 *   dialer.send(frame).pipe(Effect.catchTag("DialerStopped", (e) => Effect.logInfo(e.reason)))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const DialerStopped: typeof internal.DialerStopped = internal.DialerStopped

/**
 * The instance type of {@link DialerStopped}.
 *
 * @example
 * ```ts
 * import type { Dialer } from "effect-tether"
 *
 * const why = (e: Dialer.DialerStopped) => e.reason
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type DialerStopped = internal.DialerStopped

/**
 * Where the dialer's loop is.
 *
 * @example
 * ```ts
 * import type { Dialer } from "effect-tether"
 *
 * const s: Dialer.Status = "Backoff"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "WaitingForWindow" | "Connecting" | "Replaying" | "Connected" | "Closing" | "Backoff" | "Stopped"

/**
 * What a stopped dialer hands back: why it stopped, and the frames it had
 * accepted but never written (in order).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Dialer } from "effect-tether"
 *
 * const shutdown = (d: Dialer.Dialer) =>
 *   Effect.flatMap(d.stop("bye"), (o) => Effect.log(`${o.undelivered.length} frames not sent`))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface StopOutcome {
  readonly reason: string
  readonly undelivered: ReadonlyArray<Uint8Array>
}

/**
 * Dialer events (also published on {@link Dialer.events}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Dialer } from "effect-tether"
 *
 * const onEvent = (e: Dialer.Event) =>
 *   e._tag === "Disconnected" ? Effect.logInfo(`down after ${e.uptimeMillis} ms`) : Effect.void
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Event = Data.TaggedEnum<{
  WaitingForWindow: { readonly opensAt: number }
  NewPeriod: { readonly previous: Option.Option<string>; readonly current: string }
  Connecting: { readonly attempt: number }
  ConnectFailed: { readonly attempt: number; readonly error: Transport.TransportError }
  Connected: { readonly attempt: number; readonly connectionId: string; readonly reconnected: boolean }
  Disconnected: {
    readonly connectionId: string
    readonly reason: DisconnectReason
    /** Frames the connection had accepted but not written, put back in front of the backlog. */
    readonly requeued: number
    readonly uptimeMillis: number
  }
  /**
   * Frames evicted (`dropOldest`: one event per eviction burst, see `Backlog.Options.policy`) or refused
   * (`rejectNew`: one event per refused send) by the full backlog.
   */
  BacklogOverflow: {
    readonly policy: Backlog.Policy
    readonly reason: "evicted" | "maxMessages" | "maxBytes"
    readonly frames: ReadonlyArray<Uint8Array>
  }
  Expired: { readonly frames: ReadonlyArray<Uint8Array> }
  Discarded: { readonly frames: ReadonlyArray<Uint8Array>; readonly reason: string }
  Stopped: StopOutcome
}>

/**
 * Constructors and matchers for {@link Event}.
 *
 * @example
 * ```ts
 * import { Dialer } from "effect-tether"
 *
 * const isUp = Dialer.Event.$is("Connected")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const Event: Data.TaggedEnum.Constructor<Event> = internal.Event

/**
 * Handed to the session along with the connection.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { type Connection, Dialer, Framing } from "effect-tether"
 *
 * // with readyOn: "session": log on first, then release the backlog
 * const session = (conn: Connection.Connection, control: Dialer.SessionControl) =>
 *   Effect.gen(function*() {
 *     yield* conn.send(Framing.utf8("LOGON"))
 *     yield* control.ready
 *     yield* conn.closed
 *     return Dialer.Decision.Reconnect()
 *   })
 * const dialer = Dialer.make({ port: 9876, readyOn: "session", session })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionControl {
  /**
   * Replays the backlog on this connection and then routes new sends to it;
   * completes when the replay is done. Started at connect unless
   * `readyOn: "session"`. Idempotent.
   */
  readonly ready: Effect.Effect<void>
  /** The period key of the session window. */
  readonly period: string
  /** When the window ends (epoch millis; `Infinity` for non-stop). */
  readonly windowEnd: number
  /** Connection attempt number (1-based, over the dialer's life). */
  readonly attempt: number
}

/**
 * Dialer options. Either `port` (and `host`) for TCP, or `connect` for any transport.
 *
 * @example
 * ```ts
 * import { Schedule } from "effect"
 * import { Dialer, SessionSchedule } from "effect-tether"
 *
 * const options: Dialer.Options = {
 *   host: "127.0.0.1",
 *   port: 9876,
 *   backoff: Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("10 seconds"))),
 *   schedule: SessionSchedule.daily({ start: "08:00", end: "18:00", timeZone: "Europe/London" }),
 *   backlog: { maxMessages: 1000, maxAge: "1 minute", policy: "dropOldest" }
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<E = never, R = never> {
  /** Used in logs and connection ids (default `dialer-N`). */
  readonly id?: string | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly socket?: Transport.SocketOptions | undefined
  /** Makes the transport (default: TCP to `host:port`). Runs in the connection's scope, bounded by `connectTimeout`. */
  readonly connect?: Effect.Effect<Transport.Transport, Transport.TransportError, Scope.Scope> | undefined
  /**
   * Makes the connection's message seam instead of a transport (e.g. `WebSocket.dialer`'s): its own
   * codec then frames the messages (`connection.codec` only checks what `send` accepts). Takes
   * precedence over `connect`. (since 0.3.0)
   */
  readonly connectFramed?: Effect.Effect<Framed.Framed, Transport.TransportError, Scope.Scope> | undefined
  /** Bound on each connect (default 10 s). */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Options of every connection (one codec is shared by all of them). */
  readonly connection?: Connection.Options | undefined
  /**
   * Runs once per connection and decides what comes next (default: wait for
   * the connection to close, then `Reconnect`). A failure decides `Stop`.
   * The connection is also available as the `Connection.Connection` service.
   */
  readonly session?: ((connection: Connection.Connection, control: SessionControl) => Effect.Effect<Decision, E, R>) | undefined
  /** How long the session may take to decide after its connection closed (default 1 s; then `Reconnect`). */
  readonly sessionGrace?: Duration.DurationInput | undefined
  /** When the backlog is replayed: at connect (default) or when the session calls `control.ready`. */
  readonly readyOn?: "connect" | "session" | undefined
  /**
   * Delays between connection attempts (default: exponential from 100 ms,
   * jittered ×0.8–1.2, capped at 30 s). When it ends, the dialer stops.
   */
  readonly backoff?: Schedule.Schedule<unknown, unknown> | undefined
  /** A connection that stayed up this long resets the backoff (default 10 s). */
  readonly resetAfter?: Duration.DurationInput | undefined
  /** When connecting is allowed (default non-stop). */
  readonly schedule?: SessionSchedule.SessionSchedule | undefined
  /**
   * Runs on the live connection when its window ends, before the graceful close (e.g. send a Logout).
   * The session fiber has already been interrupted by then: send through the connection given here,
   * and keep any protocol state the hook needs outside the session callback (as examples/fix does).
   */
  readonly onWindowEnd?: ((connection: Connection.Connection) => Effect.Effect<void, unknown>) | undefined
  /** Runs when a new session period begins, before its first connection (e.g. reset sequence numbers). */
  readonly onNewPeriod?:
    | ((period: { readonly previous: Option.Option<string>; readonly current: string }) => Effect.Effect<void, unknown>)
    | undefined
  /** Bound on each hook (default 5 s). */
  readonly hookTimeout?: Duration.DurationInput | undefined
  /** Bounds and policy of the backlog. */
  readonly backlog?: Backlog.Options | undefined
  /** Called inline for every event; must not block. */
  readonly onEvent?: ((event: Event) => Effect.Effect<void>) | undefined
  /** Capacity of the event PubSub (sliding: a slow subscriber loses the oldest events; default 256). */
  readonly eventsCapacity?: number | undefined
}

/**
 * The unique identifier of a {@link Dialer}: every dialer carries it, so {@link isDialer} can tell one.
 *
 * @example
 * ```ts
 * import { Dialer } from "effect-tether"
 *
 * const hasId = (u: object) => Dialer.TypeId in u
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
 * import type { Dialer } from "effect-tether"
 *
 * type Id = Dialer.TypeId
 * ```
 *
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * A dialer. Make one with {@link make} (in a scope) or {@link layer}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Dialer, Framing } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const dialer = yield* Dialer.make({ host: "127.0.0.1", port: 9876 })
 *     yield* dialer.send(Framing.utf8("hello")) // sent now, or kept in the backlog until connected
 *     const outcome = yield* dialer.stop()
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Dialer extends Inspectable.Inspectable {
  readonly [TypeId]: TypeId
  readonly id: string
  /** The codec shared by every connection of this dialer. */
  readonly codec: Framing.Codec
  /** To the live connection, or to the backlog while disconnected or replaying. */
  readonly send: (frame: Uint8Array) => Effect.Effect<void, DialerStopped | Backlog.BacklogFull | Framing.FrameError>
  /** `send` for a frame already encoded with this dialer's codec (e.g. a shared broadcast buffer). */
  readonly sendEncoded: (frame: Connection.Encoded) => Effect.Effect<void, DialerStopped | Backlog.BacklogFull>
  /** `sendEncoded` that never waits: `"full"` when the live connection's queue has no room (nothing was queued). */
  readonly trySendEncoded: (
    frame: Connection.Encoded
  ) => Effect.Effect<"accepted" | "full", DialerStopped | Backlog.BacklogFull>
  readonly status: Effect.Effect<Status>
  readonly statusChanges: Stream.Stream<Status>
  /** The live connection, once its replay is done. */
  readonly connection: Effect.Effect<Option.Option<Connection.Connection>>
  /** Closes the stop-gate and waits for the dialer to end (bounded by the connection's close bounds). */
  readonly stop: (reason?: string) => Effect.Effect<StopOutcome>
  /** Completes when the dialer has ended. */
  readonly outcome: Effect.Effect<StopOutcome>
  /** Events from the moment the stream starts (sliding buffer). */
  readonly events: Stream.Stream<Event>
  /** A subscription to the events, from now on (sliding buffer). */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Event>, never, Scope.Scope>
  readonly unsafeStats: () => {
    readonly status: Status
    readonly attempts: number
    readonly connects: number
    readonly backlogMessages: number
    readonly backlogBytes: number
  }
}

/**
 * Whether `u` is a {@link Dialer}. A dialer is also Inspectable: `toJSON`, `toString` and Node's inspect show its
 * id, status, attempt and connect counts and backlog depth, never its internals.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Dialer, Transport } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const dialer = yield* Dialer.make({ id: "upstream", connect: Effect.map(Transport.memoryPair(), ([near]) => near) })
 *     Dialer.isDialer(dialer) // true
 *     yield* Effect.log(dialer.toJSON()) // { _id: "Dialer", id: "upstream", status: ..., backlog: { ... } }
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isDialer: (u: unknown) => u is Dialer = internal.isDialer

/**
 * The service tag of a {@link Dialer}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Dialer, Framing } from "effect-tether"
 *
 * const program = Effect.flatMap(Dialer.Tag, (d) => d.send(Framing.utf8("x")))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Tag: typeof internal.DialerTag = internal.DialerTag

/**
 * The identifier type of {@link Tag} (what a layer providing a dialer provides).
 *
 * @example
 * ```ts
 * import type { Layer } from "effect"
 * import type { Dialer } from "effect-tether"
 *
 * type DialerLayer = Layer.Layer<Dialer.Tag>
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export type Tag = internal.DialerTag

/**
 * Starts a dialer in the current scope. Closing the scope stops it (the live
 * connection is closed gracefully).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Dialer, Transport } from "effect-tether"
 *
 * // any transport: here an in-memory pair, as in tests
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const dialer = yield* Dialer.make({
 *       connect: Effect.map(Transport.memoryPair(), ([near]) => near)
 *     })
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <E = never, R = never>(options: Options<E, R>) => Effect.Effect<Dialer, never, Scope.Scope | R> =
  internal.make

/**
 * A layer providing a {@link Dialer} for the lifetime of the layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Dialer, Framing } from "effect-tether"
 *
 * const DialerLive = Dialer.layer({ host: "127.0.0.1", port: 9876 })
 * const program = Effect.flatMap(Dialer.Tag, (d) => d.send(Framing.utf8("x"))).pipe(Effect.provide(DialerLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: <E = never, R = never>(options: Options<E, R>) => Layer.Layer<Tag, never, R> = internal.layer

/**
 * A {@link Dialer} layer, its options read from Config when the layer is built
 * (Effect's `layerConfig` convention): `Settings.dialer` for the `TETHER_*`
 * keys, or a config of your own. Options that are code (a session, hooks)
 * join the config with `Config.map`.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { Dialer, Settings } from "effect-tether"
 *
 * const FromEnv = Dialer.layerConfig(Settings.dialer) // TETHER_DIALER_HOST, TETHER_DIALER_PORT, …
 * const Custom = Dialer.layerConfig({ host: Config.string("UPSTREAM_HOST"), port: Config.port("UPSTREAM_PORT") })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <E = never, R = never>(
  config: Config.Config.Wrap<Options<E, R>>
): Layer.Layer<Tag, ConfigError.ConfigError, R> => cfg.layerConfig(config, (options: Options<E, R>) => layer(options))

/**
 * The default backoff: exponential from 100 ms, jittered, capped at 30 s.
 *
 * @example
 * ```ts
 * import { Dialer } from "effect-tether"
 *
 * const options = { port: 9876, backoff: Dialer.defaultBackoff }
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultBackoff: Schedule.Schedule<unknown, unknown> = internal.defaultBackoff

/**
 * Default option values.
 *
 * @example
 * ```ts
 * import { Dialer } from "effect-tether"
 *
 * Dialer.defaults.connectTimeout // "10 seconds"
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = internal.defaults
