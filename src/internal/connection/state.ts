/**
 * The connection's state record and its transitions. Every other part of the connection
 * (outbox, writer, reader, close procedure) reads and writes this one record; the lifecycle
 * (Active → Draining → Closing → Closed) changes only through `enter`, and a close is asked for
 * only through `requestClose`.
 * @internal
 */
import type * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as LogLevel from "effect/LogLevel"
import type * as Fiber from "effect/Fiber"
import * as MetricLabel from "effect/MetricLabel"
import type * as Scheduler from "effect/Scheduler"
import * as Stream from "effect/Stream"
import type * as Connection from "../../Connection.js"
import type { DisconnectReason } from "../../DisconnectReason.js"
import type * as Framed from "../../Framed.js"
import * as Metrics from "../../Metrics.js"
import type * as StopGate from "../../StopGate.js"
import type { Timers } from "../timers.js"
import type { Encoded } from "./models.js"
import { Once } from "../once.js"

/** @internal */
export type Outbound<Out> = Out | Encoded<Out>

/**
 * The metric label arrays of one label set (role, endpoint), interned: one instance per distinct set
 * for the whole process. Effect caches a metric's hook per label-array *identity* (a WeakMap); an array
 * built per connection misses that cache on every update, and each miss builds a MetricKey (hashing the
 * labels and formatting the description) and looks it up in the global registry.
 * @internal
 */
export interface LabelSet {
  readonly tags: ReadonlyArray<MetricLabel.MetricLabel>
  readonly stateTags: Record<Connection.State, ReadonlyArray<MetricLabel.MetricLabel>>
  readonly reasonTags: (reason: string) => ReadonlyArray<MetricLabel.MetricLabel>
}
const labelSets = new Map<string, LabelSet>()
/** @internal */
export const labelSetOf = (labels: Metrics.Labels | undefined): LabelSet => {
  const tags = Metrics.labelsOf(labels)
  const key = tags.map((l) => `${l.key}\u0000${l.value}`).join("\u0001")
  const known = labelSets.get(key)
  if (known !== undefined) return known
  const byReason = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  const set: LabelSet = {
    tags,
    stateTags: {
      Active: [...tags, MetricLabel.make("state", "Active")],
      Draining: [...tags, MetricLabel.make("state", "Draining")],
      Closing: [...tags, MetricLabel.make("state", "Closing")],
      Closed: [...tags, MetricLabel.make("state", "Closed")]
    },
    reasonTags: (reason) => {
      let t = byReason.get(reason)
      if (t === undefined) {
        t = [...tags, MetricLabel.make("reason", reason)]
        byReason.set(reason, t)
      }
      return t
    }
  }
  labelSets.set(key, set)
  return set
}

/** Settings fixed at open. @internal */
export interface Settings {
  readonly maxBatchFrames: number
  readonly maxBatchBytes: number
  readonly writeTimeout: Duration.Duration
  /** undefined: no write deadline */
  readonly writeTimeoutNanos: bigint | undefined
  readonly drainTimeout: Duration.Duration
  readonly lingerTimeout: Duration.Duration
  readonly inboundCapacity: number
  readonly scheduler: Scheduler.Scheduler
}

/** Runs effects as fibers of the connection (interrupted when its scope closes). @internal */
export interface Runner {
  run<A, E>(
    effect: Effect.Effect<A, E>,
    options?: { readonly scheduler?: Scheduler.Scheduler | undefined; readonly immediate?: boolean | undefined }
  ): Fiber.RuntimeFiber<A, E>
}

/** What a connection's record is made with: fixed for its life. @internal */
export interface CoreFields<In, Out> {
  readonly id: string
  readonly framed: Framed.Framed<In, Out>
  readonly clock: Clock.Clock
  readonly runner: Runner
  readonly labels: LabelSet
  readonly settings: Settings
  readonly gate: StopGate.StopGate<DisconnectReason>
  readonly queue: StopGate.GatedQueue<Outbound<Out>, DisconnectReason>
  readonly onState: ((state: Connection.State) => void) | undefined
  /** Shared timers for the close's bounds (a listener's); undefined: one alarm fiber per bounded wait. */
  readonly timers: Timers | undefined
}

