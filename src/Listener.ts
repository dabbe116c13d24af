/**
 * A server with seats, a live session registry and a bounded shutdown.
 *
 * - Every accepted socket becomes a {@link Connection.Connection} in its own
 *   child scope, run by a supervised fiber of its own that runs your handler.
 *   When the handler ends or the connection closes, the child scope closes
 *   (full shutdown of the connection) and the seat is free again.
 * - **Observability**: the handler's log lines are annotated with `session`
 *   (its id) and `remote`; it runs under a `tether.session` span, which is
 *   also the parent of the connection's own spans (its graceful close) and of
 *   the `tether.handshake` span (from open to {@link handshakeDone}).
 * - **Seats**: beyond `maxConnections`, new sockets are destroyed at once; the
 *   refusal is logged (warning) and counted.
 * - **Handshake timeout**: a session whose handler has not called
 *   {@link handshakeDone} within `handshakeTimeout` is closed with
 *   `DisconnectReason.HandshakeTimeout`.
 * - **Shutdown** (closing the scope, or `server.shutdown`): stop accepting,
 *   close every session's stop-gate, close them all gracefully in parallel,
 *   bounded by `shutdownTimeout`; whatever remains is aborted (sockets
 *   destroyed). Never waits on a half-open client.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Tls from "node:tls"
import type * as Connection from "./Connection.js"
import * as cfg from "./internal/config.js"
import * as internalListener from "./internal/listener.js"
import * as internal from "./internal/listenerNet.js"
import type * as Transport from "./Transport.js"

/**
 * The listening socket could not be opened.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Listener } from "effect-tether"
 *
 * const program = Listener.serve({ port: 80 }, () => Effect.void).pipe(
 *   Effect.catchTag("ListenerError", (e) => Effect.logError(`cannot listen: ${e.reason} ${e.code}`))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const ListenerError: typeof internalListener.ListenerError = internalListener.ListenerError

/**
 * The instance type of {@link ListenerError}.
 *
 * @example
 * ```ts
 * import type { Listener } from "effect-tether"
 *
 * const describe = (e: Listener.ListenerError) => `${e.reason}: ${e.code ?? e.message}`
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type ListenerError = internalListener.ListenerError

/**
 * What the registry says about a session: `Handshaking` until the handler
 * calls {@link handshakeDone}, then the connection's own state.
 *
 * @example
 * ```ts
 * import type { Listener } from "effect-tether"
 *
 * const s: Listener.SessionState = "Handshaking"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type SessionState = "Handshaking" | Connection.State

/**
 * One row of the session registry. Counters are sampled when the row is read.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Listener } from "effect-tether"
 *
 * const busiest = (server: Listener.Server) =>
 *   Effect.map(server.sessions, (rows) => [...rows].sort((a, b) => b.queueDepth - a.queueDepth)[0])
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionInfo {
  readonly id: string
  readonly remoteAddress: string | undefined
  readonly kind: Transport.Transport["kind"]
  readonly state: SessionState
  /** Clock millis when the session was created. */
  readonly since: number
  readonly handshakeDone: boolean
  readonly bytesIn: number
  readonly bytesOut: number
  /** Frames queued for the writer. */
  readonly queueDepth: number
}

/**
 * Counters of a server.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Listener } from "effect-tether"
 *
 * const refusals = (server: Listener.Server) => Effect.map(server.stats, (s) => s.refused)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Seats in use by sessions, from accept until their socket is destroyed (pending upgrades: `pending`). */
  readonly active: number
  /** Sessions created. */
  readonly accepted: number
  /** Sockets refused because every seat was taken (or the server was shutting down). */
  readonly refused: number
  /** Sockets the acceptor turned down before a session existed (e.g. a failed WebSocket upgrade hook). */
  readonly rejected: number
  /** Sessions closed because their handshake did not complete in time. */
  readonly handshakeTimeouts: number
  /** Sessions that have ended (seat released). */
  readonly completed: number
  /**
   * Sockets holding a seat before their session exists: WebSocket connections whose HTTP upgrade is in
   * progress (always 0 for TCP and TLS servers).
   */
  readonly pending: number
  /** WebSocket connections closed because their HTTP upgrade did not complete within `upgradeTimeout`. */
  readonly upgradeTimeouts: number
}

/**
 * What a shutdown did.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Listener } from "effect-tether"
 *
 * const stop = (server: Listener.Server) =>
 *   Effect.flatMap(server.shutdown, (r) => Effect.log(`${r.graceful} graceful, ${r.aborted} aborted in ${r.millis} ms`))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ShutdownReport {
  /** Sessions alive when the shutdown began. */
  readonly sessions: number
  /** Sessions that closed gracefully within the shutdown timeout. */
  readonly graceful: number
  /** Sessions aborted (socket destroyed) when the shutdown timeout expired. */
  readonly aborted: number
  /** Clock millis from the start of the shutdown until every session was gone. */
  readonly millis: number
}

