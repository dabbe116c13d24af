/**
 * @effect/platform `Socket.Socket` over tether connections.
 *
 * @internal
 */
import * as Socket from "@effect/platform/Socket"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Connection from "../Connection.js"
import type * as Dialer from "../Dialer.js"
import * as DR from "../DisconnectReason.js"
import type { DisconnectReason } from "../DisconnectReason.js"
import * as Framing from "../Framing.js"
import type * as PlatformSocket from "../PlatformSocket.js"

/** @internal */
export const defaultMaxPendingHandlers = 1024

/**
 * What a connection's end becomes for `run`: the peer's EOF ends it (like `NodeSocket`'s `end` event), a local close
 * is a `SocketCloseError` with the code of the `CloseEvent` that asked for it (1000 when the scope or the writer's
 * release did), a server shutdown is code 1001, and every other reason is a `SocketGenericError` whose cause is the
 * `DisconnectReason` (reason `"Write"` for a write timeout or a send stall, `"Read"` otherwise).
 *
 * @internal
 */
export const toSocketExit = (
  reason: DisconnectReason,
  closeEvent: Socket.CloseEvent | undefined
): Effect.Effect<void, Socket.SocketError> => {
  switch (reason._tag) {
    case "PeerClosed":
      return Effect.void
    case "LocalClose":
      return Effect.fail(
        new Socket.SocketCloseError({
          reason: "Close",
          code: closeEvent?.code ?? 1000,
          closeReason: closeEvent?.reason ?? reason.message
        })
      )
    case "Shutdown":
      return Effect.fail(new Socket.SocketCloseError({ reason: "Close", code: 1001, closeReason: "shutdown" }))
    case "WriteTimeout":
    case "SendStalled":
      return Effect.fail(new Socket.SocketGenericError({ reason: "Write", cause: reason }))
    default:
      return Effect.fail(new Socket.SocketGenericError({ reason: "Read", cause: reason }))
  }
}

/**
 * The reader's step, for the chunks of one read: the handler is called for each chunk, in order, and the effects it
 * returns run in one fiber of their own, one after the other (as the platform runs the effect for one data event:
 * `NodeSocket` forks a fiber per `data` event, and `@effect/rpc` handles the messages of one event in order). At
 * most `maxPending` such fibers run at once, so a slow handler pushes back on the socket (the reader waits, the
 * transport pauses) instead of piling up fibers.
 */
const boundedHandler = <_, E, R>(
  handler: (_: Uint8Array) => Effect.Effect<_, E, R> | void,
  runFork: (effect: Effect.Effect<unknown, E, R>) => unknown,
  maxPending: number
) =>
  Effect.map(Effect.makeSemaphore(maxPending), (permits) => {
    const release = permits.release(1)
    return (chunks: Chunk.Chunk<Uint8Array>): Effect.Effect<void> =>
      Effect.suspend(() => {
        let effects: Array<Effect.Effect<_, E, R>> | undefined
        for (const chunk of chunks) {
          const result = handler(chunk)
          if (Effect.isEffect(result)) (effects ??= []).push(result)
        }
        if (effects === undefined) return Effect.void
        const run = effects.length === 1 ? effects[0]! : Effect.forEach(effects, identity, { discard: true })
        return Effect.zipRight(
          permits.take(1),
          Effect.sync(() => {
            runFork(Effect.ensuring(run, release))
          })
        )
      })
  })

interface Current {
  readonly conn: Connection.Connection
  closeEvent: Socket.CloseEvent | undefined
}

/** @internal */
export const fromOpen = <RO>(
  open: Effect.Effect<Connection.Connection, Socket.SocketError, RO>,
  options?: PlatformSocket.SocketOptions | undefined
): Effect.Effect<Socket.Socket, never, Exclude<RO, Scope.Scope>> =>
  Effect.withFiberRuntime<Socket.Socket, never, Exclude<RO, Scope.Scope>>((fiber) => {
    const maxPending = options?.maxPendingHandlers ?? defaultMaxPendingHandlers
    const openContext = fiber.currentContext as Context.Context<RO>
    const latch = Effect.unsafeMakeLatch(false)
    let current: Current | undefined
    const encoder = new TextEncoder()

    const runRaw = <_, E, R>(
      handler: (_: Uint8Array) => Effect.Effect<_, E, R> | void,
      opts?: { readonly onOpen?: Effect.Effect<void> | undefined }
    ): Effect.Effect<void, Socket.SocketError | E, R> =>
      Effect.scopedWith(Effect.fnUntraced(function*(scope) {
        const fiberSet = yield* FiberSet.make<unknown, E | Socket.SocketError>().pipe(Scope.extend(scope))
        const conn = yield* Scope.extend(open, scope)
        const runFork = yield* FiberSet.runtime(fiberSet)<R>()
        const self: Current = { conn, closeEvent: undefined }
        const onChunks = yield* boundedHandler(handler, runFork, maxPending)
        const reader = Stream.runForEachChunk(conn.incoming, onChunks).pipe(
          Effect.zipRight(conn.closed),
          Effect.flatMap((reason) => toSocketExit(reason, self.closeEvent)),
          Effect.exit,
          Effect.flatMap((exit) => Deferred.done(fiberSet.deferred, exit))
        )
        current = self
        yield* latch.open
        yield* FiberSet.run(fiberSet, reader)
        if (opts?.onOpen) yield* opts.onOpen
        return yield* FiberSet.join(fiberSet)
      })).pipe(
        Effect.mapInputContext((input: Context.Context<R>) => Context.merge(openContext, input)),
        Effect.ensuring(Effect.sync(() => {
          latch.unsafeClose()
          current = undefined
        })),
        Effect.interruptible
      )

    const write = (chunk: Uint8Array | string | Socket.CloseEvent): Effect.Effect<void, Socket.SocketError> =>
      latch.whenOpen(Effect.suspend(() => {
        const c = current
        if (c === undefined) {
          return Effect.fail(new Socket.SocketGenericError({ reason: "Write", cause: new Error("socket not open") }))
        }
        if (Socket.isCloseEvent(chunk)) {
          c.closeEvent = chunk
          c.conn.unsafeRequestClose(DR.LocalClose({ message: chunk.toString() }), "graceful")
          return Effect.void
        }
        const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk
        if (bytes.length === 0) return Effect.void
        return Effect.mapError(
          c.conn.send(bytes),
          (cause) => new Socket.SocketGenericError({ reason: "Write", cause })
        )
      }))

    const writer = Effect.acquireRelease(
      Effect.succeed(write),
      () =>
        Effect.sync(() => {
          current?.conn.unsafeRequestClose(DR.LocalClose({ message: "writer released" }), "graceful")
        })
    )

    return Effect.succeed(Socket.Socket.of({
      [Socket.TypeId]: Socket.TypeId,
      run: runRaw,
      runRaw,
      writer
    }))
  })

