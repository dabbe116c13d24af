/**
 * The scoped connection, assembled from its parts around one state record (`connection/state.ts`):
 * the outbox (stop-gate + bounded queue, below), the writer (`connection/writer.ts`, runs only while
 * there is work), the push reader (`connection/reader.ts`, driven by the transport's callbacks) and
 * the close procedure (`connection/close.ts`, started by the first close request). An idle
 * connection parks no fiber.
 * @internal
 */
import type * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"
import * as FiberRef from "effect/FiberRef"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type * as Scheduler from "effect/Scheduler"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
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
import * as Resource from "./resource.js"
import { procedure } from "./connection/close.js"
import { fromTransport } from "./connection/framed.js"
import { ConnectionTag, TypeId } from "./connection/models.js"
import { makeOutbox } from "./connection/outbox.js"
import { incoming, pump, read } from "./connection/reader.js"
import * as St from "./connection/state.js"
import { kick } from "./connection/writer.js"
import { currentWriterScheduler } from "./scheduler.js"
import { Gate } from "./stopGate.js"
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
  /** The connection's id (a listener's session id), before `options.id`. */
  readonly id?: string | undefined
  /** Runs synchronously on every state change. */
  readonly onState?: ((state: Connection.State) => void) | undefined
  /** Runs in the connection's scope when it opens, before the attachments. */
  readonly onOpen?: ((handle: Connection.Handle<In, Out>) => Effect.Effect<void, never, Scope.Scope>) | undefined
  /** Shared timers for the close procedure's bounds (the listener's: no fiber per close). */
  readonly timers?: Timers | undefined
}

/**
 * The connection object. Every member of `Connection` is an own property (a connection may be passed
 * point-free, `Effect.forEach(frames, conn.send)`, or spread by a decorator); only the inspection
 * methods are on the prototype. A class, so every connection shares one hidden class (an
 * `Object.assign` of this many members leaves V8 a dictionary-mode object).
 */
class ConnectionImpl<In, Out> implements Connection.Connection<In, Out> {
  declare readonly [TypeId]: Connection.TypeId
  readonly id: string
  readonly kind: Transport.Transport["kind"]
  readonly remoteAddress: string | undefined
  readonly localAddress: string | undefined
  readonly codec: Framing.Codec<In, Out>
  readonly send: Connection.Connection<In, Out>["send"]
  readonly sendAll: Connection.Connection<In, Out>["sendAll"]
  readonly trySend: Connection.Connection<In, Out>["trySend"]
  readonly sendEncoded: Connection.Connection<In, Out>["sendEncoded"]
  readonly trySendEncoded: Connection.Connection<In, Out>["trySendEncoded"]
  readonly close: Connection.Connection<In, Out>["close"]
  readonly abort: Connection.Connection<In, Out>["abort"]
  readonly unsafeRequestClose: Connection.Connection<In, Out>["unsafeRequestClose"]
  readonly unsafeStats: () => Connection.Stats
  /** @internal */
  readonly core: St.Core<In, Out>
  /** @internal the attachment handle */
  readonly handle: HandleImpl<In, Out>
  readonly incoming: Stream.Stream<In>
  readonly read: Effect.Effect<Option.Option<Chunk.Chunk<In>>>
  readonly state: Effect.Effect<Connection.State>
  readonly stateChanges: Stream.Stream<Connection.State>
  readonly closed: Effect.Effect<DisconnectReason>
  readonly outcome: Effect.Effect<Connection.CloseOutcome<Out>>
  readonly stats: Effect.Effect<Connection.Stats>
  constructor(core: St.Core<In, Out>, requestClose: RequestClose, wakeWriter: () => void) {
    const framed = core.framed
    this.core = core
    this.id = core.id
    this.kind = framed.kind
    this.remoteAddress = framed.remoteAddress
    this.localAddress = framed.localAddress
    this.codec = framed.codec
    const outbox = makeOutbox(core, wakeWriter)
    this.send = outbox.send
    this.sendAll = outbox.sendAll
    this.trySend = outbox.trySend
    this.sendEncoded = outbox.sendEncoded
    this.trySendEncoded = outbox.trySendEncoded
    this.close = (reason) => closeWith(core, requestClose, "graceful", toReason(reason, localClose))
    this.abort = (reason) => closeWith(core, requestClose, "abort", toReason(reason, aborted))
    this.unsafeRequestClose = requestClose
    this.unsafeStats = () => statsOf(core)
    this.handle = new HandleImpl(this, requestClose)
    // Own properties, not prototype getters, so that a decorator spreading the connection
    // (`{ ...conn, send: ... }`) keeps them; the streams are suspended, so nothing of them is built
    // until they run (the inbound stream once: consume it once).
    // The effects are small commit objects (one per member, holding the record) rather than an
    // `Effect.sync` or `Effect.suspend` with a closure and its context each: a few hundred bytes of
    // every connection, idle or not.
    let inbound: Stream.Stream<In> | undefined
    this.incoming = Stream.suspend(() => inbound ??= incoming(core, requestClose))
    this.read = new ReadEffect(core, requestClose)
    this.state = new StateEffect(core)
    this.stateChanges = Stream.suspend(() => St.stateChanges(core))
    this.outcome = new OutcomeEffect(core)
    this.closed = new ClosedEffect(core)
    this.stats = new StatsEffect(core)
  }
  toJSON(): unknown {
    const s = statsOf(this.core)
    return { _id: "Connection", id: this.id, kind: this.kind, remoteAddress: this.remoteAddress, state: s.state, queueDepth: s.queueDepth }
  }
  toString(): string {
    return Inspectable.format(this)
  }
  [Inspectable.NodeInspectSymbol](): unknown {
    return this.toJSON()
  }
}
Object.defineProperty(ConnectionImpl.prototype, TypeId, { value: TypeId })