/**
 * The unique identifier of a {@link Server}: every server handle carries it, so {@link isServer} can tell one.
 *
 * @example
 * ```ts
 * import { Listener } from "effect-tether"
 *
 * const hasId = (u: object) => Listener.TypeId in u
 * ```
 *
 * @since 0.1.0
 * @category symbols
 */
export const TypeId: unique symbol = internalListener.TypeId

/**
 * The type of {@link TypeId}.
 *
 * @example
 * ```ts
 * import type { Listener } from "effect-tether"
 *
 * type Id = Listener.TypeId
 * ```
 *
 * @since 0.1.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * A running server.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import type { Listener } from "effect-tether"
 *
 * const watch = (server: Listener.Server) =>
 *   Stream.runForEach(server.sessionChanges, (rows) => Effect.log(`${rows.length} sessions`))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Server extends Inspectable.Inspectable {
  readonly [TypeId]: TypeId
  /** The bound address (the real port when `port: 0` was asked for). */
  readonly address: { readonly host: string; readonly port: number }
  /** A fresh snapshot of the registry. */
  readonly sessions: Effect.Effect<ReadonlyArray<SessionInfo>>
  /** The registry each time a session appears, changes state or goes away (current value first). */
  readonly sessionChanges: Stream.Stream<ReadonlyArray<SessionInfo>>
  /** The live connection of a session. */
  readonly connection: (id: string) => Effect.Effect<Option.Option<Connection.Connection>>
  readonly stats: Effect.Effect<Stats>
  readonly unsafeStats: () => Stats
  /**
   * Stops accepting, closes every session gracefully in parallel (bounded by
   * `shutdownTimeout`, then aborts what remains); completes when every session
   * is gone. Idempotent; closing the server's scope does the same.
   */
  readonly shutdown: Effect.Effect<ShutdownReport>
}

/**
 * Whether `u` is a {@link Server} (what {@link serve} returns, and `WebSocket.serve` too). A server is also
 * Inspectable: `toJSON`, `toString` and Node's inspect show its address and {@link Stats}, never its internals.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Listener } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const server = yield* Listener.serve({ port: 0 }, () => Effect.void)
 *     Listener.isServer(server) // true
 *     yield* Effect.log(server.toJSON()) // { _id: "Server", address: { ... }, stats: { active: 0, ... } }
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isServer: (u: unknown) => u is Server = internalListener.isServer

/**
 * The session a handler runs in (provided to the handler).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Listener } from "effect-tether"
 *
 * const whoAmI = Effect.map(Listener.Session, (s) => s.id)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Session {
  readonly id: string
  readonly remoteAddress: string | undefined
  readonly connection: Connection.Connection
  /** Marks the protocol handshake as complete (stops the handshake timer). */
  readonly handshakeDone: Effect.Effect<void>
}

/**
 * The current session, for code running inside a handler.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Listener } from "effect-tether"
 *
 * const logId = Effect.flatMap(Listener.Session, (s) => Effect.log(`session ${s.id}`))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Session: Context.Tag<Session, Session> = internalListener.Session

/**
 * Marks the current session's protocol handshake as complete. Without it, a
 * server with `handshakeTimeout` closes the session when the timeout expires.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { type Connection, Framing, Listener } from "effect-tether"
 *
 * const handler = (conn: Connection.Connection) =>
 *   Effect.gen(function*() {
 *     const hello = yield* Stream.runHead(conn.incoming) // the client's hello
 *     yield* Listener.handshakeDone
 *     yield* conn.send(Framing.utf8("welcome"))
 *   })
 * ```
 *
 * @since 0.1.0
 * @category handshake
 */
export const handshakeDone: Effect.Effect<void, never, Session> = Effect.flatMap(Session, (s) => s.handshakeDone)

