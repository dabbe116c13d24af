/**
 * WebSocket client: the opening handshake as a bounded, interruptible effect (node:http's public
 * upgrade API), then the frame codec over the upgraded socket's byte transport; the heartbeat.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as Https from "node:https"
import type * as Net from "node:net"
import type * as Connection from "../Connection.js"
import type * as Dialer from "../Dialer.js"
import * as DR from "../DisconnectReason.js"
import type * as Framed from "../Framed.js"
import * as Framing from "../Framing.js"
import type * as Transport from "../Transport.js"
import type * as WS from "../WebSocket.js"
import { fromFramed } from "./connection.js"
import * as internalDialer from "./dialer.js"
import { errorCode, makeSocketTransport } from "./netTransport.js"
import { TransportError } from "./transportError.js"
import * as wsFramed from "./wsFramed.js"
import * as Handshake from "./wsHandshake.js"

/** @internal */
export const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024

/** Default bound on the client's opening handshake and on the server's HTTP upgrade. @internal */
export const DEFAULT_HANDSHAKE_TIMEOUT = "10 seconds"

const connectError = (message: string, code?: string, cause?: unknown) =>
  new TransportError({ reason: "Connect", message, code, cause })

/** @internal */
export const connectFramed = (
  url: string,
  options?: WS.ClientOptions
): Effect.Effect<Framed.Framed<WS.Message, WS.Message>, TransportError, Scope.Scope> => {
  const maxPayload = options?.maxPayload ?? DEFAULT_MAX_PAYLOAD
  const offerDeflate = options?.perMessageDeflate ?? false
  const open = Effect.async<{
    readonly transport: Transport.Transport
    readonly framed: Omit<wsFramed.Options, "isServer" | "maxPayload">
  }, TransportError>(
    (resume) => {
      let target: URL
      try {
        target = new URL(url)
      } catch (cause) {
        return resume(Effect.fail(connectError(`invalid WebSocket URL ${url}`, "ERR_INVALID_URL", cause)))
      }
      const secure = target.protocol === "wss:" || target.protocol === "https:"
      if (!secure && target.protocol !== "ws:" && target.protocol !== "http:") {
        return resume(Effect.fail(connectError(`not a WebSocket URL: ${url}`, "ERR_INVALID_URL")))
      }
      let settled = false
      let upgraded: Net.Socket | undefined
      const key = Handshake.newKey()
      const protocols = options?.protocols === undefined ? [] : [...options.protocols]
      const headers: Record<string, string> = {
        ...options?.headers,
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key
      }
      if (offerDeflate) headers["Sec-WebSocket-Extensions"] = Handshake.CLIENT_OFFER
      if (protocols.length > 0) headers["Sec-WebSocket-Protocol"] = protocols.join(", ")
      const requestOptions: Https.RequestOptions = {
        ...(secure ? options?.tls : {}),
        host: target.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: target.port === "" ? (secure ? 443 : 80) : Number(target.port),
        path: `${target.pathname}${target.search}`,
        method: "GET",
        headers,
        agent: false
      }
      const req = secure ? Https.request(requestOptions) : Http.request(requestOptions)
      const fail = (e: TransportError) => {
        if (settled) return
        settled = true
        req.destroy()
        upgraded?.destroy()
        resume(Effect.fail(e))
      }
      req.on("error", (cause: Error) => fail(connectError(cause.message, errorCode(cause), cause)))
      req.on("response", (res: Http.IncomingMessage) => {
        const status = res.statusCode ?? 0
        res.resume()
        fail(connectError(`upgrade refused: HTTP ${status}`, `HTTP_${status}`))
      })
      req.on("upgrade", (res: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => {
        upgraded = socket
        socket.on("error", () => {})
        if (settled) return void socket.destroy()
        if (res.headers["sec-websocket-accept"] !== Handshake.acceptKey(key)) {
          return fail(connectError("invalid Sec-WebSocket-Accept in the server's 101", "WS_BAD_ACCEPT"))
        }
        const protocol = res.headers["sec-websocket-protocol"]
        if (protocol !== undefined && !protocols.includes(protocol)) {
          return fail(connectError(`the server chose a subprotocol we did not offer: ${protocol}`, "WS_BAD_PROTOCOL"))
        }
        const extensions = res.headers["sec-websocket-extensions"]
        const deflate = Handshake.negotiateClient(extensions, offerDeflate)
        if (typeof deflate === "string") return fail(connectError(deflate, "WS_BAD_EXTENSION"))
        settled = true
        if (head.length > 0) socket.unshift(head)
        socket.setNoDelay(true)
        // built synchronously here: the socket's listeners are on before any byte can be lost
        const transport = makeSocketTransport(socket, secure ? "tls" : "tcp", {
          readHighWaterMark: options?.readHighWaterMark
        })
        resume(Effect.succeed({
          transport,
          framed: { deflate, protocol: protocol ?? "", extensions: extensions ?? "" }
        }))
      })
      req.end()
      // interrupted (handshake timeout, scope closed): nothing may outlive us
      return Effect.sync(() => {
        settled = true
        req.destroy()
        upgraded?.destroy()
      })
    }
  )
  const timeout = options?.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT
  const bounded = open.pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () =>
        new TransportError({
          reason: "ConnectTimeout",
          message: `WebSocket handshake timed out after ${Duration.format(Duration.decode(timeout))}`
        })
    })
  )
  // the handshake must stay interruptible (by its timeout) inside the acquire
  return Effect.acquireRelease(
    Effect.interruptible(bounded).pipe(
      Effect.withSpan("tether.handshake", { attributes: { "tether.transport": "websocket" }, captureStackTrace: false })
    ),
    (o) => o.transport.destroy
  ).pipe(
    Effect.flatMap((o) =>
      wsFramed.make(o.transport, { isServer: false, maxPayload, ...o.framed })
    )
  )
}

