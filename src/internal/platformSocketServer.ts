/**
 * @effect/platform `SocketServer.SocketServer` over a tether `Listener`.
 *
 * @internal
 */
import type * as Socket from "@effect/platform/Socket"
import * as SocketServer from "@effect/platform/SocketServer"
import type * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Framing from "../Framing.js"
import * as Listener from "../Listener.js"
import type * as PlatformSocketServer from "../PlatformSocketServer.js"
import { fromConnection, fromWebSocketConnection } from "./platformSocket.js"
import * as wsServer from "./wsServer.js"

type Handler = (socket: Socket.Socket) => Effect.Effect<unknown, unknown>

const reportUnhandledError = <E>(cause: Cause.Cause<E>) =>
  Effect.withFiberRuntime<void>((fiber) => {
    const level = fiber.getFiberRef(FiberRef.unhandledErrorLogLevel)
    return level._tag === "Some"
      ? Effect.logWithLevel(level.value, cause, "Unhandled error in SocketServer")
      : Effect.void
  })

type Serve<RS> = (
  onConnection: (socket: Effect.Effect<Socket.Socket>) => Effect.Effect<void>
) => Effect.Effect<Listener.Server, Listener.ListenerError, Scope.Scope | RS>

/**
 * The platform service over a tether server: `serve` listens with a session handler that turns its connection into a
 * platform socket; the sessions wait for `run`'s handler, and interrupting `run` is the server's bounded shutdown.
 */
const serveWith = <RS>(
  serve: Serve<RS>
): Effect.Effect<PlatformSocketServer.TetherSocketServer, SocketServer.SocketServerError, Scope.Scope | RS> =>
  Effect.gen(function*() {
    const installed = yield* Deferred.make<Handler>()
    const server = yield* serve((socket) =>
      Deferred.await(installed).pipe(
        Effect.flatMap((handler) => Effect.flatMap(socket, handler)),
        Effect.catchAllCause(reportUnhandledError)
      )
    ).pipe(Effect.mapError((cause) => new SocketServer.SocketServerError({ reason: "Open", cause })))

    const run = <R, E, _>(
      handler: (socket: Socket.Socket) => Effect.Effect<_, E, R>
    ): Effect.Effect<never, SocketServer.SocketServerError, R> =>
      Effect.gen(function*() {
        const context = yield* Effect.context<R>()
        const ok = yield* Deferred.succeed(installed, (socket) => Effect.provide(handler(socket), context))
        if (!ok) {
          return yield* new SocketServer.SocketServerError({
            reason: "Unknown",
            cause: new Error("this SocketServer already ran: a tether Listener is served by one run")
          })
        }
        return yield* Effect.never
      }).pipe(
        // the platform closes every connection when run is interrupted: here that is the listener's bounded shutdown
        Effect.onInterrupt(() => server.shutdown)
      )

    return {
      address: { _tag: "TcpAddress", hostname: server.address.host, port: server.address.port },
      run,
      listener: server
    } satisfies PlatformSocketServer.TetherSocketServer
  })

/** @internal */
export const make = (
  options: PlatformSocketServer.Options
): Effect.Effect<PlatformSocketServer.TetherSocketServer, SocketServer.SocketServerError, Scope.Scope> => {
  const { maxPendingHandlers, ...listenerOptions } = options
  const socketOptions = { maxPendingHandlers }
  return serveWith((onConnection) =>
    Listener.serve(
      { codec: Framing.raw(), ...listenerOptions },
      (conn) => onConnection(fromConnection(conn, socketOptions))
    )
  )
}

/** @internal */
export const layer = (
  options: PlatformSocketServer.Options
): Layer.Layer<SocketServer.SocketServer, SocketServer.SocketServerError> =>
  Layer.scoped(SocketServer.SocketServer, make(options))

/** @internal */
export const makeWebSocket = <RU = never>(
  options: PlatformSocketServer.WebSocketOptions<RU>
): Effect.Effect<PlatformSocketServer.TetherSocketServer, SocketServer.SocketServerError, Scope.Scope | RU> => {
  const { closeCodeIsError, maxPendingHandlers, ...serverOptions } = options
  const socketOptions = { closeCodeIsError, maxPendingHandlers }
  return serveWith((onConnection) =>
    wsServer.serve(serverOptions, (conn) => onConnection(fromWebSocketConnection(conn, socketOptions)))
  )
}

/** @internal */
export const layerWebSocket = <RU = never>(
  options: PlatformSocketServer.WebSocketOptions<RU>
): Layer.Layer<SocketServer.SocketServer, SocketServer.SocketServerError, RU> =>
  Layer.scoped(SocketServer.SocketServer, makeWebSocket(options))
