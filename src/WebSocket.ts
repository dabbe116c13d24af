/**
 * WebSocket client and server as tether connections of typed messages.
 *
 * A WebSocket is a {@link Framed.Framed}`<Message, Message>` under an ordinary
 * {@link Connection.Connection}: one {@link Message} (`Text` or `Binary`, no
 * kind byte) per WebSocket message, the same stop-gate, bounded queue, single
 * writer and close procedure as TCP. The frame codec is tether's own (RFC 6455,
 * permessage-deflate per RFC 7692); every byte on the wire is written by the
 * connection's writer:
 *
 * - data frames, a batch of messages packed into as few syscalls as possible;
 * - PONGs answering the peer's PINGs and the heartbeat's PINGs, through the
 *   framed seam's control lane, ahead of data;
 * - the Close frame, when the connection closes (after the writer has
 *   drained), with the application's code, 1001 at a server shutdown, 1011
 *   (ahead of queued data) at a heartbeat timeout, or the status of a protocol
 *   error: oversized messages 1009, invalid UTF-8 1007, anything else 1002.
 *
 * The peer's Close is the read side's EOF: the connection closes with
 * `DisconnectReason.PeerClosed({ code, reason })` (1006 when the TCP stream
 * ended without one), bounded by `lingerTimeout`.
 *
 * Servers run standalone ({@link serve}, {@link layer}) or on an HTTP server the
 * application already has ({@link mount}: path routing, one port for the API
 * and its WebSocket endpoints).
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Http from "node:http"
import type * as Https from "node:https"
import type * as Net from "node:net"
import type { Duplex } from "node:stream"
import type * as Tls from "node:tls"
import type * as Conn from "./Connection.js"
import type * as Dialer from "./Dialer.js"
import type * as Framed from "./Framed.js"
import * as cfg from "./internal/config.js"
import * as internalClient from "./internal/wsClient.js"
import * as internalServer from "./internal/wsServer.js"
import * as internalModels from "./internal/webSocket.js"
import type * as internalCloseInfo from "./internal/wsCloseInfo.js"
import * as internalFrame from "./internal/wsFrame.js"
import * as internal from "./internal/wsFramed.js"
import type * as Listener from "./Listener.js"
import type * as Transport from "./Transport.js"

/**
 * A WebSocket message.
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * const describe = (m: WebSocket.Message) =>
 *   WebSocket.Message.$match(m, {
 *     Text: ({ text }) => `text ${text}`,
 *     Binary: ({ data }) => `${data.length} bytes`
 *   })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Message = Data.TaggedEnum<{
  Text: { readonly text: string }
  Binary: { readonly data: Uint8Array }
}>

/**
 * Constructors and matchers of {@link Message}.
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * const m = WebSocket.Message.Text({ text: "hi" })
 * WebSocket.Message.$is("Text")(m) // true
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const Message: Data.TaggedEnum.Constructor<Message> = internalModels.Message

/**
 * A text message.
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * const hello = (conn: WebSocket.Connection) => conn.send(WebSocket.text("hello"))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const text: (text: string) => Message = internalFrame.textMessage

/**
 * A binary message. The bytes are not copied: do not change them until the
 * message has been written (copy a reused buffer first).
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * const send = (conn: WebSocket.Connection) => conn.send(WebSocket.binary(new Uint8Array([1, 2, 3])))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const binary: (data: Uint8Array) => Message = internalFrame.binaryMessage

/**
 * A WebSocket connection: a {@link Connection.Connection} of {@link Message}s.
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * const echo = (conn: WebSocket.Connection) => conn.send(WebSocket.text("ready"))
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export type Connection = Conn.Connection<Message, Message>

/**
 * The connection options of a WebSocket connection (the codec is the WebSocket's own).
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const o: WebSocket.ConnectionOptions = { writeTimeout: "5 seconds", lingerTimeout: "2 seconds" }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface ConnectionOptions extends Omit<Conn.Options<Message, Message>, "codec" | "watchdogs"> {
  /** Watchdogs and other attachments (those of `Watchdog` work on any connection). */
  readonly watchdogs?: ReadonlyArray<Conn.Attachment<any, any>> | undefined
}

