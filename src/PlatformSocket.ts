/**
 * An `@effect/platform` `Socket.Socket` over tether: everything written to the socket goes through a tether
 * {@link Connection.Connection} (one writer, a bounded send queue with batching, a deadline per write, watchdogs, and
 * the full shutdown: drain → FIN → linger for the peer's EOF → destroy, bounded), so code written against the
 * platform's `Socket` (`Socket.toChannel`, `RpcClient.layerProtocolSocket`, …) gets tether's guarantees unchanged.
 *
 * Needs the optional peer dependency `@effect/platform` (tether's core does not).
 *
 * What each platform call does on tether:
 *
 * | platform call | on tether |
 * |---|---|
 * | `run(handler)` / `runRaw(handler)` | opens the connection (`makeTcp`: a new TCP connection per `run`, in the scope of that `run`, like `NodeSocket.makeNet`; `fromConnection`: the given one, once; `fromDialer`: every connection of the dialer in turn), then calls `handler` for each chunk read (a chunk is what the codec decodes: bytes as read with `Framing.raw()`, one message with a framing codec). The effects the handler returns for the chunks of one read run in a fiber of their own, in order (the platform forks one per `data` event), at most `maxPendingHandlers` (1024) such fibers at once: beyond that the reader waits and the socket is paused (TCP pushes back on the peer) instead of piling up fibers. `runRaw` is `run`: a byte stream has no text frames |
 * | `run` ends | with `void` at the peer's EOF (like `NodeSocket`'s `end`); with `SocketCloseError` (code and reason of the `CloseEvent` written, 1000 when the writer's release or a scope closed the connection, 1001 for a server shutdown); with `SocketGenericError` `"Write"` for a write timeout or a send stall, `"Read"` for every other reason (I/O error, watchdog reap, framing); its `cause` is the tether `DisconnectReason`. It returns once the connection is fully closed (bounded by `drainTimeout + lingerTimeout`) |
 * | `writer` | waits until a `run` is open (the platform's latch), then each `write(bytes)` waits for room in the bounded send queue (`sendQueueCapacity` frames, `sendQueueHighWaterMark` bytes) — not for the socket, as `NodeSocket` does — and fails with `SocketGenericError` `"Write"` (cause `ConnectionClosed`) once the connection is closing. Strings are UTF-8 encoded; empty chunks are skipped |
 * | `write(new CloseEvent(code, reason))` | a **graceful close** (drain what was accepted for at most `drainTimeout`, FIN, wait for the peer's EOF for at most `lingerTimeout`, destroy); `NodeSocket` destroys the socket at once and drops what was not flushed. The call returns at once; `run` then fails with `SocketCloseError` carrying that code and reason |
 * | releasing the writer's scope | the same graceful close (`NodeSocket` half-closes with `end()`: tether's close sends FIN too, then waits for the peer's EOF within the linger bound) |
 * | `SocketError` `"Open"` / `"OpenTimeout"` | the connect failed / missed `connectTimeout` (`TransportError` as the cause) |
 * | over a WebSocket (`fromWebSocket`, `PlatformSocketServer.makeWebSocket`) | as the platform's `Socket.fromWebSocket`: a Text message reaches `runRaw`'s handler as a string (`run`'s as its UTF-8 bytes), a Binary one as bytes; writing a string sends a Text message, a `Uint8Array` a Binary one; a `CloseEvent` is the graceful close above with a Close frame of its code and reason (a code not allowed on the wire fails `SocketGenericError` `"Write"`); `run` ends with `SocketCloseError` of the close code (the peer's, the `CloseEvent`'s, 1000 at the session's end, 1001 at a server shutdown), or `void` when `closeCodeIsError` says it is clean (1000, 1006); releasing the writer does not close (as on the platform) |
 *
 * With `Framing.raw()` (the default here) the socket is a byte stream like any platform socket, and either end may
 * be a platform one (`NodeSocket`, `NodeSocketServer`). Pass `codec: Framing.lengthPrefixed()` on both ends to keep
 * each write one message (what `RpcProtocol` does).
 *
 * @since 0.4.0
 */
import type * as Socket from "@effect/platform/Socket"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Connection from "./Connection.js"
import type * as Dialer from "./Dialer.js"
import * as internal from "./internal/platformSocket.js"
import type * as WebSocket from "./WebSocket.js"

