/**
 * The scoped connection, assembled from its parts around one state record (`connection/state.ts`):
 * the outbox (stop-gate + bounded queue, below), the writer (`connection/writer.ts`, runs only while
 * there is work), the push reader (`connection/reader.ts`, driven by the transport's callbacks) and
 * the close procedure (`connection/close.ts`, started by the first close request). An idle
 * connection parks no fiber.
 * @internal
 */
import * as Config from "effect/Config"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as FiberSet from "effect/FiberSet"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Tls from "node:tls"
import type * as Connection from "../Connection.js"
import * as DR from "../DisconnectReason.js"
import type { DisconnectReason } from "../DisconnectReason.js"
import type * as Framed from "../Framed.js"
import * as Framing from "../Framing.js"
import * as Metrics from "../Metrics.js"
import * as StopGate from "../StopGate.js"
import * as Transport from "../Transport.js"
import * as cfg from "./config.js"
import { omit } from "./options.js"
import { procedure } from "./connection/close.js"
import { fromTransport } from "./connection/framed.js"
import { ConnectionTag, TypeId } from "./connection/models.js"
import { makeOutbox } from "./connection/outbox.js"
import { incoming, pump } from "./connection/reader.js"
import * as St from "./connection/state.js"
import { kick } from "./connection/writer.js"
import { currentWriterScheduler } from "./scheduler.js"
import type { Timers } from "./timers.js"

/** @internal */
export const defaults = {
  sendQueueCapacity: 1024,
  sendQueueHighWaterMark: 1024 * 1024,
  maxBatchFrames: 1024,
  maxBatchBytes: 256 * 1024,
  writeTimeout: "10 seconds",
  drainTimeout: "5 seconds",
  lingerTimeout: "5 seconds",
  inboundCapacity: 1024,
  maxFrameBytes: Framing.DEFAULT_MAX_FRAME_BYTES
} as const

let nextId = 0

const toReason = (reason: string | DisconnectReason | undefined, fallback: (m: string) => DisconnectReason) =>
  reason === undefined ? fallback("requested") : typeof reason === "string" ? fallback(reason) : reason

/**
 * What the library keeps of each connection beside it: its transport (for the library's own
 * WebSocket code: close frames, the handshake request) and its attachment handle.
 */
const internals = new WeakMap<object, {
  readonly transport: Transport.Transport
  readonly handle: Connection.Handle<never, never>
}>()

/**
 * The transport of a connection: library-internal (WebSocket's close frame and handshake
 * request). Not part of the public `Connection`: nothing outside may write around its writer.
 * @internal
 */
export const transportOf = (conn: object): Transport.Transport | undefined => internals.get(conn)?.transport

