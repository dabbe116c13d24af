/**
 * An `@effect/platform` `SocketServer.SocketServer` over a tether {@link Listener.Server}: every accepted connection
 * is a tether connection (seats, handshake timeout, live session registry, watchdogs) handed to the platform
 * handler as a `Socket.Socket` (see `PlatformSocket` for what each socket call does), and the server's end is the
 * listener's **bounded shutdown** (sessions closed gracefully in parallel, what remains aborted at
 * `shutdownTimeout`), where `NodeSocketServer` waits for `server.close` without a bound.
 *
 * Needs the optional peer dependency `@effect/platform`.
 *
 * Semantics next to `NodeSocketServer`:
 * - the server listens when it is made; connections accepted before `run` wait for it (as on the platform);
 * - `run(handler)` serves every connection with `handler` until it is interrupted; interrupting it shuts the
 *   listener down (bounded), and a tether listener is served by one `run` (a second one fails with
 *   `SocketServerError` `"Unknown"`);
 * - a handler's failure is logged at the fiber's unhandled-error level and ends that session only;
 * - the codec defaults to `Framing.raw()` (a byte stream, like every platform socket).
 *
 * {@link makeWebSocket} / {@link layerWebSocket} are the same over a tether WebSocket server (`WebSocket.serve`:
 * upgrade bound, `upgrade` hook, heartbeat, `maxPayload`), in place of `NodeSocketServer.makeWebSocket`; its sockets
 * have the platform's WebSocket semantics (`PlatformSocket.fromWebSocket`), and its shutdown sends Close 1001 to
 * every client within `shutdownTimeout`, where `NodeSocketServer`'s closes them (1005, no code) and then waits for
 * `server.close` without a bound.
 *
 * @since 0.4.0
 */
import type * as SocketServer from "@effect/platform/SocketServer"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/platformSocketServer.js"
import type * as Listener from "./Listener.js"
import type * as PlatformSocket from "./PlatformSocket.js"
import type * as WebSocket from "./WebSocket.js"

/**
 * Every {@link Listener.Options} (port, host, tls, `maxConnections`, `shutdownTimeout`, connection options and
 * `watchdogs`, …) and the sockets' `maxPendingHandlers`.
 *
 * @example
 * ```ts
 * import type * as PlatformSocketServer from "effect-tether/PlatformSocketServer"
 *
 * const options: PlatformSocketServer.Options = { port: 7000, maxConnections: 1000, shutdownTimeout: "5 seconds" }
 * ```
 *
 * @since 0.4.0
 * @category models
 */
export interface Options extends Listener.Options, PlatformSocket.SocketOptions {}

/**
 * The platform service, with the tether listener underneath (its registry, stats and `shutdown`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type * as PlatformSocketServer from "effect-tether/PlatformSocketServer"
 *
 * const active = (server: PlatformSocketServer.TetherSocketServer) =>
 *   Effect.map(server.listener.stats, (s) => s.active)
 * ```
 *
 * @since 0.4.0
 * @category models
 */
export type TetherSocketServer = SocketServer.SocketServer["Type"] & {
  readonly listener: Listener.Server
}

/**
 * Listens (in the current scope) and returns the platform `SocketServer` over it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as PlatformSocketServer from "effect-tether/PlatformSocketServer"
 *
 * // an echo server, written against the platform's SocketServer
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const server = yield* PlatformSocketServer.make({ port: 7000 })
 *     yield* server.run((socket) =>
 *       Effect.gen(function*() {
 *         const write = yield* socket.writer
 *         yield* socket.run(write)
 *       }).pipe(Effect.scoped)
 *     )
 *   })
 * )
 * ```
 *
 * @since 0.4.0
 * @category constructors
 */
export const make: (
  options: Options
) => Effect.Effect<TetherSocketServer, SocketServer.SocketServerError, Scope.Scope> = internal.make