/** @internal */
export const fromConnection = (
  conn: Connection.Connection,
  options?: PlatformSocket.SocketOptions | undefined
): Effect.Effect<Socket.Socket> => {
  let used = false
  return fromOpen(
    Effect.suspend(() => {
      if (used) {
        return Effect.fail(
          new Socket.SocketGenericError({ reason: "Open", cause: new Error(`connection ${conn.id} was already run`) })
        )
      }
      used = true
      return Effect.succeed(conn)
    }),
    options
  )
}

/** @internal */
export const makeTcp = (options: PlatformSocket.TcpOptions): Effect.Effect<Socket.Socket> => {
  const { maxPendingHandlers: _, ...connect } = options
  return fromOpen(
    Connection.connectTcp({ codec: Framing.raw(), ...connect }).pipe(
      Effect.mapError((cause) =>
        new Socket.SocketGenericError({ reason: cause.reason === "ConnectTimeout" ? "OpenTimeout" : "Open", cause })
      )
    ),
    options
  )
}

/** @internal */
export const layerTcp = (options: PlatformSocket.TcpOptions): Layer.Layer<Socket.Socket> =>
  Layer.effect(Socket.Socket, makeTcp(options))

/** @internal */
export const fromDialer = (
  dialer: Dialer.Dialer,
  options?: PlatformSocket.SocketOptions | undefined
): Effect.Effect<Socket.Socket> =>
  Effect.sync(() => {
    const maxPending = options?.maxPendingHandlers ?? defaultMaxPendingHandlers
    const encoder = new TextEncoder()
    // each connection of the dialer once, in order, until it stops
    const connections = dialer.statusChanges.pipe(
      Stream.takeUntil((status) => status === "Stopped"),
      Stream.mapEffect(() => dialer.connection),
      Stream.filterMap((conn) => conn),
      Stream.changesWith((a, b) => a === b)
    )
    const runRaw = <_, E, R>(
      handler: (_: Uint8Array) => Effect.Effect<_, E, R> | void,
      opts?: { readonly onOpen?: Effect.Effect<void> | undefined }
    ): Effect.Effect<void, Socket.SocketError | E, R> =>
      Effect.scopedWith(Effect.fnUntraced(function*(scope) {
        const fiberSet = yield* FiberSet.make<unknown, E | Socket.SocketError>().pipe(Scope.extend(scope))
        const runFork = yield* FiberSet.runtime(fiberSet)<R>()
        const onChunks = yield* boundedHandler(handler, runFork, maxPending)
        const reader = Stream.runForEach(
          connections,
          (conn) => Stream.runForEachChunk(conn.incoming, onChunks)
        ).pipe(
          Effect.zipRight(Effect.fail(new Socket.SocketCloseError({ reason: "Close", code: 1000, closeReason: "dialer stopped" }))),
          Effect.exit,
          Effect.flatMap((exit) => Deferred.done(fiberSet.deferred, exit))
        )
        yield* FiberSet.run(fiberSet, reader)
        if (opts?.onOpen) yield* opts.onOpen
        return yield* FiberSet.join(fiberSet)
      })).pipe(Effect.interruptible)

    const write = (chunk: Uint8Array | string | Socket.CloseEvent): Effect.Effect<void, Socket.SocketError> => {
      if (Socket.isCloseEvent(chunk)) return Effect.asVoid(dialer.stop(chunk.toString()))
      const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk
      if (bytes.length === 0) return Effect.void
      return Effect.mapError(dialer.send(bytes), (cause) => new Socket.SocketGenericError({ reason: "Write", cause }))
    }

    return Socket.Socket.of({
      [Socket.TypeId]: Socket.TypeId,
      run: runRaw,
      runRaw,
      writer: Effect.succeed(write)
    })
  })
