/**
 * WebSocket server: 'upgrade' requests of an HTTP(S) server — its own (standalone) or one the
 * application already runs (`mount`: path routing, the port shared with ordinary requests) —
 * answered with our own handshake and fed to the listener's session supervisor (seats, registry,
 * bounded shutdown).
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
import type { Duplex } from "node:stream"
import type * as Connection from "../Connection.js"
import type * as Listener from "../Listener.js"
import type * as Framed from "../Framed.js"
import type * as WS from "../WebSocket.js"
import { ListenerError, ListenerError as ListenerErrorClass } from "./listener.js"
import { makeCore } from "./listenerCore.js"
import { formatAddress, listen } from "./listenerNet.js"
import { makeSocketTransport } from "./netTransport.js"
import { connectionOptions, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_PAYLOAD } from "./wsClient.js"
import * as wsFramed from "./wsFramed.js"
import * as Handshake from "./wsHandshake.js"

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

type AnyFramed = Framed.Framed<WS.Message, WS.Message>

/** The part of a WebSocket server that answers upgrades: shared by the standalone server and `mount`. */
const makeUpgrades = <E, R, RU>(
  options: WS.MountOptions<RU> & Partial<Pick<WS.ServerOptions<RU>, "tls" | "host" | "port" | "backlog">>,
  handler: (conn: WS.Connection, request: WS.UpgradeRequest) => Effect.Effect<void, E, R>,
  extra: {
    readonly stopAccepting: () => void
    readonly pending: () => { readonly pending: number; readonly upgradeTimeouts: number }
  }
) =>
  Effect.gen(function*() {
    const {
      backlog: _backlog,
      handshakeTimeout,
      heartbeat,
      host: _host,
      idPrefix,
      maxConnections,
      maxPayload: _maxPayload,
      path: _path,
      perMessageDeflate: _perMessageDeflate,
      port: _port,
      protocols: _protocols,
      readHighWaterMark: _readHighWaterMark,
      sessionGrace,
      shutdownTimeout,
      tls: _tls,
      upgrade: _upgrade,
      upgradeTimeout: _upgradeTimeout,
      ...connection
    } = options
    const requests = new WeakMap<object, WS.UpgradeRequest>()
    const live = new Set<wsFramed.WsHandle>()
    const connOptions = connectionOptions(connection, heartbeat)
    const core = yield* makeCore<E, R, RU>({
      pending: extra.pending,
      maxConnections,
      handshakeTimeout,
      sessionGrace,
      shutdownTimeout,
      idPrefix: idPrefix ?? "ws",
      connection: connOptions as unknown as Connection.Options,
      stopAccepting: () => {
        extra.stopAccepting()
        // sessions close with 1001 Going Away (unless the application already chose a code)
        for (const h of live) h.setCloseFrame(1001, "server shutdown", false)
      }
    }, (conn) => {
      const c = conn as unknown as WS.Connection
      return handler(c, requests.get(wsFramed.handleOfConnection(c) ?? {})!)
    })
    return { core, requests, live }
  })

/**
 * Answers one 'upgrade' request: checks (path, handshake validity, the hook), writes the 101 and
 * hands the socket, as a `Framed`, to the session supervisor.
 */