/** @internal */
export const attach = <In, Out>(
  conn: Connection.Connection<In, Out>,
  attachment: Connection.Attachment<In, Out>
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.suspend(() => attachment(internals.get(conn)!.handle as unknown as Connection.Handle<In, Out>))

/** Internal observers of a connection (the listener's registry and handshake timer). @internal */
export interface Hooks<In, Out> {
  /** Runs synchronously on every state change. */
  readonly onState?: ((state: Connection.State) => void) | undefined
  /** Runs in the connection's scope when it opens, before the attachments. */
  readonly onOpen?: ((handle: Connection.Handle<In, Out>) => Effect.Effect<void, never, Scope.Scope>) | undefined
  /** Shared timers for the close procedure's bounds (the listener's: no fiber per close). */
  readonly timers?: Timers | undefined
}

const ConnectionProto = {
  [TypeId]: TypeId,
  toJSON(this: Connection.Connection<unknown, never>): unknown {
    const s = this.unsafeStats()
    return { _id: "Connection", id: this.id, kind: this.kind, remoteAddress: this.remoteAddress, state: s.state, queueDepth: s.queueDepth }
  },
  toString(this: Connection.Connection<unknown, never>) {
    return Inspectable.format(this)
  },
  [Inspectable.NodeInspectSymbol](this: Connection.Connection<unknown, never>) {
    return ConnectionProto.toJSON.call(this)
  }
}

/** @internal */
export const fromFramed = <In, Out>(
  framed: Framed.Framed<In, Out>,
  options?: Connection.Options<In, Out>,
  hooks?: Hooks<In, Out>
): Effect.Effect<Connection.Connection<In, Out>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const id = options?.id ?? `conn-${++nextId}`
    const writeTimeout = Duration.decode(options?.writeTimeout ?? defaults.writeTimeout)
    const settings: St.Settings = {
      maxBatchFrames: options?.maxBatchFrames ?? defaults.maxBatchFrames,
      maxBatchBytes: options?.maxBatchBytes ?? defaults.maxBatchBytes,
      writeTimeout,
      writeTimeoutNanos: Option.getOrUndefined(Duration.toNanos(writeTimeout)),
      drainTimeout: Duration.decode(options?.drainTimeout ?? defaults.drainTimeout),
      lingerTimeout: Duration.decode(options?.lingerTimeout ?? defaults.lingerTimeout),
      inboundCapacity: options?.inboundCapacity ?? defaults.inboundCapacity,
      scheduler: yield* FiberRef.get(currentWriterScheduler)
    }
    const gate = StopGate.unsafeMake<DisconnectReason>()
    const queue = StopGate.unsafeMakeQueue<St.Outbound<Out>, DisconnectReason>(gate, {
      capacity: options?.sendQueueCapacity ?? defaults.sendQueueCapacity,
      weight: framed.weight,
      highWaterMark: options?.sendQueueHighWaterMark ?? defaults.sendQueueHighWaterMark,
      lowWaterMark: options?.sendQueueLowWaterMark
    })
    const labels = St.labelSetOf(options?.labels)
    // the connection's fibers (writer, deadline, close procedure) run in this set: started on
    // demand, interrupted when the scope closes (after the graceful close below has run)
    // made inside the log annotations: every fiber it starts carries them (nothing to add per start)
    const annotate = Effect.annotateLogs({ connection: id, remote: framed.remoteAddress ?? "?" })
    const run = yield* annotate(FiberSet.makeRuntime<never, unknown, unknown>())
    const core: St.Core<In, Out> = St.makeCore({
      id,
      framed,
      clock: yield* Effect.clock,
      run: run as St.Run,
      labels,
      settings,
      gate,
      queue,
      annotate,
      onState: hooks?.onState,
      timers: hooks?.timers
    })
    Metrics.connects.unsafeUpdate(1, labels.tags)
    Metrics.connections.unsafeModify(1, labels.stateTags.Active)

    const requestClose = (reason: DisconnectReason, mode: "graceful" | "abort") =>
      St.requestClose(core, reason, mode, startClose)
    const startClose = () => {
      run(procedure(core, requestClose))
    }
    const fail = (reason: DisconnectReason) => requestClose(reason, "abort")
    const wakeWriter = () => kick(core, fail)

    // ---- outbox: check the gate, wait for capacity, re-check, commit; then start the writer ----
    const { send, sendAll, sendEncoded, trySend, trySendEncoded } = makeOutbox(core, wakeWriter)

    const closeWith = (mode: "graceful" | "abort", fallback: (m: string) => DisconnectReason) =>
    (reason?: string | DisconnectReason) =>
      Effect.suspend(() => {
        requestClose(toReason(reason, fallback), mode)
        return Deferred.await(core.outcome)
      })

    const unsafeStats = (): Connection.Stats => {
      const t = framed.stats()
      return {
        id,
        state: core.phase,
        framesIn: core.framesIn,
        framesOut: core.framesOut,
        bytesIn: t.bytesRead,
        bytesOut: core.bytesOut,
        queueDepth: queue.size(),
        framesInFlight: core.inFlight?.length ?? 0,
        queueBytes: queue.queuedWeight(),
        lastReadAt: core.lastReadAt,
        lastWriteAt: core.lastWriteAt,
        transport: t
      }
    }

    const conn: Connection.Connection<In, Out> = Object.assign(Object.create(ConnectionProto), {
      id,
      kind: framed.kind,
      remoteAddress: framed.remoteAddress,
      localAddress: framed.localAddress,
      codec: framed.codec,
      send,
      sendAll,
      trySend,
      sendEncoded,
      trySendEncoded,
      incoming: incoming(core, requestClose),
      state: Effect.sync(() => core.phase),
      // built on access: nothing is kept per connection until someone subscribes
      get stateChanges() {
        return St.stateChanges(core)
      },
      close: closeWith("graceful", (message) => DR.LocalClose({ message })),
      abort: closeWith("abort", (message) => DR.Aborted({ message })),
      unsafeRequestClose: requestClose,
      closed: Effect.map(Deferred.await(core.outcome), (o) => o.reason),
      outcome: Deferred.await(core.outcome),
      unsafeStats,
      stats: Effect.sync(unsafeStats)
    })

    // the reader and the control lane are driven by the transport's callbacks
    framed.unsafeOnReadable(() => pump(core, requestClose))
    framed.control?.unsafeOnPending(() => {
      core.controlPending = true
      wakeWriter()
    })
    pump(core, requestClose) // bytes that arrived before we were listening

    const handle: Connection.Handle<In, Out> = {
      id,
      connection: conn,
      unsafeStats,
      unsafeState: () => core.phase,
      unsafeRequestClose: requestClose,
      // a destroy outside the writer: the socket's callbacks end the writer and reader
      destroy: framed.destroy,
      unsafeOnState: (f) => St.onState(core, f),
      unsafeActivity: () => core.activity,
      unsafeOnActivity: (f) => {
        const fs = core.onActivity ?? (core.onActivity = [])
        fs.push(f)
        return () => {
          // after the wake-up (the list was taken and cleared) there is nothing to remove
          const now = core.onActivity
          if (now !== fs) return
          const i = fs.indexOf(f)
          if (i >= 0) fs.splice(i, 1)
          if (fs.length === 0) core.onActivity = undefined
        }
      },
      get stateChanges() {
        return St.stateChanges(core)
      },
      outcome: conn.outcome
    }
    internals.set(conn, { transport: framed.transport, handle: handle as unknown as Connection.Handle<never, never> })
    if (hooks?.onOpen !== undefined) yield* hooks.onOpen(handle)
    // attachments (watchdogs) start now; their fibers are interrupted only after the close below has run
    for (const attach of options?.watchdogs ?? []) yield* attach(handle)

    // closing the scope is a graceful close (added last, so it runs before the fibers are interrupted)
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        requestClose(DR.LocalClose({ message: "scope closed" }), "graceful")
        return Deferred.await(core.outcome)
      })
    )
    yield* Effect.logDebug("connection open").pipe(core.annotate)
    return conn
  })