/**
 * The incoming messages of a WebSocket connection (its `incoming`; consume once).
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const echo = (conn: WebSocket.Connection) => Stream.runForEach(WebSocket.messages(conn), conn.send)
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const messages = (conn: Connection): Stream.Stream<Message> => conn.incoming

/**
 * Close codes used by tether (RFC 6455 §7.4.1).
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * WebSocket.CloseCode.MessageTooBig // 1009
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  NoStatus: 1005,
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011
} as const

/**
 * Heartbeat settings: a PING every `interval`; no PONG (or other inbound
 * bytes) within `timeout` (default: `interval`) → Close 1011 ahead of queued
 * data, and the connection closes with `PeerTimeout`.
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const hb: WebSocket.HeartbeatOptions = { interval: "30 seconds", timeout: "10 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface HeartbeatOptions {
  readonly interval: Duration.DurationInput
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * A heartbeat as a connection attachment (what the `heartbeat` option adds).
 * Its PINGs are written by the connection's writer (control lane), never by
 * the heartbeat fiber. On a connection that is not a WebSocket it does nothing.
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * const conn = WebSocket.connect("ws://127.0.0.1:8080/", {
 *   watchdogs: [WebSocket.heartbeat({ interval: "20 seconds", timeout: "10 seconds" })]
 * })
 * ```
 *
 * @since 0.1.0
 * @category watchdogs
 */
export const heartbeat: <In = Message, Out = In>(options: HeartbeatOptions) => Conn.Attachment<In, Out> =
  internalClient.heartbeat

/**
 * Options of the WebSocket handshake and frame codec, client side.
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const o: WebSocket.FramedOptions = { maxPayload: 1024 * 1024, handshakeTimeout: "5 seconds", perMessageDeflate: true }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface FramedOptions {
  /** Largest message accepted, in bytes (default 16 MiB); larger → close 1009. */
  readonly maxPayload?: number | undefined
  /** Offer permessage-deflate (default false). */
  readonly perMessageDeflate?: boolean | undefined
  /**
   * Bound on the opening handshake (TCP connect + HTTP upgrade), default 10 s; past it the connect fails
   * with `TransportError` reason `ConnectTimeout`. `Duration.infinity` waits forever.
   */
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  /** Subprotocols offered (`Sec-WebSocket-Protocol`); a server choosing another fails the connect. */
  readonly protocols?: ReadonlyArray<string> | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** TLS options for `wss:` URLs (ca, servername, ...). */
  readonly tls?: Tls.ConnectionOptions | undefined
  /** Bytes received and not yet decoded before reading from the socket pauses (default 256 KiB). */
  readonly readHighWaterMark?: number | undefined
}

/**
 * Options of the WebSocket client ({@link connect}, {@link dialer}).
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const o: WebSocket.ClientOptions = { maxPayload: 1024 * 1024, heartbeat: { interval: "20 seconds" } }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions extends FramedOptions {
  /** Send PINGs from a heartbeat (default: off). */
  readonly heartbeat?: HeartbeatOptions | false | undefined
}

