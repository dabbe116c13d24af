/**
 * @effect/rpc protocols over tether.
 *
 * @internal
 */
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import type * as SocketServer from "@effect/platform/SocketServer"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Connection from "../Connection.js"
import * as DR from "../DisconnectReason.js"
import * as Framing from "../Framing.js"
import type * as PlatformSocketServer from "../PlatformSocketServer.js"
import type * as RpcProtocol from "../RpcProtocol.js"
import * as internalServer from "./platformSocketServer.js"

/** @internal */
export const defaultMaxQueued = 10_000

/** @internal */
export const defaultQueueTimeout: Duration.Duration = Duration.seconds(5)

/** @internal */
export const defaultRetrySchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis", 1.5).pipe(
  Schedule.union(Schedule.spaced("5 seconds"))
)

interface Entry {
  readonly id: string
  readonly tag: string
  readonly frame: Uint8Array
  /** the connection that accepted the frame; undefined while queued (or before its first send) */
  conn: Connection.Connection | undefined
  /** when it was (last) queued for a connection */
  queuedAt: number
  /** the parked `send` of this request (set while it waits) */
  resume: ((result: Effect.Effect<void, RpcClientError>) => void) | undefined
  /** how it was settled before its `send` parked */
  done: Effect.Effect<void, RpcClientError> | undefined
}

const settled: Effect.Effect<void, RpcClientError> = Effect.void

/** ends the request's `send`: with success once its Exit was delivered, or with a typed failure */
const settle = (entry: Entry, result: Effect.Effect<void, RpcClientError>): void => {
  const resume = entry.resume
  if (resume !== undefined) {
    entry.resume = undefined
    resume(result)
  } else if (entry.done === undefined) {
    entry.done = result
  }
}

const notSent = (message: string) =>
  new RpcClientError({ reason: "Protocol", message: `request not sent (it did not run): ${message}` })