/** @internal */
export const make = <In = Uint8Array, Out = In>(
  transport: Transport.Transport,
  options?: Connection.Options<In, Out>,
  hooks?: Hooks<In, Out>
): Effect.Effect<Connection.Connection<In, Out>, never, Scope.Scope> =>
  Effect.flatMap(
    fromTransport(transport, options?.codec ?? (Framing.lengthPrefixed() as unknown as Framing.Codec<In, Out>)),
    (framed) => fromFramed(framed, options, hooks)
  )

/** @internal */
export const config: Config.Config<Connection.Options> = Config.all({
  sendQueueCapacity: cfg.optional(cfg.positiveInt("TETHER_SEND_QUEUE_CAPACITY")),
  sendQueueHighWaterMark: cfg.optional(cfg.bytes("TETHER_SEND_QUEUE_HIGH_WATER_MARK")),
  sendQueueLowWaterMark: cfg.optional(cfg.bytes("TETHER_SEND_QUEUE_LOW_WATER_MARK")),
  maxBatchFrames: cfg.optional(cfg.positiveInt("TETHER_MAX_BATCH_FRAMES")),
  maxBatchBytes: cfg.optional(cfg.bytes("TETHER_MAX_BATCH_BYTES")),
  writeTimeout: cfg.optional(cfg.duration("TETHER_WRITE_TIMEOUT")),
  drainTimeout: cfg.optional(cfg.duration("TETHER_DRAIN_TIMEOUT")),
  lingerTimeout: cfg.optional(cfg.duration("TETHER_LINGER_TIMEOUT")),
  inboundCapacity: cfg.optional(cfg.positiveInt("TETHER_INBOUND_CAPACITY")),
  framing: Config.literal("length-prefixed", "newline", "raw")("TETHER_FRAMING").pipe(Config.withDefault("length-prefixed")),
  maxFrameBytes: cfg.bytes("TETHER_MAX_FRAME_BYTES").pipe(Config.withDefault(defaults.maxFrameBytes))
}).pipe(
  Config.map(({ framing, maxFrameBytes, ...rest }): Connection.Options => ({
    ...rest,
    codec: framing === "newline"
      ? Framing.newline({ maxFrameBytes })
      : framing === "raw"
      ? Framing.raw({ maxFrameBytes })
      : Framing.lengthPrefixed({ maxFrameBytes })
  }))
)