/** The one record of a connection. @internal */
export interface Core<In, Out> extends CoreFields<In, Out> {
  // ---- lifecycle ----
  phase: Connection.State
  closeRequest: { readonly reason: DisconnectReason; readonly mode: "graceful" | "abort" } | undefined
  /** Set by an abort request (or a writer failure): the graceful part is cut short. */
  aborted: boolean
  eofSeen: boolean
  /**
   * The close procedure's one wake-up while it waits (drain, FIN, linger): called on every event
   * that can end its wait (an abort request, the peer's EOF, the writer stopping, its deadline);
   * it re-checks what it waits for. Undefined when nothing waits.
   */
  closeWake: (() => void) | undefined
  readonly outcome: Once<Connection.CloseOutcome<Out>>
  stateListeners: Set<(state: Connection.State) => void> | undefined

  // ---- counters ----
  /** Moves on every read, write start/end and state change (watchdog drivers skip what did not move). */
  activity: number
  /** Called once each, at the next move of `activity` (watchdog drivers' wake-ups for a connection they parked). */
  onActivity: Array<() => void> | undefined
  framesIn: number
  framesOut: number
  bytesOut: number
  lastReadAt: number
  lastWriteAt: number
  discardedInbound: number
  reportedDepth: number

  // ---- writer (runs only while there is work) ----
  /**
   * The writer while it runs: its fiber, or `"direct"` for the callback-driven writer (a seam with
   * `unsafeWrite`: no fiber; its steps run as tasks on the writer's scheduler).
   */
  writer: Fiber.RuntimeFiber<void> | "direct" | undefined
  /** The writer failed (I/O error, deadline): no writer is started any more. */
  writerStopped: boolean
  /** The batch being written, until its write completes. */
  inFlight: ReadonlyArray<Outbound<Out>> | undefined
  /** Clock nanos when the write in progress started (data or control). */
  writeStartedAt: bigint | undefined
  /** Clock nanos when the writer last finished a write. */
  lastWriteEnd: bigint
  deadline: Fiber.RuntimeFiber<void> | undefined
  controlPending: boolean

  // ---- reader (driven by the transport's callbacks) ----
  items: Array<In>
  consumer: (() => void) | undefined
  /** The reader stopped taking from the transport: the consumer is behind (inbound capacity). */
  stalled: boolean
  inboundEnded: boolean
  readerDone: boolean
  pumping: boolean
}

/**
 * Builds the record as one object literal naming every field: V8 gives all records one shared
 * hidden class. (A `{ ...fields, more }` spread would not: on Node 20 each property added after a
 * spread makes a new map, ~120 µs for this record, and the records end up with different shapes.)
 * @internal
 */
export const makeCore = <In, Out>(fields: CoreFields<In, Out>): Core<In, Out> => {
  const now = fields.clock.unsafeCurrentTimeMillis()
  return {
    id: fields.id,
    framed: fields.framed,
    clock: fields.clock,
    runner: fields.runner,
    labels: fields.labels,
    settings: fields.settings,
    gate: fields.gate,
    queue: fields.queue,
    onState: fields.onState,
    timers: fields.timers,
    phase: "Active",
    closeRequest: undefined,
    aborted: false,
    eofSeen: false,
    closeWake: undefined,
    outcome: new Once(),
    stateListeners: undefined,
    activity: 0,
    onActivity: undefined,
    framesIn: 0,
    framesOut: 0,
    bytesOut: 0,
    lastReadAt: now,
    lastWriteAt: now,
    discardedInbound: 0,
    reportedDepth: 0,
    writer: undefined,
    writerStopped: false,
    inFlight: undefined,
    writeStartedAt: undefined,
    lastWriteEnd: fields.clock.unsafeCurrentTimeNanos(),
    deadline: undefined,
    controlPending: false,
    items: [],
    consumer: undefined,
    stalled: false,
    inboundEnded: false,
    readerDone: false,
    pumping: false
  }
}