/** `conn.state`. */
class StateEffect<In, Out> extends Effectable.Class<Connection.State> {
  constructor(private readonly core: St.Core<In, Out>) {
    super()
  }
  commit(): Effect.Effect<Connection.State> {
    return Effect.succeed(this.core.phase)
  }
}

/** `conn.stats`. */
class StatsEffect<In, Out> extends Effectable.Class<Connection.Stats> {
  constructor(private readonly core: St.Core<In, Out>) {
    super()
  }
  commit(): Effect.Effect<Connection.Stats> {
    return Effect.succeed(statsOf(this.core))
  }
}

/** `conn.outcome`: waits for the close's outcome. */
class OutcomeEffect<In, Out> extends Effectable.Class<Connection.CloseOutcome<Out>> {
  constructor(private readonly core: St.Core<In, Out>) {
    super()
  }
  commit(): Effect.Effect<Connection.CloseOutcome<Out>> {
    return this.core.outcome.await
  }
}

/** `conn.closed`: waits for the close's reason. */
class ClosedEffect<In, Out> extends Effectable.Class<DisconnectReason> {
  constructor(private readonly core: St.Core<In, Out>) {
    super()
  }
  commit(): Effect.Effect<DisconnectReason> {
    return Effect.map(this.core.outcome.await, reasonOf)
  }
}
const reasonOf = <Out>(o: Connection.CloseOutcome<Out>): DisconnectReason => o.reason

/** `conn.read`: the pull is built on first use. */
class ReadEffect<In, Out> extends Effectable.Class<Option.Option<Chunk.Chunk<In>>> {
  private pull: Effect.Effect<Option.Option<Chunk.Chunk<In>>> | undefined = undefined
  constructor(private readonly core: St.Core<In, Out>, private readonly requestClose: RequestClose) {
    super()
  }
  commit(): Effect.Effect<Option.Option<Chunk.Chunk<In>>> {
    return this.pull ??= read(this.core, this.requestClose)
  }
}

/** The narrow handle watchdogs and other attachments get: one per connection, methods on the prototype. */
class HandleImpl<In, Out> implements Connection.Handle<In, Out> {
  readonly id: string
  constructor(readonly connection: ConnectionImpl<In, Out>, readonly unsafeRequestClose: RequestClose) {
    this.id = connection.id
  }
  /** A destroy outside the writer: the socket's callbacks end the writer and reader. */
  get destroy(): Effect.Effect<void> {
    return this.connection.core.framed.destroy
  }
  unsafeStats(): Connection.Stats {
    return statsOf(this.connection.core)
  }
  unsafeState(): Connection.State {
    return this.connection.core.phase
  }
  unsafeOnState(f: (state: Connection.State) => void): () => void {
    return St.onState(this.connection.core, f)
  }
  unsafeActivity(): number {
    return this.connection.core.activity
  }
  unsafeOnActivity(f: () => void): () => void {
    const core = this.connection.core
    const fs = core.onActivity ?? (core.onActivity = [])
    fs.push(f)
    return () => {
      // after the wake-up (the list was taken and cleared) there is nothing to remove
      if (core.onActivity !== fs) return
      const i = fs.indexOf(f)
      if (i >= 0) fs.splice(i, 1)
      if (fs.length === 0) core.onActivity = undefined
    }
  }
  get stateChanges(): Stream.Stream<Connection.State> {
    return St.stateChanges(this.connection.core)
  }
  get outcome(): Effect.Effect<Connection.CloseOutcome<Out>> {
    return this.connection.core.outcome.await
  }
}