const upgradeOne = <RU>(
  options: WS.MountOptions<RU> & Partial<Pick<WS.ServerOptions<RU>, "tls" | "host" | "port" | "backlog">>,
  state: {
    readonly core: ReturnType<typeof makeCore<any, any, RU>> extends Effect.Effect<infer C, any, any> ? C : never
    readonly requests: WeakMap<object, WS.UpgradeRequest>
    readonly live: Set<wsFramed.WsHandle>
  },
  req: Http.IncomingMessage,
  socket: Net.Socket,
  head: Buffer,
  bound: {
    /** Completes when the upgrade's deadline passed (standalone: from TCP accept). */
    readonly expired: Effect.Effect<void>
    /** The socket switched protocols in time. */
    readonly done: () => void
  }
) => {
  const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD
  const secure = "encrypted" in socket && socket.encrypted === true
  const url = new URL(req.url ?? "/", "http://localhost")
  const request: WS.UpgradeRequest = {
    url: req.url ?? "/",
    path: url.pathname,
    headers: req.headers,
    origin: typeof req.headers.origin === "string" ? req.headers.origin : undefined,
    remoteAddress: formatAddress(socket.remoteAddress, socket.remotePort)
  }
  const open: Effect.Effect<Option.Option<AnyFramed>, never, Scope.Scope | RU> = Effect.gen(function*() {
    if (options.path !== undefined && url.pathname !== options.path) {
      rejectHttp(socket, 404, "no WebSocket endpoint here")
      return Option.none()
    }
    const invalid = Handshake.invalidRequest(req)
    if (invalid !== undefined) {
      rejectHttp(socket, 400, invalid)
      return Option.none()
    }
    if (options.upgrade !== undefined) {
      const verdict = yield* Effect.raceFirst(Effect.either(options.upgrade(request)), Effect.as(bound.expired, undefined))
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
    if (socket.destroyed || !socket.writable) return Option.none()
    const negotiated = options.perMessageDeflate === true
      ? Handshake.negotiateServer(
        typeof req.headers["sec-websocket-extensions"] === "string" ? req.headers["sec-websocket-extensions"] : undefined
      )
      : undefined
    const protocol = Handshake.pickProtocol(req, options.protocols)
    socket.write(Handshake.switchingProtocols(req, negotiated?.response, protocol))
    if (head.length > 0) socket.unshift(head)
    socket.setNoDelay(true)
    const transport = yield* Effect.acquireRelease(
      Effect.sync(() => makeSocketTransport(socket, secure ? "tls" : "tcp", { readHighWaterMark: options.readHighWaterMark })),
      (t) => t.destroy
    )
    bound.done() // switched protocols in time
    const framed = yield* wsFramed.make(transport, {
      isServer: true,
      maxPayload,
      deflate: negotiated?.deflate,
      protocol,
      extensions: negotiated?.response
    })
    const h = wsFramed.handleOfTransport(transport)!
    state.requests.set(h, request)
    state.live.add(h)
    yield* Effect.addFinalizer(() => Effect.sync(() => state.live.delete(h)))
    return Option.some(framed)
  })
  state.core.unsafeAccept({
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
}

/** @internal */
export const serve = <E, R, RU>(
  options: WS.ServerOptions<RU>,
  handler: (conn: WS.Connection, request: WS.UpgradeRequest) => Effect.Effect<void, E, R>
): Effect.Effect<Listener.Server, ListenerError, Scope.Scope | Exclude<R, Listener.Session> | RU> =>
  Effect.gen(function*() {
    const upgradeTimeout = Duration.decode(options.upgradeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT)
    const tls = options.tls
    const http: Http.Server = tls === undefined ? Http.createServer() : Https.createServer(tls)
    const upgrading = new Map<string, Upgrading>()
    const rawSockets = new Map<string, Net.Socket>()
    let pending = 0
    let upgradeTimeouts = 0
    const watches = yield* FiberSet.make<void>()
    const runWatch = yield* FiberSet.runtime(watches)<never>()
    const state = yield* makeUpgrades<E, R, RU>(options, handler, {
      pending: () => ({ pending, upgradeTimeouts }),
      stopAccepting: () => {
        if (http.listening) http.close()
        http.closeIdleConnections()
        // connections still sending their upgrade request will not get a session
        for (const [key, u] of upgrading) {
          if (!u.pending) continue
          u.done()
          rawSockets.get(key)?.destroy()
        }
      }
    })
    const core = state.core

    // every socket holds a seat from TCP accept (the HTTP request may never come: slowloris), bounded by
    // upgradeTimeout until the 101
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
      // the seat moves from the pending upgrade to the session; the deadline keeps running until the 101
      const u = upgrading.get(keyOf(socket))
      if (u?.pending === true) {
        u.pending = false
        pending--
      }
      upgradeOne(options, state, req, socket, head, {
        expired: u === undefined ? Effect.never : Deferred.await(u.expired),
        done: () => u?.done()
      })
    })
    const address = yield* listen(http, options)
    http.on("error", () => {})
    return core.server(address)
  })

/** The mounts of one HTTP server: one 'upgrade' listener routes to them by path. */
interface Mounts {
  readonly byPath: Map<string | undefined, (req: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => void>
  readonly listener: (req: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => void
}
const mountsOf = new WeakMap<Http.Server, Mounts>()

/**
 * Routes an upgrade request of a shared server: the mount for its path (or the catch-all mount);
 * none → left to the server's other 'upgrade' listeners, or answered 404 when there are none.
 * @internal
 */
const mountsFor = (server: Http.Server): Mounts => {
  let m = mountsOf.get(server)
  if (m !== undefined) return m
  const byPath = new Map<string | undefined, (req: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => void>()
  const listener = (req: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname
    const route = byPath.get(path) ?? byPath.get(undefined)
    if (route !== undefined) return route(req, socket, head)
    if (server.listenerCount("upgrade") > 1) return // someone else's upgrade (another library's endpoint)
    socket.on("error", () => {})
    rejectHttp(socket, 404, "no WebSocket endpoint here")
    socket.destroySoon()
  }
  m = { byPath, listener }
  mountsOf.set(server, m)
  return m
}

/** @internal */
export const endpoint = <E, R, RU>(
  options: WS.MountOptions<RU>,
  handler: (conn: WS.Connection, request: WS.UpgradeRequest) => Effect.Effect<void, E, R>,
  onStop: () => void = () => {},
  address: () => { readonly host: string; readonly port: number } = () => ({ host: "", port: 0 })
): Effect.Effect<WS.Endpoint, never, Scope.Scope | Exclude<R, Listener.Session> | RU> =>
  Effect.gen(function*() {
    const upgradeTimeout = Duration.decode(options.upgradeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT)
    let accepting = true
    const stop = () => {
      if (!accepting) return
      accepting = false
      onStop()
    }
    const state = yield* makeUpgrades<E, R, RU>(options, handler, {
      pending: () => ({ pending: 0, upgradeTimeouts: 0 }),
      stopAccepting: stop
    })
    yield* Effect.addFinalizer(() => Effect.sync(stop))
    const handleUpgrade = (req: Http.IncomingMessage, duplex: Duplex | Net.Socket, head: Buffer = Buffer.alloc(0)) => {
      // node's 'upgrade' hands a net.Socket (or a TLSSocket), typed as a Duplex
      const socket = duplex as Net.Socket
      socket.on("error", () => {})
      if (!accepting) {
        rejectHttp(socket, 503, "shutting down")
        return void socket.destroySoon()
      }
      // the upgrade (the hook and the switch) is bounded by upgradeTimeout from the request
      upgradeOne(options, state, req, socket, head, { expired: Effect.sleep(upgradeTimeout), done: () => {} })
    }
    return { server: state.core.server(address()), handleUpgrade }
  })

/** @internal */
export const mount = <E, R, RU>(
  server: Http.Server,
  options: WS.MountOptions<RU>,
  handler: (conn: WS.Connection, request: WS.UpgradeRequest) => Effect.Effect<void, E, R>
): Effect.Effect<Listener.Server, ListenerError, Scope.Scope | Exclude<R, Listener.Session> | RU> =>
  Effect.gen(function*() {
    const mounts = mountsFor(server)
    if (mounts.byPath.has(options.path)) {
      return yield* Effect.fail(
        new ListenerErrorClass({
          reason: "Bind",
          message: `a WebSocket endpoint is already mounted on ${options.path ?? "every path"} of this server`
        })
      )
    }
    const unmount = () => {
      if (mounts.byPath.get(options.path) !== route) return
      mounts.byPath.delete(options.path)
      if (mounts.byPath.size === 0) {
        server.off("upgrade", mounts.listener)
        mountsOf.delete(server)
      }
    }
    const e = yield* endpoint(options, handler, unmount, () => {
      const a = server.address()
      return typeof a === "object" && a !== null ? { host: a.address, port: a.port } : { host: "", port: 0 }
    })
    const route = e.handleUpgrade
    mounts.byPath.set(options.path, route)
    if (mounts.byPath.size === 1) server.on("upgrade", mounts.listener)
    return e.server
  })
