/**
 * WebSocket client and server on `ws`, as tether connections.
 *
 * A WebSocket is a {@link Transport.Transport} of kind `"websocket"` under an
 * ordinary {@link Connection.Connection}: one message per frame, the same
 * stop-gate, bounded queue, writer fiber and close procedure. Every byte on
 * the wire is written by the connection's writer fiber:
 *
 * - data messages, many per syscall (the socket is corked around a batch);
 * - PONGs answering the peer's PINGs (ws's automatic pong is off) and the
 *   heartbeat's PINGs, through the transport's control lane, ahead of data;
 * - the Close frame, when the connection closes (after the writer has
 *   drained). The peer's Close is the read side's EOF; the close handshake is
 *   bounded by the connection's `lingerTimeout`, then the socket is destroyed.
 *
 * Frames are messages: build them with {@link text} / {@link binary}, read them
 * with {@link decode} or {@link messages}. Oversized messages close with 1009,
 * invalid UTF-8 in a text message with 1007.
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Http from "node:http"
import type * as Https from "node:https"
import type * as Tls from "node:tls"
import type * as Connection from "./Connection.js"
import type * as Framing from "./Framing.js"
import * as cfg from "./internal/config.js"
import * as internalClient from "./internal/wsClient.js"
import * as internalServer from "./internal/wsServer.js"
import * as internalModels from "./internal/webSocket.js"
import type * as internalCloseInfo from "./internal/wsCloseInfo.js"
import * as internal from "./internal/wsTransport.js"
import * as Listener from "./Listener.js"
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

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * A text message as a connection frame (for `conn.send`).
 *
 * @example
 * ```ts
 * import type { Connection } from "effect-tether"
 * import { WebSocket } from "effect-tether"
 *
 * const hello = (conn: Connection.Connection) => conn.send(WebSocket.text("hello"))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const text = (s: string): Uint8Array => {
  const body = encoder.encode(s)
  const out = new Uint8Array(body.length + 1)
  out[0] = internal.KIND_TEXT
  out.set(body, 1)
  return out
}

/**
 * A binary message as a connection frame (for `conn.send`).
 *
 * @example
 * ```ts
 * import type { Connection } from "effect-tether"
 * import { WebSocket } from "effect-tether"
 *
 * const send = (conn: Connection.Connection) => conn.send(WebSocket.binary(new Uint8Array([1, 2, 3])))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const binary = (data: Uint8Array): Uint8Array => {
  const out = new Uint8Array(data.length + 1)
  out[0] = internal.KIND_BINARY
  out.set(data, 1)
  return out
}

/**
 * A {@link Message} as a connection frame.
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * const frame = WebSocket.frame(WebSocket.Message.Binary({ data: new Uint8Array([7]) }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const frame = (message: Message): Uint8Array =>
  message._tag === "Text" ? text(message.text) : binary(message.data)

/**
 * Whether a received frame is a text message.
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * WebSocket.isText(WebSocket.text("x")) // true
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isText = (frame: Uint8Array): boolean => frame[0] === internal.KIND_TEXT

/**
 * The payload of a frame (without its kind byte), not copied.
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * WebSocket.payload(WebSocket.binary(new Uint8Array([1, 2]))) // Uint8Array [1, 2]
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const payload = (frame: Uint8Array): Uint8Array => frame.subarray(1)

/**
 * A received frame as a {@link Message} (text is decoded from UTF-8).
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * WebSocket.decode(WebSocket.text("hi")) // { _tag: "Text", text: "hi" }
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const decode = (frame: Uint8Array): Message =>
  isText(frame)
    ? Message.Text({ text: decoder.decode(frame.subarray(1)) })
    : Message.Binary({ data: frame.subarray(1) })

/**
 * The incoming messages of a WebSocket connection (consume once).
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import type { Connection } from "effect-tether"
 * import { WebSocket } from "effect-tether"
 *
 * const echo = (conn: Connection.Connection) =>
 *   Stream.runForEach(WebSocket.messages(conn), (m) => conn.send(WebSocket.frame(m)))
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const messages = (conn: Connection.Connection): Stream.Stream<Message> => Stream.map(conn.incoming, decode)

/**
 * The connection codec of WebSocket transports (set automatically by
 * {@link connect} and {@link serve}; use it with `Connection.make` over
 * {@link connectTransport}).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection, WebSocket } from "effect-tether"
 *
 * const program = Effect.gen(function*() {
 *   const t = yield* WebSocket.connectTransport("ws://127.0.0.1:8080/")
 *   return yield* Connection.make(t, { codec: WebSocket.codec({ maxPayload: 1024 * 1024 }) })
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const codec = (options?: { readonly maxPayload?: number | undefined }): Framing.Codec =>
  internal.codec(options?.maxPayload ?? internalClient.DEFAULT_MAX_PAYLOAD)

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
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011
} as const

/**
 * Heartbeat settings: a PING every `interval`; no PONG (or other inbound
 * bytes) within `timeout` (default: `interval`) → abort with `PeerTimeout`.
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
 * A heartbeat as a connection attachment. Its PINGs are written by the
 * connection's writer fiber (control lane), never by the heartbeat fiber.
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
export const heartbeat: (options: HeartbeatOptions) => Connection.Attachment = internalClient.heartbeat

/**
 * Options of the WebSocket client.
 *
 * @example
 * ```ts
 * import type { WebSocket } from "effect-tether"
 *
 * const o: WebSocket.ClientOptions = { maxPayload: 1024 * 1024, handshakeTimeout: "5 seconds", perMessageDeflate: true }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientOptions {
  /** Largest message accepted, in bytes (default 16 MiB); larger → close 1009. */
  readonly maxPayload?: number | undefined
  /** Negotiate permessage-deflate (default false). */
  readonly perMessageDeflate?: boolean | undefined
  /**
   * Bound on the opening handshake (TCP connect + HTTP upgrade), default 10 s; past it the connect fails
   * with `TransportError` reason `ConnectTimeout`. `Duration.infinity` waits forever.
   */
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  readonly protocols?: ReadonlyArray<string> | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** TLS options for `wss:` URLs (ca, servername, ...). */
  readonly tls?: Tls.ConnectionOptions | undefined
  /** Bytes of received messages buffered before reading from the socket pauses (default 256 KiB). */
  readonly readHighWaterMark?: number | undefined
  /** Send PINGs from a heartbeat (default: off). */
  readonly heartbeat?: HeartbeatOptions | false | undefined
}

