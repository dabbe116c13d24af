/**
 * The TCP / TLS acceptor: a listening socket as a scoped resource feeding the
 * session supervisor.
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import * as Tls from "node:tls"
import type * as Connection from "../Connection.js"
import type * as Listener from "../Listener.js"
import * as Transport from "../Transport.js"
import { ListenerError } from "./listener.js"
import { type Accepted, makeCore } from "./listenerCore.js"
import { errorCode } from "./netTransport.js"


/** @internal */
export const formatAddress = (host: string | undefined, port: number | undefined) =>
  host === undefined ? undefined : `${host.includes(":") ? `[${host}]` : host}:${port}`

/**
 * Listens on `server` (already configured) and resolves to the bound address;
 * the server is closed when the scope closes.
 * @internal
 */
export const listen = (
  server: Net.Server,
  options: { readonly port?: number | undefined; readonly host?: string | undefined; readonly backlog?: number | undefined }
): Effect.Effect<{ host: string; port: number }, ListenerError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ host: string; port: number }, ListenerError>((resume) => {
      const onError = (cause: Error) => {
        server.off("listening", onListening)
        resume(Effect.fail(new ListenerError({ reason: "Bind", message: cause.message, code: errorCode(cause), cause })))
      }
      const onListening = () => {
        server.off("error", onError)
        const a = server.address()
        resume(
          Effect.succeed(
            typeof a === "object" && a !== null
              ? { host: a.address, port: a.port }
              : { host: options.host ?? "127.0.0.1", port: options.port ?? 0 }
          )
        )
      }
      server.once("error", onError)
      server.once("listening", onListening)
      server.listen({ port: options.port ?? 0, host: options.host ?? "127.0.0.1", backlog: options.backlog ?? 511 })
      return Effect.sync(() => {
        server.off("error", onError)
        server.off("listening", onListening)
        server.close()
      })
    }),
    () =>
      Effect.sync(() => {
        if (server.listening) server.close()
      })
  )

/**
 * An accepted socket as the session supervisor gets it: the socket and its methods (on the prototype), its
 * transport made when the session opens it (nothing of it is kept before, or after it is open).
 */
class SocketAccepted implements Accepted<never> {
  readonly remoteAddress: string | undefined
  constructor(
    private readonly socket: Net.Socket,
    private readonly options: Transport.SocketOptions & { readonly kind: "tcp" | "tls" }
  ) {
    this.remoteAddress = formatAddress(socket.remoteAddress, socket.remotePort)
  }
  refuse(): void {
    this.socket.destroy()
  }
  get open(): Effect.Effect<Option.Option<Transport.Transport>, never, Scope.Scope> {
    return Effect.map(Transport.fromSocket(this.socket, this.options), Option.some)
  }
  cleanup(): void {
    if (!this.socket.destroyed) this.socket.destroy()
  }
}

/** @internal */
export const serve = <E, R>(
  options: Listener.Options,
  handler: (conn: Connection.Connection) => Effect.Effect<void, E, R>
): Effect.Effect<Listener.Server, ListenerError, Scope.Scope | Exclude<R, Listener.Session>> =>
  Effect.gen(function*() {
    const {
      backlog: _backlog,
      handshakeTimeout,
      host: _host,
      idPrefix,
      keepAlive,
      maxConnections,
      noDelay,
      port: _port,
      readHighWaterMark,
      sessionGrace,
      shutdownTimeout,
      tls,
      ...connection
    } = options
    const socketOptions: Transport.SocketOptions = { keepAlive, noDelay, readHighWaterMark }
    const server: Net.Server = tls === undefined
      ? Net.createServer({ allowHalfOpen: true })
      : Tls.createServer({ ...tls, allowHalfOpen: true } as Tls.TlsOptions)
    const core = yield* makeCore<E, R, never>({
      maxConnections,
      handshakeTimeout,
      sessionGrace,
      shutdownTimeout,
      idPrefix,
      connection,
      stopAccepting: () => {
        if (server.listening) server.close()
      }
    }, handler)
    // the transport options of every session, made once
    const transportOptions = { ...socketOptions, kind: tls === undefined ? "tcp" as const : "tls" as const }
    server.on(tls === undefined ? "connection" : "secureConnection", (socket: Net.Socket) => {
      socket.on("error", () => {}) // reported through the transport; never an unhandled 'error'
      core.unsafeAccept(new SocketAccepted(socket, transportOptions))
    })
    if (tls !== undefined) {
      server.on("tlsClientError", (_err: Error, socket: Tls.TLSSocket) => socket.destroy())
    }
    const address = yield* listen(server, options)
    server.on("error", () => {}) // after bind, accept errors (EMFILE ...) must not crash the process
    return core.server(address)
  })