/**
 * Opens a WebSocket as the message seam of a connection, in the current
 * scope (destroyed when the scope closes; the graceful close is the
 * connection's job): the building block under {@link connect}, for
 * `Connection.fromFramed`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection, WebSocket } from "effect-tether"
 *
 * const conn = Effect.flatMap(
 *   WebSocket.connectFramed("ws://127.0.0.1:8080/", { handshakeTimeout: "5 seconds" }),
 *   (framed) => Connection.fromFramed(framed)
 * )
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const connectFramed: (
  url: string,
  options?: FramedOptions
) => Effect.Effect<Framed.Framed<Message, Message>, Transport.TransportError, Scope.Scope> =
  internalClient.connectFramed

/**
 * Opens a WebSocket connection, in the current scope. Closing the scope closes
 * it gracefully (Close 1000, bounded by `lingerTimeout`). The handshake is
 * bounded (`handshakeTimeout`, default 10 s).
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const conn = yield* WebSocket.connect("ws://127.0.0.1:8080/chat", { heartbeat: { interval: "20 seconds" } })
 *     yield* conn.send(WebSocket.text("hello"))
 *     const reply = yield* Stream.runHead(conn.incoming)
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect: (
  url: string,
  options?: ClientOptions & ConnectionOptions
) => Effect.Effect<Connection, Transport.TransportError, Scope.Scope> = internalClient.connect

/**
 * Options of {@link dialer}: the `Dialer`'s (backoff, backlog, session, schedule, …) and the
 * WebSocket client's.
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const o: WebSocket.DialerOptions = { heartbeat: { interval: "20 seconds" }, connectTimeout: "5 seconds" }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface DialerOptions<E = never, R = never>
  extends Omit<Dialer.Options<E, R>, "connect" | "connectFramed" | "host" | "port" | "socket">, ClientOptions
{}

/**
 * A reconnecting client over WebSocket: a `Dialer` whose every connection is a
 * WebSocket to `url`, with the handshake bound, the `heartbeat` and the frame
 * codec right for it (no codec to wire by hand). The Dialer speaks bytes: each
 * `send(bytes)` is one Binary message; a received Binary message is its bytes,
 * a Text message its UTF-8 bytes. `connectTimeout` (default 10 s) bounds each
 * attempt, `handshakeTimeout` the opening handshake inside it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const dialer = yield* WebSocket.dialer("ws://127.0.0.1:8080/feed", { heartbeat: { interval: "20 seconds" } })
 *     yield* dialer.send(new TextEncoder().encode("hello"))
 *   })
 * )
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const dialer: <E = never, R = never>(
  url: string,
  options?: DialerOptions<E, R>
) => Effect.Effect<Dialer.Dialer, never, Scope.Scope | R> = internalClient.dialer

/**
 * Closes a WebSocket connection gracefully with a given close code and reason
 * (the Close frame is sent after every queued message).
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * const kick = (conn: WebSocket.Connection) => WebSocket.close(conn, 4000, "kicked")
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const close = <In, Out>(
  conn: Conn.Connection<In, Out>,
  code: number = CloseCode.Normal,
  reason = ""
): Effect.Effect<Conn.CloseOutcome<Out>> => internalClient.close(conn, code, reason)

/**
 * The close handshake as seen so far: the peer's Close frame, ours, and a
 * protocol error if one ended reading (`undefined` for non-WebSocket connections).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const why = (conn: WebSocket.Connection) =>
 *   Effect.map(conn.outcome, () => WebSocket.closeInfo(conn)?.received?.code)
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const closeInfo = <In, Out>(conn: Conn.Connection<In, Out>): CloseInfo | undefined =>
  internal.handleOfConnection(conn)?.closeInfo()

/**
 * See {@link closeInfo}.
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const sent = (info: WebSocket.CloseInfo) => info.sent?.code
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type CloseInfo = internalCloseInfo.CloseInfo

/**
 * The subprotocol the handshake agreed on (`""` when none; `undefined` for non-WebSocket connections).
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * const isV2 = (conn: WebSocket.Connection) => WebSocket.protocol(conn) === "chat.v2"
 * ```
 *
 * @since 0.3.0
 * @category utils
 */
export const protocol = <In, Out>(conn: Conn.Connection<In, Out>): string | undefined =>
  internal.handleOfConnection(conn)?.protocol

/**
 * What the upgrade hook sees of an upgrade request.
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const fromUs = (r: WebSocket.UpgradeRequest) => r.origin === "https://example.com"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface UpgradeRequest {
  readonly url: string
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly origin: string | undefined
  readonly remoteAddress: string | undefined
}

/**
 * Fail the upgrade hook with this to refuse the upgrade with an HTTP status.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const auth = (r: WebSocket.UpgradeRequest) =>
 *   r.headers.authorization === "Bearer s3cret"
 *     ? Effect.void
 *     : Effect.fail(new WebSocket.UpgradeRejected({ status: 401, message: "unauthorized" }))
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const UpgradeRejected: typeof internalModels.UpgradeRejected = internalModels.UpgradeRejected

/**
 * The instance type of {@link UpgradeRejected}.
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const answer = (e: WebSocket.UpgradeRejected) => `${e.status} ${e.message}`
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type UpgradeRejected = internalModels.UpgradeRejected

/**
 * Options of a WebSocket endpoint: what {@link mount} takes, and
 * {@link serve} with its listening socket. Every {@link ConnectionOptions}
 * field applies to every accepted connection; seats, handshake and shutdown
 * work as in `Listener.serve`.
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const o: WebSocket.MountOptions = { path: "/ws", maxConnections: 1000, protocols: ["chat.v2"] }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface MountOptions<RU = never> extends Omit<ConnectionOptions, "id"> {
  /** Only upgrade requests for this path (standalone: others get 404; mounted: the route). */
  readonly path?: string | undefined
  /**
   * Bound on the upgrade, default 10 s: standalone from TCP accept to the HTTP 101 (request headers,
   * the `upgrade` hook, the switch) — a connection still upgrading holds a seat (`maxConnections`
   * counts it; beyond, new sockets are refused at once); past the bound it is answered 408 and
   * destroyed, and counted in `stats.upgradeTimeouts`. Mounted: from the upgrade request to the 101.
   * `Duration.infinity` disables the bound (not the seat).
   */
  readonly upgradeTimeout?: Duration.DurationInput | undefined
  /** Auth / origin checks; fail with {@link UpgradeRejected} to answer with its HTTP status. */
  readonly upgrade?: ((request: UpgradeRequest) => Effect.Effect<void, UpgradeRejected, RU>) | undefined
  /** Subprotocols this endpoint speaks: the first the client offers is chosen (none matching: none). */
  readonly protocols?: ReadonlyArray<string> | undefined
  /** Largest message accepted, in bytes (default 16 MiB); larger → close 1009. */
  readonly maxPayload?: number | undefined
  /** Accept permessage-deflate (default false). */
  readonly perMessageDeflate?: boolean | undefined
  readonly maxConnections?: number | undefined
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** After the connection closed, how long the handler may finish what it read (default 5 s). */
  readonly sessionGrace?: Duration.DurationInput | undefined
  readonly idPrefix?: string | undefined
  readonly readHighWaterMark?: number | undefined
  /** Send PINGs from a heartbeat on every session (default: off). */
  readonly heartbeat?: HeartbeatOptions | false | undefined
}