/**
 * Opens a WebSocket as a transport, in the current scope (destroyed when the
 * scope closes; a graceful close is the connection's job).
 *
 * @example
 * ```ts
 * import { WebSocket } from "effect-tether"
 *
 * const t = WebSocket.connectTransport("ws://127.0.0.1:8080/", { handshakeTimeout: "5 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connectTransport: (
  url: string,
  options?: ClientOptions
) => Effect.Effect<Transport.Transport, Transport.TransportError, Scope.Scope> = internalClient.connectTransport

/**
 * Opens a WebSocket connection, in the current scope. Closing the scope closes
 * it gracefully (Close 1000, bounded by `lingerTimeout`).
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const conn = yield* WebSocket.connect("ws://127.0.0.1:8080/chat", { handshakeTimeout: "5 seconds" })
 *     yield* conn.send(WebSocket.text("hello"))
 *     const reply = yield* Stream.runHead(WebSocket.messages(conn))
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect: (
  url: string,
  options?: ClientOptions & Connection.Options
) => Effect.Effect<Connection.Connection, Transport.TransportError, Scope.Scope> = internalClient.connect

/**
 * Closes a WebSocket connection gracefully with a given close code and reason
 * (the Close frame is sent after every queued message).
 *
 * @example
 * ```ts
 * import type { Connection } from "effect-tether"
 * import { WebSocket } from "effect-tether"
 *
 * const kick = (conn: Connection.Connection) => WebSocket.close(conn, 4000, "kicked")
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const close = (
  conn: Connection.Connection,
  code: number = CloseCode.Normal,
  reason = ""
): Effect.Effect<Connection.CloseOutcome> =>
  Effect.suspend(() => {
    internal.handleOfConnection(conn)?.setCloseFrame(code, reason)
    return conn.close(`WebSocket close ${code}${reason === "" ? "" : ` ${reason}`}`)
  })

/**
 * The close handshake as seen so far: the peer's Close frame, ours, and a
 * protocol error if one ended reading (`undefined` for non-WebSocket connections).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Connection } from "effect-tether"
 * import { WebSocket } from "effect-tether"
 *
 * const why = (conn: Connection.Connection) =>
 *   Effect.map(conn.outcome, () => WebSocket.closeInfo(conn)?.received?.code)
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const closeInfo = (conn: Connection.Connection): CloseInfo | undefined =>
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
 * Options of the WebSocket server. Every {@link Connection.Options} field
 * applies to every accepted connection; seats, handshake and shutdown work as
 * in {@link Listener.serve}.
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
export interface ServerOptions<RU = never> extends Omit<Connection.Options, "id" | "codec"> {
  readonly port?: number | undefined
  /** Interface to bind (default 127.0.0.1). */
  readonly host?: string | undefined
  readonly backlog?: number | undefined
  /** Serve `wss:` with these options (key, cert, ...). */
  readonly tls?: Https.ServerOptions | undefined
  /** Only upgrade requests for this path (others get 404). */
  readonly path?: string | undefined
  /**
   * Bound from TCP accept to the HTTP 101 (request headers, the `upgrade` hook, the switch), default
   * 10 s. A connection still upgrading holds a seat (`maxConnections` counts it; beyond, new sockets are
   * refused at once); past the bound it is answered 408 and destroyed, and counted in
   * `stats.upgradeTimeouts`. `Duration.infinity` disables the bound (not the seat).
   */
  readonly upgradeTimeout?: Duration.DurationInput | undefined
  /** Auth / origin checks; fail with {@link UpgradeRejected} to answer with its HTTP status. */
  readonly upgrade?: ((request: UpgradeRequest) => Effect.Effect<void, UpgradeRejected, RU>) | undefined
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
 * Serves WebSocket sessions, in the current scope: each upgraded socket is a
 * connection in its own child scope running `handler`, with the same seats,
 * registry and bounded shutdown as {@link Listener.serve}.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const echo = WebSocket.serve({ port: 8080 }, (conn) =>
 *   Stream.runForEach(WebSocket.messages(conn), (m) => conn.send(WebSocket.frame(m))).pipe(Effect.orDie))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = <E, R, RU = never>(
  options: ServerOptions<RU>,
  handler: (conn: Connection.Connection, request: UpgradeRequest) => Effect.Effect<void, E, R>
): Effect.Effect<Listener.Server, Listener.ListenerError, Scope.Scope | Exclude<R, Listener.Session> | RU> =>
  internalServer.serve(options, handler)

