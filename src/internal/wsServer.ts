/**
 * WebSocket server: an HTTP(S) server whose 'upgrade' requests feed the
 * listener's session supervisor (seats, registry, bounded shutdown).
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as Https from "node:https"
import type * as Net from "node:net"
import { WebSocketServer } from "ws"
import type * as Connection from "../Connection.js"
import type * as Listener from "../Listener.js"
import type * as Transport from "../Transport.js"
import type * as WS from "../WebSocket.js"
import type { ListenerError } from "./listener.js"
import { makeCore } from "./listenerCore.js"
import { formatAddress, listen } from "./listenerNet.js"
import { transportOf } from "./connection.js"
import { connectionOptions, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_PAYLOAD, heartbeatOf } from "./wsClient.js"
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

/**
 * A socket between TCP accept and the HTTP 101: it holds a seat until its request reaches 'upgrade'
 * (then the session holds it), and its deadline runs until the 101 (or the socket closes).
 */
interface Upgrading {
  /** Still counted in `pending` (no 'upgrade' event yet). */
  pending: boolean
  /** Completed when the deadline passed: the upgrade gives up. */
  readonly expired: Deferred.Deferred<void>
  readonly done: () => void
}

/** The key shared by the raw socket ('connection') and, with TLS, the TLSSocket of its 'upgrade'. */
const keyOf = (socket: Net.Socket) => `${socket.remoteAddress}|${socket.remotePort}`

/** @internal */
export const serve = <E, R, RU>(
  options: WS.ServerOptions<RU>,
  handler: (conn: Connection.Connection, request: WS.UpgradeRequest) => Effect.Effect<void, E, R>
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
      upgradeTimeout: _upgradeTimeout,
      ...connection
    } = options
    const upgradeTimeout = Duration.decode(options.upgradeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT)
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
    const upgrading = new Map<string, Upgrading>()
    let pending = 0
    let upgradeTimeouts = 0
    const watches = yield* FiberSet.make<void>()
    const runWatch = yield* FiberSet.runtime(watches)<never>()
    const core = yield* makeCore<E, R, RU>({
      pending: () => ({ pending, upgradeTimeouts }),
      maxConnections,
      handshakeTimeout,
      sessionGrace,
      shutdownTimeout,
      idPrefix: idPrefix ?? "ws",
      connection: connOptions,
      stopAccepting: () => {
        if (http.listening) http.close()
        http.closeIdleConnections()
        // connections still sending their upgrade request will not get a session
        for (const [key, u] of upgrading) {
          if (!u.pending) continue
          u.done()
          rawSockets.get(key)?.destroy()
        }
        // sessions close with 1001 Going Away (unless the application already chose a code)
        for (const t of live) wsTransport.handleOf(t)?.setCloseFrame(1001, "server shutdown", false)
      }
    }, (conn) => handler(conn, requests.get(transportOf(conn)!)!))

    // every socket holds a seat from TCP accept (the HTTP request may never come: slowloris), bounded by
    // upgradeTimeout until the 101
    const rawSockets = new Map<string, Net.Socket>()
    http.on("connection", (socket: Net.Socket) => {
      socket.on("error", () => {})
      const remoteAddress = formatAddress(socket.remoteAddress, socket.remotePort)
      if (!core.unsafeHasSeat()) {
        // answered at once, before its request is read (under TLS the raw socket can only be destroyed)
        return core.unsafeRefuse(remoteAddress, () => {
          if (tls === undefined) rejectHttp(socket, 503, "no free seat")
          socket.destroySoon()
        })
      }
      const key = keyOf(socket)
      const expired = Deferred.unsafeMake<void>(FiberId.none)
      let watch: Fiber.RuntimeFiber<void> | undefined
      let finished = false
      const u: Upgrading = {
        pending: true,
        expired,
        done: () => {
          if (finished) return
          finished = true
          if (u.pending) {
            u.pending = false
            pending--
          }
          upgrading.delete(key)
          rawSockets.delete(key)
          socket.off("close", u.done)
          if (watch !== undefined) watch.unsafeInterruptAsFork(FiberId.none)
        }
      }
      pending++
      upgrading.set(key, u)
      rawSockets.set(key, socket)
      socket.once("close", u.done)
      watch = runWatch(
        Effect.sleep(upgradeTimeout).pipe(
          Effect.zipRight(Effect.suspend(() => {
            if (finished) return Effect.void
            watch = undefined
            const wasPending = u.pending
            u.done()
            upgradeTimeouts++
            Deferred.unsafeDone(expired, Effect.void)
            // before 'upgrade' the HTTP parser owns the socket: answer 408 and go; after it, the session's
            // open sees the expiry (or the socket closing) and ends
            if (wasPending) {
              if (tls === undefined) {
                rejectHttp(socket, 408, "upgrade timeout")
                socket.destroySoon()
              } else socket.destroy() // the raw socket under TLS: no plaintext answer
            }
            return Effect.logWarning(
              `WebSocket upgrade from ${remoteAddress ?? "?"} not completed within ${Duration.format(upgradeTimeout)}`
            ).pipe(Effect.annotateLogs({ reason: "UpgradeTimeout" }))
          }))
        )
      )
    })

    http.on("request", (_req: Http.IncomingMessage, res: Http.ServerResponse) => {
      res.writeHead(426, { "Content-Type": "text/plain", Upgrade: "websocket", Connection: "close" })
      res.end("WebSocket upgrade required")
    })

    http.on("upgrade", (req: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => {
      socket.on("error", () => {})
      // the seat moves from the pending upgrade to the session below; the deadline keeps running until the 101
      const u = upgrading.get(keyOf(socket))
      if (u?.pending === true) {
        u.pending = false
        pending--
      }
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
            const hook = Effect.either(upgrade(request))
            const verdict = yield* (u === undefined
              ? hook
              : Effect.raceFirst(hook, Effect.as(Deferred.await(u.expired), undefined)))
            if (verdict === undefined) {
              socket.destroy()
              return Option.none()
            }
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
          u?.done() // switched protocols in time
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