/**
 * Options of the standalone WebSocket server ({@link serve}): an endpoint and its HTTP(S) server.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { WebSocket } from "effect-tether"
 *
 * const o: WebSocket.ServerOptions = {
 *   port: 8080,
 *   path: "/chat",
 *   maxPayload: 64 * 1024,
 *   maxConnections: 1000,
 *   heartbeat: { interval: "30 seconds" },
 *   upgrade: (r) => Effect.void
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions<RU = never> extends MountOptions<RU> {
  readonly port?: number | undefined
  /** Interface to bind (default 127.0.0.1). */
  readonly host?: string | undefined
  readonly backlog?: number | undefined
  /** Serve `wss:` with these options (key, cert, ...). */
  readonly tls?: Https.ServerOptions | undefined
}

/**
 * Serves WebSocket sessions on an HTTP(S) server of its own, in the current
 * scope: each upgraded socket is a connection in its own child scope running
 * `handler`, with the same seats, registry and bounded shutdown as
 * `Listener.serve`. Plain HTTP requests get 426.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const echo = WebSocket.serve({ port: 8080 }, (conn) => Stream.runForEach(conn.incoming, conn.send).pipe(Effect.orDie))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = <E, R, RU = never>(
  options: ServerOptions<RU>,
  handler: (conn: Connection, request: UpgradeRequest) => Effect.Effect<void, E, R>
): Effect.Effect<Listener.Server, Listener.ListenerError, Scope.Scope | Exclude<R, Listener.Session> | RU> =>
  internalServer.serve(options, handler)

/**
 * Serves WebSocket sessions on an existing `node:http` / `node:https` server,
 * in the current scope: its upgrade requests for `path` (every path when
 * none is given) become sessions as in {@link serve}; ordinary requests stay
 * the server's, so an HTTP API and its WebSocket endpoints share one port.
 * Several endpoints can be mounted on one server (one per path); an upgrade
 * for no mounted path is left to the server's other `'upgrade'` listeners, or
 * answered 404 when there are none. Closing the scope (or `shutdown`) unmounts
 * the endpoint and closes its sessions (Close 1001); the HTTP server is the
 * caller's.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import * as Http from "node:http"
 * import { WebSocket } from "effect-tether"
 *
 * const api = Http.createServer((req, res) => res.end("ok"))
 * const ws = WebSocket.mount(api, { path: "/ws" }, (conn) => Stream.runForEach(conn.incoming, conn.send).pipe(Effect.orDie))
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const mount = <E, R, RU = never>(
  server: Http.Server | Https.Server,
  options: MountOptions<RU>,
  handler: (conn: Connection, request: UpgradeRequest) => Effect.Effect<void, E, R>
): Effect.Effect<Listener.Server, Listener.ListenerError, Scope.Scope | Exclude<R, Listener.Session> | RU> =>
  internalServer.mount(server, options, handler)

/**
 * A WebSocket endpoint that is handed its upgrade requests: what {@link mount}
 * routes to, for any HTTP stack that gives access to node's request and socket.
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const port = (e: WebSocket.Endpoint) => e.server.unsafeStats().active
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface Endpoint {
  /** Its sessions, stats and shutdown (`address` is empty: the endpoint listens on nothing). */
  readonly server: Listener.Server
  /**
   * Takes one upgrade request and its socket (e.g. from a server's `'upgrade'` event, or from a route
   * handler of another HTTP library: `IncomingMessage` and `req.socket`); `head` is what the HTTP parser
   * read past the request (default none). After a shutdown, requests get 503.
   */
  readonly handleUpgrade: (request: Http.IncomingMessage, socket: Duplex | Net.Socket, head?: Buffer) => void
}