type RequestClose = (reason: DisconnectReason, mode: "graceful" | "abort") => void

const localClose = (message: string) => DR.LocalClose({ message })
const aborted = (message: string) => DR.Aborted({ message })

const closeWith = <In, Out>(
  core: St.Core<In, Out>,
  requestClose: RequestClose,
  mode: "graceful" | "abort",
  reason: DisconnectReason
): Effect.Effect<Connection.CloseOutcome<Out>> =>
  Effect.suspend(() => {
    requestClose(reason, mode)
    return core.outcome.await
  })

const statsOf = <In, Out>(core: St.Core<In, Out>): Connection.Stats => {
  const t = core.framed.stats()
  return {
    id: core.id,
    state: core.phase,
    framesIn: core.framesIn,
    framesOut: core.framesOut,
    bytesIn: t.bytesRead,
    bytesOut: core.bytesOut,
    queueDepth: core.queue.size(),
    framesInFlight: core.inFlight?.length ?? 0,
    queueBytes: core.queue.queuedWeight(),
    lastReadAt: core.lastReadAt,
    lastWriteAt: core.lastWriteAt,
    transport: t
  }
}

// Connections opened with the same settings share one record of them (a listener's sessions, a
// service's connections): ~0.3 KB of every connection otherwise (the record, three Durations).
// Keyed by value, so that options spread into a fresh object per connection share it too; a few
// distinct settings are expected, and the cache is dropped whole if that ever stops being true.
const settingsCache = new Map<Scheduler.Scheduler, Map<string, St.Settings>>()
const SETTINGS_CACHE_MAX = 256
const nanosKey = (d: Duration.Duration): string => {
  const n = Duration.toNanos(d)
  return n._tag === "Some" ? String(n.value) : "inf"
}
const settingsOf = <In, Out>(
  options: Connection.Options<In, Out> | undefined,
  scheduler: Scheduler.Scheduler
): St.Settings => {
  const maxBatchFrames = options?.maxBatchFrames ?? defaults.maxBatchFrames
  const maxBatchBytes = options?.maxBatchBytes ?? defaults.maxBatchBytes
  const writeTimeout = Duration.decode(options?.writeTimeout ?? defaults.writeTimeout)
  const drainTimeout = Duration.decode(options?.drainTimeout ?? defaults.drainTimeout)
  const lingerTimeout = Duration.decode(options?.lingerTimeout ?? defaults.lingerTimeout)
  const inboundCapacity = options?.inboundCapacity ?? defaults.inboundCapacity
  const key = `${maxBatchFrames}|${maxBatchBytes}|${nanosKey(writeTimeout)}|${nanosKey(drainTimeout)}|${
    nanosKey(lingerTimeout)
  }|${inboundCapacity}`
  let byKey = settingsCache.get(scheduler)
  if (byKey === undefined) {
    if (settingsCache.size >= SETTINGS_CACHE_MAX) settingsCache.clear()
    settingsCache.set(scheduler, byKey = new Map())
  }
  const cached = byKey.get(key)
  if (cached !== undefined) return cached
  if (byKey.size >= SETTINGS_CACHE_MAX) byKey.clear()
  const settings: St.Settings = {
    maxBatchFrames,
    maxBatchBytes,
    writeTimeout,
    writeTimeoutNanos: Option.getOrUndefined(Duration.toNanos(writeTimeout)),
    drainTimeout,
    lingerTimeout,
    inboundCapacity,
    scheduler
  }
  byKey.set(key, settings)
  return settings
}

const scopeClosed = DR.LocalClose({ message: "scope closed" })