/** The options of every WebSocket connection: the heartbeat (when asked for) before the user's watchdogs. @internal */
export const connectionOptions = (
  options: Omit<Connection.Options<WS.Message>, "id" | "codec"> & { readonly id?: string | undefined } | undefined,
  heartbeatOption: WS.HeartbeatOptions | false | undefined
): Connection.Options<WS.Message> => {
  const { codec: _codec, ...rest } = (options ?? {}) as Connection.Options<WS.Message>
  return {
    ...rest,
    watchdogs: [...heartbeatOf(heartbeatOption), ...(options?.watchdogs ?? [])]
  }
}

/** @internal */
export const connect = (
  url: string,
  options?: WS.ClientOptions & WS.ConnectionOptions
): Effect.Effect<WS.Connection, TransportError, Scope.Scope> =>
  Effect.flatMap(connectFramed(url, options), (framed) =>
    fromFramed(framed, connectionOptions(options, options?.heartbeat)))

/** @internal */
export const heartbeatOf = <In = WS.Message, Out = In>(
  option: WS.HeartbeatOptions | false | undefined
): ReadonlyArray<Connection.Attachment<In, Out>> =>
  option === undefined || option === false ? [] : [heartbeat<In, Out>(option)]

/**
 * The heartbeat: a PING queued for the writer (never written from here), then `timeout` to see a
 * PONG or any inbound bytes; nothing → a Close 1011 goes out ahead of queued data, then the
 * connection is aborted with `PeerTimeout` (a stuck write is bounded by `writeTimeout`). Repeated on
 * `Schedule.spaced(interval)`.
 * @internal
 */
export const heartbeat = <In, Out>(options: WS.HeartbeatOptions): Connection.Attachment<In, Out> => (conn) =>
  Effect.suspend(() => {
    const handle = wsFramed.handleOfConnection(conn.connection)
    if (handle === undefined) return Effect.void
    const interval = Duration.decode(options.interval)
    const timeout = Duration.decode(options.timeout ?? options.interval)
    let pongs = 0
    let seq = 0
    const tick = Effect.gen(function*() {
      const pongsBefore = pongs
      const bytesBefore = conn.unsafeStats().bytesIn
      handle.queuePing(Buffer.from(`hb-${++seq}`))
      yield* Effect.sleep(timeout)
      if (pongs === pongsBefore && conn.unsafeStats().bytesIn === bytesBefore) {
        const reason = DR.PeerTimeout({ silentFor: timeout })
        // the gate closes now; the writer puts the Close ahead of queued data, then the socket goes
        // (no linger: the peer is presumed gone; a stuck write is bounded by writeTimeout)
        conn.unsafeRequestClose(reason, "graceful")
        handle.closeNow(1011, "heartbeat timeout", () => conn.unsafeRequestClose(reason, "abort"))
        return false
      }
      return true
    })
    return Effect.gen(function*() {
      const off = handle.onPong(() => {
        pongs++
      })
      yield* Effect.addFinalizer(() => Effect.sync(off))
      yield* Effect.forkScoped(
        Effect.zipRight(
          Effect.sleep(interval),
          Effect.repeat(tick, { schedule: Schedule.spaced(interval), while: (alive) => alive })
        )
      )
    })
  })

/** @internal */
export const close = <In, Out>(
  conn: Connection.Connection<In, Out>,
  code: number,
  reason: string
): Effect.Effect<Connection.CloseOutcome<Out>> =>
  Effect.suspend(() => {
    wsFramed.handleOfConnection(conn)?.setCloseFrame(code, reason)
    return conn.close(`WebSocket close ${code}${reason === "" ? "" : ` ${reason}`}`)
  })

/** @internal */
export const dialer = <E = never, R = never>(
  url: string,
  options?: WS.DialerOptions<E, R>
): Effect.Effect<Dialer.Dialer, never, Scope.Scope | R> => {
  const {
    handshakeTimeout,
    headers,
    heartbeat: heartbeatOption,
    maxPayload,
    perMessageDeflate,
    protocols,
    readHighWaterMark,
    tls,
    ...rest
  } = options ?? {}
  const framedOptions: WS.FramedOptions = {
    handshakeTimeout,
    headers,
    maxPayload,
    perMessageDeflate,
    protocols,
    readHighWaterMark,
    tls
  }
  const max = maxPayload ?? DEFAULT_MAX_PAYLOAD
  return internalDialer.make<E, R>({
    ...rest,
    connectFramed: Effect.map(connectFramed(url, framedOptions), wsFramed.binaryFramed),
    connection: {
      ...rest.connection,
      // checks what `send` accepts (the seam frames the messages itself)
      codec: { ...Framing.lengthPrefixed({ maxFrameBytes: max }), name: "websocket-binary" },
      watchdogs: [...heartbeatOf<Uint8Array>(heartbeatOption), ...(rest.connection?.watchdogs ?? [])]
    }
  })
}