/**
 * A WebSocket endpoint without an HTTP server of its own, in the current
 * scope: seats, registry, handshake, heartbeat and shutdown as in
 * {@link serve}, fed by `handleUpgrade`. For an HTTP stack that owns the
 * upgrade event (an `@effect/platform` router, Express, …): hand it the
 * request and the socket from the route of your WebSocket path.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import * as Http from "node:http"
 * import { WebSocket } from "effect-tether"
 *
 * const program = Effect.gen(function*() {
 *   const ws = yield* WebSocket.endpoint({}, (conn) => Stream.runForEach(conn.incoming, conn.send).pipe(Effect.orDie))
 *   const server = Http.createServer((req, res) => res.end("ok"))
 *   server.on("upgrade", (req, socket, head) => ws.handleUpgrade(req, socket, head))
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const endpoint = <E, R, RU = never>(
  options: MountOptions<RU>,
  handler: (conn: Connection, request: UpgradeRequest) => Effect.Effect<void, E, R>
): Effect.Effect<Endpoint, never, Scope.Scope | Exclude<R, Listener.Session> | RU> =>
  internalServer.endpoint(options, handler)

/**
 * The application's WebSocket server, as a service: a Tag of its own, so that
 * a TCP `Listener.layer` and a `WebSocket.layer` can be provided together.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const port = Effect.map(WebSocket.Server, (server) => server.address.port)
 * ```
 *
 * @since 0.3.0
 * @category tags
 */
export const Server: typeof internalModels.ServerTag = internalModels.ServerTag

/**
 * The identity of the {@link Server} Tag (its service is a `Listener.Server`).
 *
 * @example
 * ```ts
 * import type { Context } from "effect"
 * import type { WebSocket } from "effect-tether"
 *
 * const show = (s: Context.Tag.Service<WebSocket.Server>) => s.address.port
 * ```
 *
 * @since 0.3.0
 * @category tags
 */
export type Server = internalModels.ServerTag

/**
 * A standalone WebSocket server as a Layer providing {@link Server}.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Stream } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const Echo = WebSocket.layer({ port: 8080 }, (conn) => Stream.runForEach(conn.incoming, conn.send).pipe(Effect.orDie))
 * const main = Layer.launch(Echo)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E, R, RU = never>(
  options: ServerOptions<RU>,
  handler: (conn: Connection, request: UpgradeRequest) => Effect.Effect<void, E, R>
): Layer.Layer<Server, Listener.ListenerError, Exclude<R, Listener.Session> | RU> =>
  Layer.scoped(Server, serve(options, handler))

/**
 * A WebSocket server as a Layer, its options read from Config when the layer
 * is built (Effect's `layerConfig` convention): `Settings.webSocketServer` for
 * the `TETHER_*` keys, or a config of your own.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Stream } from "effect"
 * import { Settings, WebSocket } from "effect-tether"
 *
 * const Echo = WebSocket.layerConfig(Settings.webSocketServer, (conn) =>
 *   Stream.runForEach(conn.incoming, conn.send).pipe(Effect.orDie))
 * const main = Layer.launch(Echo)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <E, R, RU = never>(
  config: Config.Config.Wrap<ServerOptions<RU>>,
  handler: (conn: Connection, request: UpgradeRequest) => Effect.Effect<void, E, R>
): Layer.Layer<Server, Listener.ListenerError | ConfigError.ConfigError, Exclude<R, Listener.Session> | RU> =>
  cfg.layerConfig(config, (options: ServerOptions<RU>) => layer(options, handler))