/** @internal */
export const makeClient = (
  options: RpcProtocol.ClientOptions
): Effect.Effect<RpcClient.Protocol["Type"], never, Scope.Scope | RpcSerialization.RpcSerialization> =>
  RpcClient.Protocol.make(Effect.fnUntraced(function*(writeResponse) {
    const serialization = yield* RpcSerialization.RpcSerialization
    const {
      idempotent: idempotentOption,
      maxQueuedRequests,
      queueTimeout: queueTimeoutOption,
      retrySchedule,
      ...connectOptions
    } = options
    const maxQueued = maxQueuedRequests ?? defaultMaxQueued
    const queueTimeout = Duration.toMillis(Duration.decode(queueTimeoutOption ?? defaultQueueTimeout))
    const idempotent = typeof idempotentOption === "function"
      ? idempotentOption
      : ((set: ReadonlySet<string>) => (tag: string) => set.has(tag))(new Set(idempotentOption ?? []))
    const textEncoder = new TextEncoder()
    const encodeParser = serialization.unsafeMake()
    const encode = (message: FromClientEncoded): Uint8Array | undefined => {
      const encoded = encodeParser.encode(message)
      return typeof encoded === "string" ? textEncoder.encode(encoded) : encoded
    }

    const entries = new Map<string, Entry>()
    /** requests no connection accepted yet, in order (bounded by maxQueued) */
    const queue = new Set<Entry>()
    let current: Connection.Connection | undefined
    /** why the client no longer connects (its retry schedule ended, or it is closed) */
    let stopped: string | undefined

    const enqueue = (entry: Entry) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        entry.queuedAt = now
        queue.add(entry)
      })

    /** hands the request to the live connection, or queues it for the next one */
    const transmit = (entry: Entry): Effect.Effect<void> =>
      Effect.suspend(() => {
        const conn = current
        if (conn === undefined) return enqueue(entry)
        return Effect.matchEffect(conn.send(entry.frame), {
          onSuccess: () =>
            Effect.sync(() => {
              entry.conn = conn
            }),
          onFailure: (error) =>
            error._tag === "ConnectionClosed"
              ? enqueue(entry)
              : Effect.zipRight(
                Effect.sync(() => entries.delete(entry.id)),
                Effect.sync(() => settle(entry, Effect.fail(notSent(error.message))))
              )
        })
      })

    /** fails the queued calls that have waited `olderThan` millis or more */
    const failQueued = (message: string, olderThan = 0) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const failed = [...queue].filter((entry) => now - entry.queuedAt >= olderThan)
        return Effect.forEach(failed, (entry) => {
          queue.delete(entry)
          entries.delete(entry.id)
          return Effect.sync(() => settle(entry, Effect.fail(notSent(message))))
        }, { discard: true })
      })

    const forward = (entry: Entry | undefined, message: FromClientEncoded) =>
      Effect.suspend(() => {
        const conn = current
        if (entry === undefined || conn === undefined || entry.conn !== conn) return Effect.void
        const frame = encode(message)
        return frame === undefined ? Effect.void : Effect.ignore(conn.send(frame))
      })

    const read = (conn: Connection.Connection) => {
      const parser = serialization.unsafeMake()
      const onFrame = (frame: Uint8Array): Effect.Effect<void> =>
        Effect.suspend(() => {
          let messages: ReadonlyArray<FromServerEncoded>
          try {
            messages = parser.decode(frame) as ReadonlyArray<FromServerEncoded>
          } catch (cause) {
            conn.unsafeRequestClose(DR.MalformedFrame({ message: `rpc: ${String(cause)}` }), "graceful")
            return Effect.void
          }
          return Effect.forEach(messages, (message) => {
            if (message._tag === "Exit") {
              const entry = entries.get(message.requestId)
              entries.delete(message.requestId)
              return entry === undefined
                ? writeResponse(message)
                : Effect.zipRight(writeResponse(message), Effect.sync(() => settle(entry, settled)))
            }
            if (message._tag === "Defect") {
              // the client fails every call on a defect: settle ours too
              const all = [...entries.values()]
              entries.clear()
              queue.clear()
              return Effect.zipRight(
                writeResponse(message),
                Effect.sync(() => all.forEach((e) => settle(e, settled)))
              )
            }
            return message._tag === "Pong" ? Effect.void : writeResponse(message)
          }, { discard: true })
        })
      return Connection.runForEachChunk(conn, (frames) => Effect.forEach(frames, onFrame, { discard: true }))
    }

    const session = (conn: Connection.Connection) =>
      Effect.gen(function*() {
        current = conn
        const waiting = [...queue]
        queue.clear()
        yield* Effect.forEach(waiting, transmit, { discard: true })
        yield* read(conn).pipe(Effect.ensuring(Effect.sync(() => {
          current = undefined
        })))
        const outcome = yield* conn.outcome
        // frames none of whose bytes reached the kernel (and the one cut in the middle, undecodable by the peer)
        // never ran: they go to the next connection; the others may have run
        const unwritten = new Set<Uint8Array>(outcome.undelivered)
        if (outcome.truncated !== undefined) unwritten.add(outcome.truncated)
        const lost = `connection lost after the request was sent (${DR.describe(outcome.reason)}): it may have run`
        for (const entry of entries.values()) {
          if (entry.conn !== conn) continue
          entry.conn = undefined
          if (unwritten.has(entry.frame) || idempotent(entry.tag)) {
            yield* enqueue(entry)
          } else {
            entries.delete(entry.id)
            settle(entry, Effect.fail(new RpcClientError({ reason: "Protocol", message: lost })))
          }
        }
      })

    const loop = Effect.gen(function*() {
      const driver = yield* Schedule.driver(retrySchedule ?? defaultRetrySchedule)
      while (true) {
        const attempt = yield* Effect.either(Effect.scoped(Effect.gen(function*() {
          const conn = yield* Connection.connectTcp({ codec: Framing.lengthPrefixed(), ...connectOptions })
          yield* driver.reset
          yield* session(conn)
        })))
        if (attempt._tag === "Left") {
          // a call waits for a connection for queueTimeout (checked at each failed attempt), not for ever
          yield* failQueued(`connect failed: ${attempt.left.message}`, queueTimeout)
        }
        const more = yield* Effect.either(driver.next(undefined))
        if (more._tag === "Left") {
          stopped = "the retry schedule ended"
          return yield* failQueued(stopped)
        }
      }
    }).pipe(
      Effect.annotateLogs({ module: "RpcProtocol", method: "makeClient" }),
      Effect.interruptible,
      Effect.forkScoped
    )
    yield* loop
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const all = [...entries.values()]
        entries.clear()
        queue.clear()
        current = undefined
        stopped = "client closed"
        return Effect.sync(() => all.forEach((e) => settle(e, Effect.fail(notSent("client closed")))))
      })
    )

    const send = (request: FromClientEncoded): Effect.Effect<void, RpcClientError> => {
      switch (request._tag) {
        case "Request": {
          if (stopped !== undefined) return Effect.fail(notSent(stopped))
          if (current === undefined && queue.size >= maxQueued) {
            return Effect.fail(notSent(`${maxQueued} requests already wait for a connection`))
          }
          const frame = encode(request)
          if (frame === undefined) return Effect.void
          const entry: Entry = {
            id: request.id,
            tag: request.tag,
            frame,
            conn: undefined,
            queuedAt: 0,
            resume: undefined,
            done: undefined
          }
          entries.set(entry.id, entry)
          return Effect.zipRight(
            transmit(entry),
            Effect.async<void, RpcClientError>((resume) => {
              if (entry.done !== undefined) return resume(entry.done)
              entry.resume = resume
              // an interrupted call that was still queued is never sent
              return Effect.sync(() => {
                entry.resume = undefined
                queue.delete(entry)
              })
            })
          )
        }
        case "Interrupt": {
          const entry = entries.get(request.requestId)
          entries.delete(request.requestId)
          return forward(entry, request)
        }
        case "Ack":
          return forward(entries.get(request.requestId), request)
        default:
          return Effect.void
      }
    }

    return { send, supportsAck: true, supportsTransferables: false }
  }))

/** @internal */
export const layerClient = (
  options: RpcProtocol.ClientOptions
): Layer.Layer<RpcClient.Protocol, never, RpcSerialization.RpcSerialization> =>
  Layer.scoped(RpcClient.Protocol, makeClient(options))

/** @internal */
export const layerServer = (
  options: PlatformSocketServer.Options
): Layer.Layer<RpcServer.Protocol, SocketServer.SocketServerError, RpcSerialization.RpcSerialization> =>
  RpcServer.layerProtocolSocketServer.pipe(
    Layer.provide(internalServer.layer({ codec: Framing.lengthPrefixed(), ...options }))
  )
