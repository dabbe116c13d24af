/**
 * WebSocket server: an HTTP(S) server whose 'upgrade' requests feed the
 * listener's session supervisor (seats, registry, bounded shutdown).
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as Https from "node:https"
import type * as Net from "node:net"
import { WebSocketServer } from "ws"
import type * as Connection from "../Connection.js"
import type * as Listener from "../Listener.js"
import type { ListenerError } from "../Listener.js"
import type * as Transport from "../Transport.js"
import type * as WS from "../WebSocket.js"
import { makeCore } from "./listenerCore.js"
import { formatAddress, listen } from "./listenerNet.js"
import { connectionOptions, DEFAULT_MAX_PAYLOAD, heartbeatOf } from "./wsClient.js"
import * as wsTransport from "./wsTransport.js"

const rejectHttp = (socket: Net.Socket, status: number, message: string) => {
  if (!socket.destroyed && socket.writable) {
    const body = Buffer.from(message)
    socket.end(
      `HTTP/1.1 ${status} ${Http.STATUS_CODES[status] ?? "Error"}\r\n` +
        "Connection: close\r\nContent-Type: text/plain\r\n" +
        `Content-Length: ${body.length}\r\n\r\n${message}`
    )
  }
  // end() flushes the response; the socket goes when the client closes (or the session cleanup destroys it)
}

/** @internal */
export const serve = <E, R, RU>(
  options: WS.ServerOptions<RU>,
  handler: (conn: Connection.Connection, request: WS.UpgradeRequest) => Effect.Effect<void, E, R>,
  sessionTag: typeof Listener.Session
): Effect.Effect<Listener.Server, ListenerError, Scope.Scope | Exclude<R, Listener.Session> | RU> =>
  Effect.gen(function*() {
    const {
      backlog: _backlog,
      handshakeTimeout,
      heartbeat: _heartbeat,
      host: _host,
      idPrefix,
      maxConnections,
      maxPayload: _maxPayload,
      path,
      perMessageDeflate,
      port: _port,
      readHighWaterMark,
      sessionGrace,
      shutdownTimeout,
      tls,
      upgrade,
      ...connection
    } = options
    const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD
    const http: Http.Server = tls === undefined ? Http.createServer() : Https.createServer(tls)
    const wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      autoPong: false,
      maxPayload,
      perMessageDeflate: perMessageDeflate ?? false
    })
    const requests = new WeakMap<Transport.Transport, WS.UpgradeRequest>()
    const live = new Set<Transport.Transport>()
    const connOptions = connectionOptions(connection, maxPayload, heartbeatOf(options))
    const core = yield* makeCore<E, R, RU>({
      maxConnections,
      handshakeTimeout,
      sessionGrace,
      shutdownTimeout,
      idPrefix: idPrefix ?? "ws",
      connection: connOptions,
      stopAccepting: () => {
        if (http.listening) http.close()
        http.closeIdleConnections()
        // sessions close with 1001 Going Away (unless the application already chose a code)
        for (const t of live) wsTransport.handleOf(t)?.setCloseFrame(1001, "server shutdown", false)
      }
    }, (conn) => handler(conn, requests.get(conn.transport)!), sessionTag)

    http.on("request", (_req: Http.IncomingMessage, res: Http.ServerResponse) => {
      res.writeHead(426, { "Content-Type": "text/plain", Upgrade: "websocket", Connection: "close" })
      res.end("WebSocket upgrade required")
    })

    http.on("upgrade", (req: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => {
      socket.on("error", () => {})
      const url = new URL(req.url ?? "/", "http://localhost")
      const request: WS.UpgradeRequest = {
        url: req.url ?? "/",
        path: url.pathname,
        headers: req.headers,
        origin: typeof req.headers.origin === "string" ? req.headers.origin : undefined,
        remoteAddress: formatAddress(socket.remoteAddress, socket.remotePort)
      }
      const open: Effect.Effect<Option.Option<Transport.Transport>, never, Scope.Scope | RU> = Effect.gen(
        function*() {
          if (path !== undefined && url.pathname !== path) {
            rejectHttp(socket, 404, "no WebSocket endpoint here")
            return Option.none()
          }
          if (upgrade !== undefined) {
            const verdict = yield* Effect.either(upgrade(request))
            if (verdict._tag === "Left") {
              rejectHttp(socket, verdict.left.status, verdict.left.message)
              yield* Effect.logInfo(
                `upgrade rejected from ${request.remoteAddress ?? "?"}: HTTP ${verdict.left.status} ${verdict.left.message}`
              )
              return Option.none()
            }
          }
          // ws answers 101 and calls back, or answers 4xx itself and destroys the socket. The transport is
          // built inside the callback so that no message can arrive before its listeners are on.
          const transport = yield* Effect.acquireRelease(
            Effect.async<Option.Option<Transport.Transport>>((resume) => {
              if (socket.destroyed) return resume(Effect.succeed(Option.none()))
              let done = false
              const onClose = () => {
                if (done) return
                done = true
                resume(Effect.succeed(Option.none()))
              }
              socket.once("close", onClose)
              wss.handleUpgrade(req, socket, head, (ws) => {
                socket.off("close", onClose)
                if (done) return
                done = true
                resume(
                  Effect.succeed(Option.some(wsTransport.make(ws, { isServer: true, maxPayload, readHighWaterMark })))
                )
              })
            }),
            (t) =>
              Option.match(t, {
                onNone: () => Effect.void,
                onSome: (t) => Effect.zipRight(Effect.sync(() => live.delete(t)), t.destroy)
              })
          )
          if (Option.isNone(transport)) return Option.none()
          requests.set(transport.value, request)
          live.add(transport.value)
          return transport
        }
      )
      core.unsafeAccept({
        remoteAddress: request.remoteAddress,
        refuse: () => {
          rejectHttp(socket, 503, "no free seat")
          socket.destroySoon()
        },
        open,
        cleanup: () => {
          if (!socket.destroyed) socket.destroy()
        }
      })
    })
    const address = yield* listen(http, options)
    http.on("error", () => {})
    yield* Effect.addFinalizer(() => Effect.sync(() => wss.close()))
    return core.server(address)
  })
