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
import type * as WS from "../WebSocket.js"
import { Message } from "./webSocket.js"
import { isValidCloseCode } from "./wsFrame.js"
import { handleOfConnection } from "./wsFramed.js"

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
const boundedHandler = <A, _, E, R>(
  handler: (_: A) => Effect.Effect<_, E, R> | void,
  runFork: (effect: Effect.Effect<unknown, E, R>) => unknown,
  maxPending: number
) =>
  Effect.map(Effect.makeSemaphore(maxPending), (permits) => {
    const release = permits.release(1)
    return (chunks: Chunk.Chunk<A>): Effect.Effect<void> =>
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

interface Current<In, Out> {
  readonly conn: Connection.Connection<In, Out>
  closeEvent: Socket.CloseEvent | undefined
}

/**
 * How a connection's messages meet the platform's `Socket`: what `runRaw`'s handler gets for a message, what a
 * write sends, what a `CloseEvent` asks of the connection and what its end becomes for `run`.
 *
 * @internal
 */
export interface Adapter<In, Out> {
  /** `undefined`: the messages are the platform's bytes as they are (`run` is `runRaw`). */
  readonly toData: ((message: In) => string | Uint8Array) | undefined
  /** `undefined`: nothing to send. */
  readonly fromData: (data: string | Uint8Array) => Out | undefined
  /** Starts the close a written `CloseEvent` asks for (returns at once); an error: the event is refused. */
  readonly requestClose: (conn: Connection.Connection<In, Out>, event: Socket.CloseEvent) => Socket.SocketError | void
  readonly exit: (
    reason: DisconnectReason,
    closeEvent: Socket.CloseEvent | undefined
  ) => Effect.Effect<void, Socket.SocketError>
  /** Whether releasing the writer's scope closes the connection (like `NodeSocket`'s `end()`). */
  readonly closeOnWriterRelease: boolean
}

const textEncoder = new TextEncoder()

/** A byte stream (`Framing.raw()` or any codec of bytes): the platform's net socket. @internal */
export const bytesAdapter: Adapter<Uint8Array, Uint8Array> = {
  toData: undefined,
  fromData: (chunk) => {
    const bytes = typeof chunk === "string" ? textEncoder.encode(chunk) : chunk
    return bytes.length === 0 ? undefined : bytes
  },
  requestClose: (conn, event) => {
    conn.unsafeRequestClose(DR.LocalClose({ message: event.toString() }), "graceful")
  },
  exit: toSocketExit,
  closeOnWriterRelease: true
}

/**
 * What a WebSocket connection's end becomes for `run`, as in the platform's `fromWebSocket`: a `SocketCloseError`
 * with the close code — the peer's Close (1006 when the stream ended without one), the code of the `CloseEvent`
 * written (1000 when the session or the scope closed it), 1001 for a server shutdown — which ends `run` with `void`
 * when `closeCodeIsError` says the code is clean (default: 1000 and 1006); every other reason is a
 * `SocketGenericError` as in {@link toSocketExit}.
 *
 * @internal
 */
export const toWebSocketExit = (
  reason: DisconnectReason,
  closeEvent: Socket.CloseEvent | undefined,
  closeCodeIsError: (code: number) => boolean = Socket.defaultCloseCodeIsError
): Effect.Effect<void, Socket.SocketError> => {
  let error: Socket.SocketCloseError
  switch (reason._tag) {
    case "PeerClosed":
      error = new Socket.SocketCloseError({ reason: "Close", code: reason.code ?? 1006, closeReason: reason.reason })
      break
    case "LocalClose":
      error = new Socket.SocketCloseError({
        reason: "Close",
        code: closeEvent?.code ?? 1000,
        closeReason: closeEvent?.reason ?? reason.message
      })
      break
    case "Shutdown":
      error = new Socket.SocketCloseError({ reason: "Close", code: 1001, closeReason: "shutdown" })
      break
    default:
      return toSocketExit(reason, closeEvent)
  }
  return closeCodeIsError(error.code) ? Effect.fail(error) : Effect.void
}

/**
 * A WebSocket connection (`Connection<Message, Message>`): a Text message reaches `runRaw`'s handler as a string
 * and `run`'s as its UTF-8 bytes, a Binary message as its bytes; writing a string sends a Text message, a
 * `Uint8Array` a Binary one (empty ones too); a `CloseEvent` is a graceful close whose Close frame carries its code
 * and reason (a code RFC 6455 does not allow on the wire is refused with `SocketGenericError` `"Write"`).
 *
 * @internal
 */
export const webSocketAdapter = (
  closeCodeIsError?: ((code: number) => boolean) | undefined
): Adapter<WS.Message, WS.Message> => ({
  toData: (message) => message._tag === "Text" ? message.text : message.data,
  fromData: (data) => typeof data === "string" ? Message.Text({ text: data }) : Message.Binary({ data }),
  requestClose: (conn, event) => {
    if (!isValidCloseCode(event.code)) {
      return new Socket.SocketGenericError({
        reason: "Write",
        cause: new RangeError(`invalid WebSocket close code ${event.code}`)
      })
    }
    const reason = event.reason ?? ""
    handleOfConnection(conn)?.setCloseFrame(event.code, reason)
    conn.unsafeRequestClose(
      DR.LocalClose({ message: `WebSocket close ${event.code}${reason === "" ? "" : ` ${reason}`}` }),
      "graceful"
    )
  },
  exit: (reason, closeEvent) => toWebSocketExit(reason, closeEvent, closeCodeIsError),
  closeOnWriterRelease: false
})

/** @internal */
export const fromWebSocketConnection = (
  conn: WS.Connection,
  options?: PlatformSocket.WebSocketOptions | undefined
): Effect.Effect<Socket.Socket> => fromOpenWith(once(conn), webSocketAdapter(options?.closeCodeIsError), options)

const once = <In, Out>(conn: Connection.Connection<In, Out>) => {
  let used = false
  return Effect.suspend(() => {
    if (used) {
      return Effect.fail(
        new Socket.SocketGenericError({ reason: "Open", cause: new Error(`connection ${conn.id} was already run`) })
      )
    }
    used = true
    return Effect.succeed(conn)
  })
}

/** @internal */
export const fromOpen = <RO>(
  open: Effect.Effect<Connection.Connection, Socket.SocketError, RO>,
  options?: PlatformSocket.SocketOptions | undefined
): Effect.Effect<Socket.Socket, never, Exclude<RO, Scope.Scope>> => fromOpenWith(open, bytesAdapter, options)

/** @internal */
export const fromOpenWith = <In, Out, RO>(
  open: Effect.Effect<Connection.Connection<In, Out>, Socket.SocketError, RO>,
  adapter: Adapter<In, Out>,
  options?: PlatformSocket.SocketOptions | undefined
): Effect.Effect<Socket.Socket, never, Exclude<RO, Scope.Scope>> =>
  Effect.withFiberRuntime<Socket.Socket, never, Exclude<RO, Scope.Scope>>((fiber) => {
    const maxPending = options?.maxPendingHandlers ?? defaultMaxPendingHandlers
    const openContext = fiber.currentContext as Context.Context<RO>
    const latch = Effect.unsafeMakeLatch(false)
    let current: Current<In, Out> | undefined
    const toData = adapter.toData

    const runRaw = <_, E, R>(
      handler: (_: string | Uint8Array) => Effect.Effect<_, E, R> | void,
      opts?: { readonly onOpen?: Effect.Effect<void> | undefined }
    ): Effect.Effect<void, Socket.SocketError | E, R> =>
      Effect.scopedWith(Effect.fnUntraced(function*(scope) {
        const fiberSet = yield* FiberSet.make<unknown, E | Socket.SocketError>().pipe(Scope.extend(scope))
        const conn = yield* Scope.extend(open, scope)
        const runFork = yield* FiberSet.runtime(fiberSet)<R>()
        const self: Current<In, Out> = { conn, closeEvent: undefined }
        const onMessage = toData === undefined
          ? handler as unknown as (_: In) => Effect.Effect<_, E, R> | void
          : (message: In) => handler(toData(message))
        const onChunks = yield* boundedHandler(onMessage, runFork, maxPending)
        const reader = Connection.runForEachChunk(conn, onChunks).pipe(
          Effect.zipRight(conn.closed),
          Effect.flatMap((reason) => adapter.exit(reason, self.closeEvent)),
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

    // `run`'s handler gets bytes: a text message is its UTF-8 encoding (as in the platform's `fromWebSocket`)
    const run: Socket.Socket["run"] = toData === undefined
      ? runRaw as Socket.Socket["run"]
      : <_, E, R>(
        handler: (_: Uint8Array) => Effect.Effect<_, E, R> | void,
        opts?: { readonly onOpen?: Effect.Effect<void> | undefined }
      ): Effect.Effect<void, Socket.SocketError | E, R> =>
        runRaw((data) => handler(typeof data === "string" ? textEncoder.encode(data) : data), opts)

    const write = (chunk: Uint8Array | string | Socket.CloseEvent): Effect.Effect<void, Socket.SocketError> =>
      latch.whenOpen(Effect.suspend(() => {
        const c = current
        if (c === undefined) {
          return Effect.fail(new Socket.SocketGenericError({ reason: "Write", cause: new Error("socket not open") }))
        }
        if (Socket.isCloseEvent(chunk)) {
          const previous = c.closeEvent
          c.closeEvent = chunk
          const refused = adapter.requestClose(c.conn, chunk)
          if (refused === undefined) return Effect.void
          c.closeEvent = previous
          return Effect.fail(refused)
        }
        const out = adapter.fromData(chunk)
        if (out === undefined) return Effect.void
        return Effect.mapError(
          c.conn.send(out),
          (cause) => new Socket.SocketGenericError({ reason: "Write", cause })
        )
      }))

    const writer = adapter.closeOnWriterRelease
      ? Effect.acquireRelease(
        Effect.succeed(write),
        () =>
          Effect.sync(() => {
            current?.conn.unsafeRequestClose(DR.LocalClose({ message: "writer released" }), "graceful")
          })
      )
      : Effect.succeed(write)

    return Effect.succeed(Socket.Socket.of({
      [Socket.TypeId]: Socket.TypeId,
      run,
      runRaw,
      writer
    }))
  })

/** @internal */
export const fromConnection = (
  conn: Connection.Connection,
  options?: PlatformSocket.SocketOptions | undefined
): Effect.Effect<Socket.Socket> => fromOpen(once(conn), options)

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
          (conn) => Connection.runForEachChunk(conn, onChunks)
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