/**
 * Options of a socket: `maxPendingHandlers` bounds the handler fibers (one per read) a `run` keeps at once
 * (default 1024).
 *
 * @example
 * ```ts
 * import type * as PlatformSocket from "effect-tether/PlatformSocket"
 *
 * const options: PlatformSocket.SocketOptions = { maxPendingHandlers: 256 }
 * ```
 *
 * @since 0.4.0
 * @category models
 */
export interface SocketOptions {
  readonly maxPendingHandlers?: number | undefined
}

/**
 * Options of {@link makeTcp}: where to connect, every {@link Connection.Options} (codec, send queue bounds,
 * `writeTimeout`, `drainTimeout`, `lingerTimeout`, `watchdogs`, …), socket options and `connectTimeout`.
 *
 * @example
 * ```ts
 * import { Watchdog } from "effect-tether"
 * import type * as PlatformSocket from "effect-tether/PlatformSocket"
 *
 * const options: PlatformSocket.TcpOptions = {
 *   host: "127.0.0.1",
 *   port: 7000,
 *   connectTimeout: "3 seconds",
 *   watchdogs: Watchdog.defaults()
 * }
 * ```
 *
 * @since 0.4.0
 * @category models
 */
export type TcpOptions = Parameters<typeof Connection.connectTcp>[0] & SocketOptions

/**
 * The default bound on the handler fibers a `run` keeps at once: 1024.
 *
 * @example
 * ```ts
 * import * as PlatformSocket from "effect-tether/PlatformSocket"
 *
 * console.log(PlatformSocket.defaultMaxPendingHandlers) // 1024
 * ```
 *
 * @since 0.4.0
 * @category constants
 */
export const defaultMaxPendingHandlers: number = internal.defaultMaxPendingHandlers

/**
 * Options of a socket over a WebSocket connection: {@link SocketOptions} and `closeCodeIsError`, which close codes
 * end `run` with a `SocketCloseError` (default `Socket.defaultCloseCodeIsError`: all but 1000 and 1006), as in the
 * platform's `Socket.fromWebSocket`.
 *
 * @example
 * ```ts
 * import type * as PlatformSocket from "effect-tether/PlatformSocket"
 *
 * const options: PlatformSocket.WebSocketOptions = { closeCodeIsError: (code) => code >= 4000 }
 * ```
 *
 * @since 0.4.0
 * @category models
 */
export interface WebSocketOptions extends SocketOptions {
  readonly closeCodeIsError?: ((code: number) => boolean) | undefined
}

/**
 * A platform `Socket` over one existing tether connection (e.g. a session of a `Listener`; use
 * `codec: Framing.raw()` there for a byte stream). It can be `run` once; the connection stays owned by its scope.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection, Framing } from "effect-tether"
 * import * as PlatformSocket from "effect-tether/PlatformSocket"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const conn = yield* Connection.connectTcp({ port: 7000, codec: Framing.raw() })
 *     const socket = yield* PlatformSocket.fromConnection(conn)
 *     const write = yield* socket.writer
 *     yield* write("hello")
 *     yield* socket.run((chunk) => Effect.log(`${chunk.length} bytes`))
 *   })
 * )
 * ```
 *
 * @since 0.4.0
 * @category constructors
 */
export const fromConnection: (
  conn: Connection.Connection,
  options?: SocketOptions | undefined
) => Effect.Effect<Socket.Socket> = internal.fromConnection

/**
 * A platform `Socket` over one tether WebSocket connection (a session of `WebSocket.serve` / `mount` /
 * `endpoint`, or a client's `WebSocket.connect`), with the platform's WebSocket semantics (see the table in the
 * module's description). It can be `run` once; the connection stays owned by its scope.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WebSocket } from "effect-tether"
 * import * as PlatformSocket from "effect-tether/PlatformSocket"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const conn = yield* WebSocket.connect("ws://127.0.0.1:8080")
 *     const socket = yield* PlatformSocket.fromWebSocket(conn)
 *     const write = yield* socket.writer
 *     yield* write("hello") // a Text message
 *     yield* socket.runRaw((data) => Effect.log(typeof data === "string" ? data : `${data.length} bytes`))
 *   })
 * )
 * ```
 *
 * @since 0.4.0
 * @category constructors
 */