/**
 * A log line of the connection, annotated with its id and remote address (and `extra`), built only
 * when `level` is enabled: the annotations cost FiberRef updates, so they are added where a line is
 * written rather than to every fiber of every connection.
 * @internal
 */
export const log = <In, Out>(
  core: Core<In, Out>,
  level: LogLevel.LogLevel,
  message: () => string,
  extra?: Record<string, unknown>
): Effect.Effect<void> =>
  Effect.withFiberRuntime<void>((fiber) => {
    if (LogLevel.greaterThan(fiber.getFiberRef(FiberRef.currentMinimumLogLevel), level)) return Effect.void
    const annotations: Record<string, unknown> = { connection: core.id, remote: core.framed.remoteAddress ?? "?" }
    if (extra !== undefined) for (const k in extra) annotations[k] = extra[k]
    return Effect.annotateLogs(Effect.logWithLevel(level, message()), annotations)
  })

/** Moves `activity`, and calls (once) whoever asked to hear of its next move. @internal */
export const touch = <In, Out>(core: Core<In, Out>): void => {
  core.activity++
  const fs = core.onActivity
  if (fs !== undefined) {
    core.onActivity = undefined
    for (let i = 0; i < fs.length; i++) fs[i]!()
  }
}

/** Moves the lifecycle to `phase`: gauge, listeners, the lazily made SubscriptionRef. @internal */
export const enter = <In, Out>(core: Core<In, Out>, phase: Connection.State): Effect.Effect<void> =>
  Effect.suspend(() => {
    const from = core.phase
    if (from === phase) return Effect.void
    if (from !== "Closed") Metrics.connections.unsafeModify(-1, core.labels.stateTags[from])
    if (phase !== "Closed") Metrics.connections.unsafeModify(1, core.labels.stateTags[phase])
    core.phase = phase
    touch(core)
    core.onState?.(phase)
    if (core.stateListeners !== undefined) for (const f of Array.from(core.stateListeners)) f(phase)
    return Effect.void
  })

/** Calls `f` on every state change until the returned function is called. @internal */
export const onState = <In, Out>(core: Core<In, Out>, f: (state: Connection.State) => void): () => void => {
  const listeners = core.stateListeners ?? (core.stateListeners = new Set())
  listeners.add(f)
  return () => {
    listeners.delete(f)
  }
}

/**
 * The current state, then every change; ends after `Closed`. Nothing is kept per connection
 * until someone subscribes (a listener per subscriber).
 * @internal
 */
export const stateChanges = <In, Out>(core: Core<In, Out>): Stream.Stream<Connection.State> =>
  Stream.async<Connection.State>((emit) => {
    void emit.single(core.phase)
    if (core.phase === "Closed") {
      void emit.end()
      return
    }
    const off = onState(core, (s) => {
      void emit.single(s)
      if (s === "Closed") void emit.end()
    })
    return Effect.sync(off)
  })

/**
 * Asks for a close: the first request decides the reason and starts the close procedure
 * (`start`); a later abort cuts a graceful close short. Synchronous: watchdogs and socket
 * callbacks call it.
 * @internal
 */
export const requestClose = <In, Out>(
  core: Core<In, Out>,
  reason: DisconnectReason,
  mode: "graceful" | "abort",
  start: () => void
): void => {
  if (core.closeRequest === undefined) {
    core.closeRequest = { reason, mode }
    if (mode === "abort") core.aborted = true
    start()
    return
  }
  if (mode === "abort" && !core.aborted) {
    core.aborted = true
    core.closeWake?.()
  }
}

/** Marks the peer's EOF. @internal */
export const signalEof = <In, Out>(core: Core<In, Out>): void => {
  core.eofSeen = true
  core.closeWake?.()
}

/** Moves the send-queue gauge to the queue's depth (by deltas). @internal */
export const reportDepth = <In, Out>(core: Core<In, Out>): void => {
  const depth = core.queue.size()
  if (depth !== core.reportedDepth) {
    Metrics.sendQueueDepth.unsafeModify(depth - core.reportedDepth, core.labels.tags)
    core.reportedDepth = depth
  }
}