/** @internal */
export const connectTcp = (
  options: Connection.Options & Transport.SocketOptions & {
    readonly host?: string | undefined
    readonly port: number
    readonly connectTimeout?: Duration.DurationInput | undefined
  }
): Effect.Effect<Connection.Connection, Transport.TransportError, Scope.Scope> =>
  Effect.flatMap(Transport.connectTcp(options), (t) => make(t, options)).pipe(
    Effect.withSpan("tether.connect", {
      attributes: { "tether.transport": "tcp", "net.peer.name": options.host ?? "127.0.0.1", "net.peer.port": options.port },
      // the connection's fibers keep this span as their parent for the connection's life: a captured stack
      // trace would be an Error held per connection (~1 KB of an idle connection's heap)
      captureStackTrace: false
    })
  )

/**
 * Every connection option, once: a `Record` over the keys of `Connection.Options`, so a new option
 * that is not listed here does not compile (instead of leaking into `tls.connect`).
 * @internal
 */
export const connectionOptionKeys: Record<keyof Connection.Options, true> = {
  codec: true,
  id: true,
  labels: true,
  sendQueueCapacity: true,
  sendQueueHighWaterMark: true,
  sendQueueLowWaterMark: true,
  maxBatchFrames: true,
  maxBatchBytes: true,
  writeTimeout: true,
  drainTimeout: true,
  lingerTimeout: true,
  inboundCapacity: true,
  watchdogs: true
}


/** @internal */
export const connectTls = (
  options: Connection.Options & Transport.SocketOptions & Tls.ConnectionOptions & {
    readonly host?: string | undefined
    readonly port: number
    readonly connectTimeout?: Duration.DurationInput | undefined
  }
): Effect.Effect<Connection.Connection, Transport.TransportError, Scope.Scope> => {
  const tlsOptions = omit(options, connectionOptionKeys)
  return Effect.flatMap(Transport.connectTls(tlsOptions), (t) => make(t, options)).pipe(
    Effect.withSpan("tether.connect", {
      attributes: { "tether.transport": "tls", "net.peer.name": options.host ?? "127.0.0.1", "net.peer.port": options.port },
      captureStackTrace: false // see connectTcp
    })
  )
}

/** @internal */
export const layerTcp = (
  options: Parameters<typeof connectTcp>[0]
): Layer.Layer<Connection.Connection, Transport.TransportError> => Layer.scoped(ConnectionTag, connectTcp(options))