/** @internal */
export const fromFramed = <In, Out>(
  framed: Framed.Framed<In, Out>,
  options?: Connection.Options<In, Out>,
  hooks?: Hooks<In, Out>
): Effect.Effect<Connection.Connection<In, Out>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const id = hooks?.id ?? options?.id ?? `conn-${++nextId}`
    const settings = settingsOf(options, yield* FiberRef.get(currentWriterScheduler))
    // the gate is used only through method calls here: the unbound one (no closures)
    const gate = new Gate<DisconnectReason>()
    const queue = StopGate.unsafeMakeQueue<St.Outbound<Out>, DisconnectReason>(gate, {
      capacity: options?.sendQueueCapacity ?? defaults.sendQueueCapacity,
      weight: framed.weight,
      highWaterMark: options?.sendQueueHighWaterMark ?? defaults.sendQueueHighWaterMark,
      lowWaterMark: options?.sendQueueLowWaterMark
    })
    const labels = St.labelSetOf(options?.labels)
    // the connection's fibers (writer, deadline, close procedure) run in this scope: started on
    // demand, interrupted when the scope closes (after the graceful close below has run). Their log
    // lines carry the connection's annotations where they are written (`St.log`), not through a
    // FiberRef set here: annotating costs two FiberRef updates per connection, logged or not.
    const runner = yield* Resource.makeRunner
    const core: St.Core<In, Out> = St.makeCore({
      id,
      framed,
      clock: yield* Effect.clock,
      runner,
      labels,
      settings,
      gate,
      queue,
      onState: hooks?.onState,
      timers: hooks?.timers
    })
    Metrics.connects.unsafeUpdate(1, labels.tags)
    Metrics.connections.unsafeModify(1, labels.stateTags.Active)

    const requestClose: RequestClose = (reason, mode) => St.requestClose(core, reason, mode, startClose)
    const startClose = () => {
      runner.run(procedure(core, requestClose))
    }
    const fail = (reason: DisconnectReason) => requestClose(reason, "abort")
    const wakeWriter = () => kick(core, fail)
    const conn = new ConnectionImpl(core, requestClose, wakeWriter)

    // the reader and the control lane are driven by the transport's callbacks
    framed.unsafeOnReadable(() => pump(core, requestClose))
    framed.control?.unsafeOnPending(() => {
      core.controlPending = true
      wakeWriter()
    })
    pump(core, requestClose) // bytes that arrived before we were listening

    const handle = conn.handle
    internals.set(conn, { transport: framed.transport, handle: handle as unknown as Connection.Handle<never, never> })
    if (hooks?.onOpen !== undefined) yield* hooks.onOpen(handle)
    // attachments (watchdogs) start now; their fibers are interrupted only after the close below has run
    const watchdogs = options?.watchdogs
    if (watchdogs !== undefined) for (const attach of watchdogs) yield* attach(handle)

    // closing the scope is a graceful close (added last, so it runs before the fibers are interrupted)
    yield* Resource.addFinalizer(closeWith(core, requestClose, "graceful", scopeClosed))
    yield* St.log(core, LogLevel.Debug, () => "connection open")
    return conn
  })

/** @internal */
export const runForEachChunk = <In, E, R>(
  conn: Connection.Connection<In, any>,
  f: (frames: Chunk.Chunk<In>) => Effect.Effect<unknown, E, R>
): Effect.Effect<void, E, R> => {
  const loop: Effect.Effect<void, E, R> = Effect.flatMap(
    conn.read,
    (next) => Option.isNone(next) ? Effect.void : Effect.zipRight(f(next.value), loop)
  )
  return loop
}

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
  Effect.flatMap(
    Transport.connectTcp(options).pipe(
      // the span covers the connect, not the connection: made inside it, the connection's fibers would keep
      // it (and its attributes) as their parent for the connection's life
      Effect.withSpan("tether.connect", {
        attributes: { "tether.transport": "tcp", "net.peer.name": options.host ?? "127.0.0.1", "net.peer.port": options.port },
        captureStackTrace: false // no `new Error()` per connect
      })
    ),
    (t) => make(t, options)
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
  return Effect.flatMap(
    Transport.connectTls(tlsOptions).pipe(
      Effect.withSpan("tether.connect", {
        attributes: { "tether.transport": "tls", "net.peer.name": options.host ?? "127.0.0.1", "net.peer.port": options.port },
        captureStackTrace: false // see connectTcp
      })
    ),
    (t) => make(t, options)
  )
}

/** @internal */
export const layerTcp = (
  options: Parameters<typeof connectTcp>[0]
): Layer.Layer<Connection.Connection, Transport.TransportError> => Layer.scoped(ConnectionTag, connectTcp(options))