export const fromWebSocket: (
  conn: WebSocket.Connection,
  options?: WebSocketOptions | undefined
) => Effect.Effect<Socket.Socket> = internal.fromWebSocketConnection

/**
 * A platform `Socket` that opens a new tether TCP connection for each `run`, in that `run`'s scope (the shape of
 * `NodeSocket.makeNet`: a client that `run`s again after an error reconnects, which is what
 * `RpcClient.layerProtocolSocket` does with its retry schedule).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as PlatformSocket from "effect-tether/PlatformSocket"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const socket = yield* PlatformSocket.makeTcp({ port: 7000, lingerTimeout: "2 seconds" })
 *     const write = yield* socket.writer
 *     yield* Effect.fork(write(new TextEncoder().encode("ping\n")))
 *     yield* socket.run((chunk) => Effect.log(new TextDecoder().decode(chunk)))
 *   })
 * )
 * ```
 *
 * @since 0.4.0
 * @category constructors
 */
export const makeTcp: (options: TcpOptions) => Effect.Effect<Socket.Socket> = internal.makeTcp

/**
 * A platform `Socket` over a tether {@link Dialer.Dialer}: it survives reconnects. Writes go through `dialer.send`
 * (to the live connection, or to the dialer's bounded backlog while it is down, replayed in order on reconnect,
 * each frame exactly once at the kernel boundary); they never wait for a connection, and fail with
 * `SocketGenericError` `"Write"` (cause `BacklogFull` or `DialerStopped`). One `run` reads every connection of the
 * dialer in turn and fails with `SocketCloseError` 1000 when the dialer stops. A `CloseEvent` stops the dialer
 * (bounded by its linger); releasing the writer does nothing (the dialer belongs to its own scope).
 *
 * Use a self-delimiting codec on the dialer (the default `Framing.lengthPrefixed()`): each chunk the handler gets is
 * then one message, also across reconnects (a byte stream would be cut at a reconnect). Not for `@effect/rpc`:
 * its client fails the calls in flight when the socket fails, and a backlog would later send requests it already
 * reported failed; `RpcProtocol` handles that case.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Dialer } from "effect-tether"
 * import * as PlatformSocket from "effect-tether/PlatformSocket"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const dialer = yield* Dialer.make({ port: 7000, backlog: { maxMessages: 1000 } })
 *     const socket = yield* PlatformSocket.fromDialer(dialer)
 *     const write = yield* socket.writer
 *     yield* write("queued while down, sent once connected")
 *     yield* socket.run((message) => Effect.log(`${message.length} bytes`))
 *   })
 * )
 * ```
 *
 * @since 0.4.0
 * @category constructors
 */
export const fromDialer: (
  dialer: Dialer.Dialer,
  options?: SocketOptions | undefined
) => Effect.Effect<Socket.Socket> = internal.fromDialer

/**
 * {@link makeTcp} as a layer of the platform's `Socket.Socket` service.
 *
 * @example
 * ```ts
 * import { RpcClient, RpcSerialization } from "@effect/rpc"
 * import { Layer } from "effect"
 * import * as PlatformSocket from "effect-tether/PlatformSocket"
 *
 * // @effect/rpc's own socket protocol, on a tether socket
 * const Protocol = RpcClient.layerProtocolSocket().pipe(
 *   Layer.provide([PlatformSocket.layerTcp({ port: 7000 }), RpcSerialization.layerNdjson])
 * )
 * ```
 *
 * @since 0.4.0
 * @category layers
 */
export const layerTcp: (options: TcpOptions) => Layer.Layer<Socket.Socket> = internal.layerTcp

/**
 * The exit a `run` ends with for a tether `DisconnectReason` (see the table in the module's description).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { DisconnectReason } from "effect-tether"
 * import * as PlatformSocket from "effect-tether/PlatformSocket"
 *
 * const exit = Effect.runSyncExit(PlatformSocket.toSocketExit(DisconnectReason.PeerClosed(), undefined)) // success
 * ```
 *
 * @since 0.4.0
 * @category utils
 */
export const toSocketExit: (
  reason: import("./DisconnectReason.js").DisconnectReason,
  closeEvent: Socket.CloseEvent | undefined
) => Effect.Effect<void, Socket.SocketError> = internal.toSocketExit
