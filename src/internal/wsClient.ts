/**
 * WebSocket client: the opening handshake as a bounded, interruptible effect.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { WebSocket } from "ws"
import type * as Connection from "../Connection.js"
import * as ConnectionModule from "../Connection.js"
import * as DR from "../DisconnectReason.js"
import type * as Transport from "../Transport.js"
import { TransportError } from "./transportError.js"
import type * as WS from "../WebSocket.js"
import * as wsTransport from "./wsTransport.js"

/** @internal */
export const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024

/** Default bound on the client's opening handshake and on the server's HTTP upgrade. @internal */
export const DEFAULT_HANDSHAKE_TIMEOUT = "10 seconds"

/** @internal */
export const connectTransport = (
  url: string,
  options?: WS.ClientOptions
): Effect.Effect<Transport.Transport, TransportError, Scope.Scope> => {
  const maxPayload = options?.maxPayload ?? DEFAULT_MAX_PAYLOAD
  const open = Effect.async<Transport.Transport, TransportError>((resume) => {
    let settled = false
    const ws = new WebSocket(url, options?.protocols === undefined ? [] : [...options.protocols], {
      autoPong: false,
      maxPayload,
      perMessageDeflate: options?.perMessageDeflate ?? false,
      ...(options?.headers === undefined ? {} : { headers: { ...options.headers } }),
      ...(options?.tls ?? {})
    })
    const fail = (e: TransportError) => {
      if (settled) return
      settled = true
      ws.terminate()
      resume(Effect.fail(e))
    }
    ws.on("error", (cause: Error) =>
      fail(
        new TransportError({
          reason: "Connect",
          message: cause.message,
          code: "code" in cause && typeof cause.code === "string" ? cause.code : undefined,
          cause
        })
      )
    )
    ws.once("unexpected-response", (req, res) => {
      const status = res.statusCode ?? 0
      res.resume()
      req.destroy()
      fail(new TransportError({ reason: "Connect", message: `upgrade refused: HTTP ${status}`, code: `HTTP_${status}` }))
    })
    ws.once("open", () => {
      if (settled) return
      settled = true
      // built synchronously in the 'open' callback: no message can arrive before our listeners are on
      resume(Effect.succeed(wsTransport.make(ws, { isServer: false, maxPayload, readHighWaterMark: options?.readHighWaterMark })))
    })
    // interrupted (handshake timeout, scope closed): nothing may outlive us
    return Effect.sync(() => {
      settled = true
      ws.terminate()
    })
  })
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
    Effect.interruptible(bounded).pipe(Effect.withSpan("tether.handshake", { attributes: { "tether.transport": "websocket" } })),
    (t) => t.destroy
  )
}

/** @internal */
export const connectionOptions = (
  options: Omit<Connection.Options, "id"> & { readonly id?: string | undefined } | undefined,
  maxPayload: number,
  attachments: ReadonlyArray<Connection.Attachment>
): Connection.Options => ({
  ...options,
  codec: wsTransport.codec(maxPayload),
  watchdogs: [...attachments, ...(options?.watchdogs ?? [])]
})

/** @internal */
export const connect = (
  url: string,
  options?: WS.ClientOptions & Connection.Options
): Effect.Effect<Connection.Connection, TransportError, Scope.Scope> =>
  Effect.flatMap(connectTransport(url, options), (t) =>
    ConnectionModule.make(
      t,
      connectionOptions(options, options?.maxPayload ?? DEFAULT_MAX_PAYLOAD, heartbeatOf(options))
    ))

/** @internal */
export const heartbeatOf = (
  options: { readonly heartbeat?: WS.HeartbeatOptions | false | undefined } | undefined
): ReadonlyArray<Connection.Attachment> =>
  options?.heartbeat === undefined || options.heartbeat === false ? [] : [heartbeat(options.heartbeat)]

/**
 * The heartbeat: a PING queued for the writer fiber (never written from here),
 * then `timeout` to see a PONG or any inbound bytes; nothing → the connection
 * is aborted with `PeerTimeout`. Repeated on `Schedule.spaced(interval)`.
 * @internal
 */
export const heartbeat = (options: WS.HeartbeatOptions): Connection.Attachment => (conn) =>
  Effect.suspend(() => {
    const handle = wsTransport.handleOfConnection(conn.connection)
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
        conn.unsafeRequestClose(DR.PeerTimeout({ silentFor: timeout }), "abort")
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