/**
 * A WebSocket server as a Layer providing {@link Listener.Listener}.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Stream } from "effect"
 * import { WebSocket } from "effect-tether"
 *
 * const Echo = WebSocket.layer({ port: 8080 }, (conn) =>
 *   Stream.runForEach(WebSocket.messages(conn), (m) => conn.send(WebSocket.frame(m))).pipe(Effect.orDie))
 * const main = Layer.launch(Echo)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E, R, RU = never>(
  options: ServerOptions<RU>,
  handler: (conn: Connection.Connection, request: UpgradeRequest) => Effect.Effect<void, E, R>
): Layer.Layer<Listener.Listener, Listener.ListenerError, Exclude<R, Listener.Session> | RU> =>
  Layer.scoped(Listener.Listener, serve(options, handler))

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
 *   Stream.runForEach(WebSocket.messages(conn), (m) => conn.send(WebSocket.frame(m))).pipe(Effect.orDie))
 * const main = Layer.launch(Echo)
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = <E, R, RU = never>(
  config: Config.Config.Wrap<ServerOptions<RU>>,
  handler: (conn: Connection.Connection, request: UpgradeRequest) => Effect.Effect<void, E, R>
): Layer.Layer<
  Listener.Listener,
  Listener.ListenerError | ConfigError.ConfigError,
  Exclude<R, Listener.Session> | RU
> => cfg.layerConfig(config, (options: ServerOptions<RU>) => layer(options, handler))