/**
 * Options of {@link serve}. Every {@link Connection.Options} field (codec,
 * timeouts, `watchdogs`, ...) applies to every accepted connection.
 *
 * @example
 * ```ts
 * import type { Listener } from "effect-tether"
 *
 * const options: Listener.Options = {
 *   port: 7000,
 *   maxConnections: 1000,
 *   handshakeTimeout: "5 seconds",
 *   shutdownTimeout: "10 seconds",
 *   writeTimeout: "10 seconds"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Omit<Connection.Options, "id">, Transport.SocketOptions {
  /** Port to listen on (0 or absent: any free port). */
  readonly port?: number | undefined
  /** Interface to bind (default 127.0.0.1). */
  readonly host?: string | undefined
  readonly backlog?: number | undefined
  /** Serve TLS with these options (key, cert, ...). */
  readonly tls?: Tls.TlsOptions | undefined
  /** Seats: sessions alive at once (default 10 000). */
  readonly maxConnections?: number | undefined
  /** Time a session has to call {@link handshakeDone} (default: no limit). */
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  /**
   * After its connection has closed, how long a handler may still run to finish the frames it already
   * read (`incoming` delivers them, then ends) before it is interrupted (default 5 s).
   */
  readonly sessionGrace?: Duration.DurationInput | undefined
  /** Bound on the graceful part of a shutdown before the rest is aborted (default 10 s). */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** Prefix of session ids (default "session"). */
  readonly idPrefix?: string | undefined
}

/**
 * Listens and serves every accepted connection with `handler`, in the current
 * scope. Closing the scope shuts the server down (bounded).
 *
 * With many mostly idle sessions, how the handler reads matters: a `Stream` consumer of
 * `conn.incoming` holds Effect's channel machinery (~20 KB per session) and runs ~470 Effect
 * operations when the stream ends, at shutdown for every session; `Connection.runForEachChunk`
 * (a loop over `conn.read`) holds one suspended effect and costs a few operations per chunk.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Connection, Listener } from "effect-tether"
 *
 * // an echo server
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const server = yield* Listener.serve({ port: 7000, maxConnections: 100 }, (conn) =>
 *       Stream.runForEach(conn.incoming, (frame) => conn.send(frame)).pipe(Effect.orDie))
 *     yield* Effect.never
 *   })
 * )
 *
 * // the same without a Stream: cheaper per idle session and at shutdown
 * const lean = Listener.serve({ port: 7001 }, (conn) =>
 *   Connection.runForEachChunk(conn, (frames) => conn.sendAll(frames)).pipe(Effect.orDie))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = <E, R>(
  options: Options,
  handler: (conn: Connection.Connection) => Effect.Effect<void, E, R>
): Effect.Effect<Server, ListenerError, Scope.Scope | Exclude<R, Session>> => internal.serve(options, handler)

/**
 * The server as a service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Listener } from "effect-tether"
 *
 * const count = Effect.flatMap(Listener.Listener, (server) => server.sessions)
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export const Listener: typeof internalListener.ListenerTag = internalListener.ListenerTag

/**
 * The identifier type of the {@link Listener} tag (what a server layer provides).
 *
 * @example
 * ```ts
 * import type { Layer } from "effect"
 * import type { Listener } from "effect-tether"
 *
 * type ServerLayer = Layer.Layer<Listener.Listener, Listener.ListenerError>
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export type Listener = internalListener.ListenerTag

/**
 * A server as a Layer: it listens while the layer is alive and shuts down
 * (bounded) when the layer is released.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Stream } from "effect"
 * import { Listener } from "effect-tether"
 *
 * const EchoServer = Listener.layer({ port: 7000 }, (conn) =>
 *   Stream.runForEach(conn.incoming, (frame) => conn.send(frame)).pipe(Effect.orDie))
 *
 * const main = Layer.launch(EchoServer)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E, R>(
  options: Options,
  handler: (conn: Connection.Connection) => Effect.Effect<void, E, R>
): Layer.Layer<Listener, ListenerError, Exclude<R, Session>> => Layer.scoped(Listener, serve(options, handler))

/**
 * A server as a Layer, its options read from Config when the layer is built
 * (Effect's `layerConfig` convention): pass `Settings.listener` for the
 * `TETHER_*` keys, or a config of your own (each field may be a `Config`).
 *
 * @example
 * ```ts
 * import { Config, Effect, Layer, Stream } from "effect"
 * import { type Connection, Listener, Settings } from "effect-tether"
 *
 * const echo = (conn: Connection.Connection) =>
 *   Stream.runForEach(conn.incoming, (frame) => conn.send(frame)).pipe(Effect.orDie)
 *
 * const FromEnv = Listener.layerConfig(Settings.listener, echo) // TETHER_LISTENER_PORT, …
 * const Custom = Listener.layerConfig({ port: Config.port("PORT"), maxConnections: Config.succeed(100) }, echo)
 * const main = Layer.launch(FromEnv)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <E, R>(
  config: Config.Config.Wrap<Options>,
  handler: (conn: Connection.Connection) => Effect.Effect<void, E, R>
): Layer.Layer<Listener, ListenerError | ConfigError.ConfigError, Exclude<R, Session>> =>
  cfg.layerConfig(config, (options: Options) => layer(options, handler))