/**
 * {@link make} as a layer of the platform's `SocketServer.SocketServer` service (closing the layer shuts the
 * listener down, bounded by `shutdownTimeout`).
 *
 * @example
 * ```ts
 * import { RpcSerialization, RpcServer } from "@effect/rpc"
 * import { Layer } from "effect"
 * import * as PlatformSocketServer from "effect-tether/PlatformSocketServer"
 *
 * // @effect/rpc's own socket server protocol, on a tether listener
 * const Protocol = RpcServer.layerProtocolSocketServer.pipe(
 *   Layer.provide([PlatformSocketServer.layer({ port: 7000 }), RpcSerialization.layerNdjson])
 * )
 * ```
 *
 * @since 0.4.0
 * @category layers
 */
export const layer: (options: Options) => Layer.Layer<SocketServer.SocketServer, SocketServer.SocketServerError> =
  internal.layer

/**
 * The options of {@link makeWebSocket}: every `WebSocket.ServerOptions` (port, host, tls, path, `upgrade` hook,
 * protocols, `maxPayload`, heartbeat, `maxConnections`, `upgradeTimeout`, `shutdownTimeout`, …) and the sockets'
 * `maxPendingHandlers` and `closeCodeIsError`.
 *
 * @example
 * ```ts
 * import type * as PlatformSocketServer from "effect-tether/PlatformSocketServer"
 *
 * const options: PlatformSocketServer.WebSocketOptions = {
 *   port: 8080,
 *   path: "/rpc",
 *   heartbeat: { interval: "30 seconds" },
 *   shutdownTimeout: "5 seconds"
 * }
 * ```
 *
 * @since 0.4.0
 * @category models
 */
export interface WebSocketOptions<RU = never> extends WebSocket.ServerOptions<RU>, PlatformSocket.WebSocketOptions {}

/**
 * Serves WebSocket sessions (in the current scope) and returns the platform `SocketServer` over them: each socket
 * is one WebSocket connection (Text messages reach `runRaw`'s handler as strings, Binary ones as bytes; writing a
 * string sends Text, a `Uint8Array` Binary; a `CloseEvent` closes gracefully with its code). Interrupting `run` is
 * the server's bounded shutdown (clients get Close 1001).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as PlatformSocketServer from "effect-tether/PlatformSocketServer"
 *
 * // a WebSocket echo server, written against the platform's SocketServer
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const server = yield* PlatformSocketServer.makeWebSocket({ port: 8080, path: "/echo" })
 *     yield* server.run((socket) =>
 *       Effect.gen(function*() {
 *         const write = yield* socket.writer
 *         yield* socket.runRaw(write) // a Text message comes back as Text, a Binary one as Binary
 *       })
 *     )
 *   })
 * )
 * ```
 *
 * @since 0.4.0
 * @category constructors
 */
export const makeWebSocket: <RU = never>(
  options: WebSocketOptions<RU>
) => Effect.Effect<TetherSocketServer, SocketServer.SocketServerError, Scope.Scope | RU> = internal.makeWebSocket

/**
 * {@link makeWebSocket} as a layer of the platform's `SocketServer.SocketServer` service (closing the layer shuts
 * the server down, bounded by `shutdownTimeout`).
 *
 * @example
 * ```ts
 * import { RpcSerialization, RpcServer } from "@effect/rpc"
 * import { Layer } from "effect"
 * import * as PlatformSocketServer from "effect-tether/PlatformSocketServer"
 *
 * // @effect/rpc's own socket server protocol, on a tether WebSocket server
 * const Protocol = RpcServer.layerProtocolSocketServer.pipe(
 *   Layer.provide([PlatformSocketServer.layerWebSocket({ port: 8080, path: "/rpc" }), RpcSerialization.layerJson])
 * )
 * ```
 *
 * @since 0.4.0
 * @category layers
 */
export const layerWebSocket: <RU = never>(
  options: WebSocketOptions<RU>
) => Layer.Layer<SocketServer.SocketServer, SocketServer.SocketServerError, RU> = internal.layerWebSocket
