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
 * @since 0.4.0
 */
import type * as SocketServer from "@effect/platform/SocketServer"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/platformSocketServer.js"
import type * as Listener from "./Listener.js"
import type * as PlatformSocket from "./PlatformSocket.js"

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
