/**
 * Watchdogs. Each one runs in the connection's scope (or, for the probes, in a
 * driver shared by many connections), reads the
 * connection's counters from outside the write path (never through the send
 * queue), sleeps on the Effect Clock, and ends the connection with its own
 * DisconnectReason through `unsafeRequestClose`, which cannot block.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Connection from "../Connection.js"
import * as DR from "../DisconnectReason.js"
import * as Metrics from "../Metrics.js"
import type { DisconnectReason } from "../DisconnectReason.js"
import type * as Watchdog from "../Watchdog.js"
import * as cfg from "./config.js"
import { makeProcNetSampler, type Sample, yieldToEventLoop } from "./tcpProbe.js"
import * as Resource from "./resource.js"

/** @internal */
export const defaults = {
  livenessBound: "15 seconds",
  probeInterval: "1 second",
  stallTimeout: "30 seconds",
  testRequestFactor: 1.2
} as const

const millis = (d: Duration.DurationInput) => Math.max(1, Math.round(Duration.toMillis(Duration.decode(d))))

const sleepMillis = (ms: number) => Effect.sleep(Duration.millis(Math.max(0, ms)))

/** Logs a reap once, at warning level, annotated with the connection id, the reason and the figures. */
const logReap = (
  conn: Connection.Handle,
  watchdog: string,
  reason: DisconnectReason,
  figures: Record<string, unknown>
) =>
  Effect.zipRight(
    Effect.sync(() =>
      Metrics.reaps.unsafeUpdate(1, [MetricLabel.make("reason", reason._tag), MetricLabel.make("watchdog", watchdog)])
    ),
    Effect.logWarning(`${watchdog}: reaping connection ${conn.id}: ${DR.describe(reason)}`).pipe(
      Effect.annotateLogs({ connection: conn.id, watchdog, reason: reason._tag, ...figures })
    )
  )

/** Ends the connection (the first close request wins; an abort still cuts a graceful close short). */
const reap = (
  conn: Connection.Handle,
  watchdog: string,
  reason: DisconnectReason,
  mode: "graceful" | "abort",
  figures: Record<string, unknown>
) =>
  Effect.zipRight(
    logReap(conn, watchdog, reason, figures),
    Effect.sync(() => conn.unsafeRequestClose(reason, mode))
  )

const isActive = (conn: Connection.Handle) => conn.unsafeStats().state === "Active"

/**
 * Runs user hooks in a child fiber so a hook that blocks (a `send` behind a
 * wedged writer) never blocks the watchdog; a firing is skipped while the
 * previous hook is still running.
 */
const makeHookRunner = (conn: Connection.Handle, name: string) => {
  let running: Fiber.RuntimeFiber<void> | undefined
  return (hook: Effect.Effect<void, unknown>) =>
    Effect.suspend(() => {
      if (running !== undefined && running.unsafePoll() === null) {
        return Effect.logDebug(`${name}: previous hook still running; firing skipped`).pipe(
          Effect.annotateLogs({ connection: conn.id })
        )
      }
      return Effect.map(
        Effect.fork(
          Effect.catchAllCause(hook, (cause) =>
            Effect.logDebug(`${name}: hook failed`, cause).pipe(Effect.annotateLogs({ connection: conn.id })))
        ),
        (fiber) => {
          running = fiber
        }
      )
    })
}

// ---------------------------------------------------------------------------
// idle

/**
 * One idle timer: fires when `activityAt()` has not moved for `timeoutMs`,
 * then again every `timeoutMs` while the idleness lasts (Netty semantics).
 */
const idleLoop = (
  conn: Connection.Handle,
  kind: "read" | "write" | "all",
  timeoutMs: number,
  activityAt: () => number,
  onIdle: Watchdog.IdleOptions["onIdle"],
  run: (hook: Effect.Effect<void, unknown>) => Effect.Effect<void>
): Effect.Effect<void> =>
  Effect.gen(function*() {
    let lastFire = Number.NEGATIVE_INFINITY
    let first = true
    while (true) {
      const now = yield* Clock.currentTimeMillis
      if (!isActive(conn)) return
      const last = activityAt()
      if (last >= lastFire) first = true // activity since the last firing (or at its very millisecond)
      const since = Math.max(last, lastFire)
      const deadline = since + timeoutMs
      if (now < deadline) {
        yield* sleepMillis(deadline - now)
        continue
      }
      const idleFor = Duration.millis(now - last)
      lastFire = now
      if (onIdle === undefined || onIdle === "close") {
        yield* reap(conn, "idle", DR.IdleTimeout({ kind, idleFor }), "graceful", {
          idleKind: kind,
          idleSeconds: (now - last) / 1000
        })
        return
      }
      yield* run(onIdle({ kind, idleFor, first, connection: conn.connection }))
      first = false
    }
  })

/** @internal */
export const idle = (options: Watchdog.IdleOptions): Connection.Attachment => (conn) =>
  Effect.gen(function*() {
    const run = makeHookRunner(conn, "idle")
    const stats = () => conn.unsafeStats()
    const loops: Array<Effect.Effect<void>> = []
    if (options.readIdle !== undefined) {
      loops.push(idleLoop(conn, "read", millis(options.readIdle), () => stats().lastReadAt, options.onIdle, run))
    }
    if (options.writeIdle !== undefined) {
      loops.push(idleLoop(conn, "write", millis(options.writeIdle), () => stats().lastWriteAt, options.onIdle, run))
    }
    if (options.allIdle !== undefined) {
      loops.push(
        idleLoop(conn, "all", millis(options.allIdle), () => {
          const s = stats()
          return Math.max(s.lastReadAt, s.lastWriteAt)
        }, options.onIdle, run)
      )
    }
    for (const loop of loops) yield* Effect.forkScoped(loop)
  })

// ---------------------------------------------------------------------------
// heartbeat

/** @internal */
export const heartbeat = (options: Watchdog.HeartbeatOptions): Connection.Attachment => (conn) =>
  Effect.gen(function*() {
    const intervalMs = millis(options.interval)
    const peerTimeoutMs = Math.max(1, Math.round(intervalMs * (options.testRequestFactor ?? defaults.testRequestFactor)))
    const runHeartbeat = makeHookRunner(conn, "heartbeat")
    const runTestRequest = makeHookRunner(conn, "heartbeat")

    // outbound: a heartbeat whenever `interval` passes without a write (any write resets it)
    const outbound = Effect.gen(function*() {
      let lastSent = Number.NEGATIVE_INFINITY
      while (true) {
        const now = yield* Clock.currentTimeMillis
        if (!isActive(conn)) return
        const deadline = Math.max(conn.unsafeStats().lastWriteAt, lastSent) + intervalMs
        if (now < deadline) {
          yield* sleepMillis(deadline - now)
          continue
        }
        lastSent = now
        yield* runHeartbeat(options.sendHeartbeat(conn.connection))
      }
    })

    // inbound: silence for `peerTimeout` → test request; silence until the next expiry → PeerTimeout
    const inbound = Effect.gen(function*() {
      let pending: { readonly at: number; readonly mark: number } | undefined
      while (true) {
        const now = yield* Clock.currentTimeMillis
        if (!isActive(conn)) return
        const lastRead = conn.unsafeStats().lastReadAt
        if (pending !== undefined && lastRead !== pending.mark) pending = undefined // the peer spoke
        const deadline = (pending === undefined ? lastRead : pending.at) + peerTimeoutMs
        if (now < deadline) {
          yield* sleepMillis(deadline - now)
          continue
        }
        if (pending === undefined) {
          pending = { at: now, mark: lastRead }
          yield* Effect.logDebug(`heartbeat: peer silent for ${now - lastRead} ms; sending a test request`).pipe(
            Effect.annotateLogs({ connection: conn.id })
          )
          yield* runTestRequest(options.sendTestRequest(conn.connection))
          continue
        }
        const silentFor = now - lastRead
        yield* reap(conn, "heartbeat", DR.PeerTimeout({ silentFor: Duration.millis(silentFor) }), "graceful", {
          silentSeconds: silentFor / 1000,
          testRequestSecondsAgo: (now - pending.at) / 1000
        })
        return
      }
    })
    yield* Effect.forkScoped(outbound)
    yield* Effect.forkScoped(inbound)
  })

// ---------------------------------------------------------------------------
// liveness

/**
 * No fiber while the connection is Active: a state listener learns when it leaves Active and only
 * then forks the bounded watch, into the connection's scope (a FiberSet made at attach time).
 * @internal
 */
export const liveness = (options?: Watchdog.LivenessOptions): Connection.Attachment => (conn) =>
  Effect.gen(function*() {
    const boundMs = millis(options?.bound ?? defaults.livenessBound)
    const fullyClosed = () => conn.unsafeStats().state === "Closed" && conn.unsafeStats().transport.state === "closed"
    const watch = (firstState: Connection.State) =>
      Effect.gen(function*() {
        const leftAt = yield* Clock.currentTimeMillis
        // the bound, or the close procedure finishing, whichever comes first
        const done = yield* Effect.race(
          Effect.as(conn.outcome, true),
          Effect.as(sleepMillis(boundMs), false)
        )
        if (done) {
          // the close procedure finished; make sure it left nothing alive behind
          if (fullyClosed()) return
          const now = yield* Clock.currentTimeMillis
          const rest = leftAt + boundMs - now
          if (rest > 0) yield* sleepMillis(rest)
          if (fullyClosed()) return
        }
        if (fullyClosed()) return
        const now = yield* Clock.currentTimeMillis
        const state = conn.unsafeStats().state
        const transportState = conn.unsafeStats().transport.state
        const reason = DR.LivenessTimeout({ state, after: Duration.millis(now - leftAt) })
        yield* logReap(conn, "liveness", reason, {
          state,
          leftActiveAs: firstState,
          transportState,
          secondsSinceActive: (now - leftAt) / 1000
        })
        yield* conn.destroy
        conn.unsafeRequestClose(reason, "abort")
        // the abort cuts any wait in the close procedure short: `closed` completes now
        const closed = yield* Effect.timeout(conn.outcome, Duration.millis(boundMs)).pipe(Effect.option)
        if (Option.isNone(closed)) {
          yield* Effect.logError(`liveness: connection ${conn.id} still not closed ${boundMs} ms after being destroyed`)
            .pipe(Effect.annotateLogs({ connection: conn.id, watchdog: "liveness" }))
        }
      })
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    let started = false
    let off: (() => void) | undefined
    const start = (state: Connection.State) => {
      if (started) return
      started = true
      off?.()
      run(watch(state))
    }
    off = conn.unsafeOnState((s) => {
      if (s !== "Active") start(s)
    })
    // a connection that left Active before we were listening (the listener above cannot have seen it)
    if (conn.unsafeState() !== "Active") start(conn.unsafeState())
    // the listener goes with the connection's scope (the FiberSet interrupts a watch under way)
    yield* Resource.addFinalizer(Effect.sync(() => off?.()))
  })

// ---------------------------------------------------------------------------
// send-stall and peer-gone probe

/** @internal */
export interface ProbeService {
  readonly sample: (
    target: Watchdog.ProbeTarget,
    notBefore: number
  ) => Effect.Effect<Sample>
  readonly unsafeCanSkip?: ((target: Watchdog.ProbeTarget) => boolean) | undefined
}

/** @internal */
export interface ProbeConfig {
  readonly probeInterval: Duration.DurationInput
  readonly stallTimeout: Duration.DurationInput
  readonly stall: boolean
  readonly peerGone: boolean
}

/** Node's view: whether the socket errored or was destroyed behind the connection's back. */
const socketFailure = (stats: Connection.Stats): string | undefined => {
  const socket = stats.transport.socket
  if (socket !== undefined) {
    const errored = (socket as { errored?: unknown }).errored
    if (errored !== null && errored !== undefined) {
      const code = typeof errored === "object" && "code" in errored ? String(errored.code) : "error"
      return `socket error ${code}`
    }
  }
  return stats.transport.state === "closed" ? "socket destroyed" : undefined
}

/** What one probe remembers of its connection between ticks. */
interface ProbeMemory {
  maxAcked: number
  /** The kernel listed this socket at least once. */
  rowSeen: boolean
  lastFramesIn: number
  /** Start of the current no-progress period (while bytes are queued). */
  progressAt: number | undefined
}

/** A probe's decision at one tick: nothing, the connection is closed (stop probing), or a reap. */
type Verdict =
  | undefined
  | "closed"
  | {
    readonly watchdog: string
    readonly reason: DisconnectReason
    readonly mode: "graceful" | "abort"
    readonly figures: Record<string, unknown>
  }

/**
 * One probe of one connection at tick `now`, given the sample of that tick: plain code, no
 * effects, shared by the per-connection loop and the {@link makeDriver driver}.
 */
const probeStep = (
  conn: Connection.Handle,
  config: { readonly stall: boolean; readonly peerGone: boolean; readonly stallMs: number },
  m: ProbeMemory,
  sample: Sample,
  now: number
): Verdict => {
  const stats = conn.unsafeStats()
  if (stats.state === "Closed") return "closed"
  // "skipped": the sampler saw no need for kernel figures (nothing in flight, reads flowing): Node's view
  const row = sample === "absent" || sample === "skipped" ? undefined : sample
  const t = stats.transport
  // a connected socket without a row: the kernel dropped the connection (reset, timeout). The sampler
  // says so itself ("absent": no row, from the first probe on), or a sampler that only gives rows
  // stops listing a socket it listed before. A socket paused by backpressure sees the peer's RST only
  // here: Node does not read it, so neither an error nor an EOF reaches the transport.
  const vanished = t.state !== "closed" && (sample === "absent" || (sample === undefined && m.rowSeen))
  if (row !== undefined) m.rowSeen = true

  if (config.peerGone && stats.state === "Active") {
    const failure = socketFailure(stats)
    const gone = failure ??
      (row !== undefined && row.state !== "ESTABLISHED" ? row.state : undefined) ??
      (vanished ? "CLOSE" : undefined) ??
      (t.state === "half-closed-remote" ? "CLOSE_WAIT" : undefined) // Node saw EOF nobody has read
    // after a clean FIN, frames still being delivered to a consumer will reach the EOF by themselves:
    // only a connection whose inbound side stands still (nobody reads) is reaped
    const delivering = gone === "CLOSE_WAIT" && stats.framesIn !== m.lastFramesIn
    m.lastFramesIn = stats.framesIn
    if (gone !== undefined && !delivering) {
      // CLOSE_WAIT: the peer sent FIN cleanly, so our side can still drain and FIN; anything else is dead
      return {
        watchdog: "peer-gone",
        reason: DR.PeerGone({ state: gone }),
        mode: gone === "CLOSE_WAIT" ? "graceful" : "abort",
        // what each side said: the kernel's row (or that it had none) and Node's error or EOF
        figures: {
          tcpState: row?.state ?? (vanished ? "no row" : "unknown"),
          nodeState: failure ?? t.state,
          queuedBytes: t.queuedBytes + (row?.txQueue ?? 0),
          retransmits: row?.retransmits ?? 0
        }
      }
    }
  }

  if (!config.stall || (stats.state !== "Active" && stats.state !== "Draining")) return undefined
  // queued = user space (Node's buffer) + kernel send queue; acked = handed to kernel − kernel queue,
  // with the handed figure of the row's own moment: one taken *now*, after an asynchronous table
  // read during which the socket wrote more, is ahead of the row, and so would be `acked` — a
  // maxAcked set that high makes the true figure look stuck for seconds (a slow reader reaped)
  const userQueued = t.queuedBytes
  const kernelQueued = row?.txQueue ?? 0
  const queued = userQueued + kernelQueued
  const acked = row === undefined
    ? t.bytesHandedToKernel
    : Math.min(row.handedBefore ?? t.bytesHandedToKernel, t.bytesHandedToKernel) - row.txQueue
  const progressed = acked > m.maxAcked
  if (progressed) m.maxAcked = acked
  if (queued === 0 || progressed || m.progressAt === undefined) {
    m.progressAt = queued === 0 ? undefined : now
    return undefined
  }
  const stalledMs = now - m.progressAt
  if (stalledMs < config.stallMs) return undefined
  return {
    watchdog: "send-stall",
    reason: DR.SendStalled({ queuedBytes: queued, stalledFor: Duration.millis(stalledMs) }),
    mode: "abort",
    figures: {
      queuedBytes: queued,
      userQueuedBytes: userQueued,
      kernelQueuedBytes: kernelQueued,
      sendQueueFrames: stats.queueDepth,
      secondsWithoutProgress: stalledMs / 1000,
      ackedBytes: acked,
      tcpState: row?.state ?? "unknown",
      retransmits: row?.retransmits ?? 0,
      kernelTimer: row?.timer ?? 0,
      source: row === undefined ? "node" : "proc-net-tcp"
    }
  }
}

const newMemory = (conn: Connection.Handle): ProbeMemory => ({
  maxAcked: -1,
  rowSeen: false,
  lastFramesIn: conn.unsafeStats().framesIn,
  progressAt: undefined
})

const targetOf = (conn: Connection.Handle): Watchdog.ProbeTarget => ({ stats: () => conn.unsafeStats().transport })

/**
 * The probe as a fiber of its own connection: what runs when no {@link makeDriver driver} is in
 * the context (one wake-up per connection and tick).
 * @internal
 */
export const probe = (config: ProbeConfig, sampler: ProbeService): Connection.Attachment => (conn) =>
  Effect.gen(function*() {
    const intervalMs = millis(config.probeInterval)
    const step = { stall: config.stall, peerGone: config.peerGone, stallMs: millis(config.stallTimeout) }
    const target = targetOf(conn)
    const loop = Effect.gen(function*() {
      const m = newMemory(conn)
      while (true) {
        const before = yield* Clock.currentTimeMillis
        // sleep to the next tick boundary: every connection with this interval samples in the same tick;
        // durations are measured in tick times, so wake-up jitter cannot stretch or shrink them
        const now = before - (before % intervalMs) + intervalMs
        yield* sleepMillis(now - before)
        if (conn.unsafeState() === "Closed") return
        const sample = yield* sampler.sample(target, now)
        const verdict = probeStep(conn, step, m, sample, now)
        if (verdict === undefined) continue
        if (verdict !== "closed") yield* reap(conn, verdict.watchdog, verdict.reason, verdict.mode, verdict.figures)
        return
      }
    })
    yield* Effect.forkScoped(loop)
  })

// ---------------------------------------------------------------------------
// the driver: one fiber per probe interval for every registered connection

/** One registered probe. */
interface Entry {
  readonly conn: Connection.Handle
  readonly target: Watchdog.ProbeTarget
  readonly sampler: ProbeService
  readonly step: { readonly stall: boolean; readonly peerGone: boolean; readonly stallMs: number }
  /** Clock millis at registration: the first tick that probes it is the first one after. */
  readonly since: number
  readonly memory: ProbeMemory
  /** Position in its group's array of walked entries; -1 while parked or once unregistered. */
  index: number
  /** Parked at rest: out of the walk until the connection's next activity (the cancel of that wake-up). */
  unpark: (() => void) | undefined
  /** Its scope closed (or the connection closed and was settled): never walked or parked again. */
  done: boolean
}

/** The probes of one interval, in an array with swap-remove (O(1) register and unregister). */
interface Group {
  readonly intervalMs: number
  readonly entries: Array<Entry>
}

/** @internal */
export interface DriverStats {
  readonly registered: number
  /** Registered connections parked at rest: not walked by any tick until their next activity. */
  readonly parked: number
  readonly ticks: number
  readonly sampled: number
  readonly skipped: number
}

/** @internal */
export interface DriverImpl {
  readonly register: (
    conn: Connection.Handle,
    config: ProbeConfig,
    sampler: ProbeService
  ) => Effect.Effect<void, never, Scope.Scope>
  readonly unsafeStats: () => DriverStats
}

/** Probes run per synchronous slice of a tick's walk: about a microsecond each, so a slice stays near a millisecond. */
const entriesPerSlice = 1000

const removeEntry = (group: Group, e: Entry) => {
  const i = e.index
  if (i < 0) return
  const last = group.entries.pop()!
  if (last !== e) {
    group.entries[i] = last
    last.index = i
  }
  e.index = -1
}

/**
 * The watchdog driver: every send-stall / peer-gone probe registered with it is run by one fiber
 * per probe interval (one with the defaults), forked in the driver's scope with the driver's
 * context. Each tick walks the registered connections in plain code; a connection the sampler can
 * answer without kernel figures (`unsafeCanSkip`: nothing queued or unacknowledged, reader
 * flowing, last row ESTABLISHED) is probed on Node's view at once, and only the others are sampled,
 * so a tick where none needs kernel figures reads no table. The walk goes over a snapshot of the
 * group in slices of {@link entriesPerSlice} with a turn of the event loop between them, so no
 * synchronous stretch grows with the number of connections. Closed connections and unregistered
 * ones (their scope closed) leave the group; closing ones are passed over.
 * @internal
 */
export const makeDriver: Effect.Effect<DriverImpl, never, Scope.Scope> = Effect.gen(function*() {
  const groups = new Map<number, Group>()
  const run = yield* FiberSet.makeRuntime<never, void, never>()
  let registered = 0
  let parked = 0
  let ticks = 0
  let sampled = 0
  let skippedCount = 0

  const finish = (group: Group, e: Entry) => {
    if (e.done) return
    e.done = true
    registered--
    if (e.unpark !== undefined) {
      e.unpark()
      e.unpark = undefined
      parked--
    } else removeEntry(group, e)
  }

  const settle = (group: Group, e: Entry, verdict: Verdict, reaps: Array<Effect.Effect<void>>) => {
    if (verdict === undefined) return
    finish(group, e)
    if (verdict !== "closed") reaps.push(reap(e.conn, verdict.watchdog, verdict.reason, verdict.mode, verdict.figures))
  }

  // A connection at rest — the probe needed no kernel figures: nothing queued or unacknowledged, reader flowing,
  // ESTABLISHED — stays at rest until something happens on it, and everything that can change that verdict is
  // activity: a write, bytes or an EOF or an error reaching the reader (which is also what pauses a socket), a
  // state change. So it leaves the walk, and its next activity puts it back (synchronously, an array push).
  const park = (group: Group, e: Entry) => {
    removeEntry(group, e)
    parked++
    // the wake-up is called on a later move of the activity counter, never during this registration
    e.unpark = e.conn.unsafeOnActivity(() => {
      if (e.done || e.unpark === undefined) return
      e.unpark = undefined
      parked--
      e.index = group.entries.length
      group.entries.push(e)
    })
  }

  // the walk of one tick, over a snapshot of the group (registrations and removals during a slice
  // boundary cannot make it skip anyone), in slices with a turn of the event loop between them
  const tick = (group: Group, now: number): Effect.Effect<void> =>
    Effect.gen(function*() {
      ticks++
      const snapshot = group.entries.slice()
      const needy: Array<Entry> = []
      const reaps: Array<Effect.Effect<void>> = []
      for (let from = 0; from < snapshot.length; from += entriesPerSlice) {
        if (from > 0) yield* yieldToEventLoop
        const to = Math.min(snapshot.length, from + entriesPerSlice)
        for (let i = from; i < to; i++) {
          const e = snapshot[i]!
          if (e.done || e.index < 0) continue // unregistered or parked meanwhile
          const state = e.conn.unsafeState()
          if (state === "Closed") {
            finish(group, e)
            continue
          }
          if (e.since >= now) continue // registered at or after this tick's boundary: from the next tick on
          if (state === "Closing") continue // neither probe acts on a closing connection
          if (e.sampler.unsafeCanSkip !== undefined && e.sampler.unsafeCanSkip(e.target)) {
            skippedCount++
            const verdict = probeStep(e.conn, e.step, e.memory, "skipped", now)
            if (verdict !== undefined) settle(group, e, verdict, reaps)
            else if (state === "Active") park(group, e)
          } else {
            needy.push(e)
          }
        }
      }
      // one table read serves every sample of the tick (`notBefore` = the tick)
      for (const e of needy) {
        if (e.done) continue
        sampled++
        const sample = yield* e.sampler.sample(e.target, now)
        if (e.done) continue // unregistered while the table was read
        settle(group, e, probeStep(e.conn, e.step, e.memory, sample, now), reaps)
      }
      for (const r of reaps) yield* r
    })

  const loop = (group: Group): Effect.Effect<void> =>
    Effect.gen(function*() {
      const intervalMs = group.intervalMs
      while (true) {
        const before = yield* Clock.currentTimeMillis
        // tick boundaries, as the per-connection probe: durations are measured in tick times
        const now = before - (before % intervalMs) + intervalMs
        yield* sleepMillis(now - before)
        yield* tick(group, now)
      }
    })

  const register = (conn: Connection.Handle, config: ProbeConfig, sampler: ProbeService) =>
    Effect.gen(function*() {
      const intervalMs = millis(config.probeInterval)
      let group = groups.get(intervalMs)
      if (group === undefined) {
        const g: Group = { intervalMs, entries: [] }
        group = g
        groups.set(intervalMs, g)
        run(loop(g))
      }
      const g = group
      const e: Entry = {
        conn,
        target: targetOf(conn),
        sampler,
        step: { stall: config.stall, peerGone: config.peerGone, stallMs: millis(config.stallTimeout) },
        since: yield* Clock.currentTimeMillis,
        memory: newMemory(conn),
        index: g.entries.length,
        unpark: undefined,
        done: false
      }
      g.entries.push(e)
      registered++
      yield* Resource.addFinalizer(Effect.sync(() => finish(g, e)))
    })

  return {
    register,
    unsafeStats: () => ({ registered, parked, ticks, sampled, skipped: skippedCount })
  }
})

// ---------------------------------------------------------------------------
// services and the probe attachment (re-exported by the public Watchdog module)

/** @internal */
export class TcpProbe extends Context.Reference<TcpProbe>()("tether/Watchdog/TcpProbe", {
  defaultValue: (): Watchdog.TcpProbeService => makeProcNetSampler()
}) {}

/** @internal */
export class Driver extends Context.Tag("tether/Watchdog/Driver")<Driver, Watchdog.DriverService>() {}

/** @internal */
export const makeDriverService: Effect.Effect<Watchdog.DriverService, never, Scope.Scope> = Effect.map(
  makeDriver,
  (d): Watchdog.DriverService => ({
    register: (handle, p) => d.register(handle, p, p.sampler),
    unsafeStats: d.unsafeStats
  })
)

/** @internal */
export const sendStallConfig: Config.Config<{
  readonly stallTimeout: Duration.Duration
  readonly probeInterval: Duration.Duration
}> = Config.all({
  stallTimeout: cfg.duration("TETHER_STALL_TIMEOUT").pipe(
    Config.withDefault(Duration.decode(defaults.stallTimeout))
  ),
  probeInterval: cfg.duration("TETHER_PROBE_INTERVAL").pipe(
    Config.withDefault(Duration.decode(defaults.probeInterval))
  )
})

/** @internal */
export const probeAttachment = (
  options: Watchdog.SendStallOptions | undefined,
  stall: boolean,
  peerGone: boolean
): Connection.Attachment =>
(conn) =>
  Effect.gen(function*() {
    const fromEnv = options?.stallTimeout !== undefined && options.probeInterval !== undefined
      ? undefined
      : yield* sendStallConfig.pipe(
        Effect.tapError((e) => Effect.logWarning(`watchdog: invalid probe settings, using defaults: ${e}`)),
        Effect.orElseSucceed(() => ({
          stallTimeout: Duration.decode(defaults.stallTimeout),
          probeInterval: Duration.decode(defaults.probeInterval)
        }))
      )
    const sampler = yield* TcpProbe
    const config = {
      probeInterval: options?.probeInterval ?? fromEnv!.probeInterval,
      stallTimeout: options?.stallTimeout ?? fromEnv!.stallTimeout,
      stall,
      peerGone
    }
    const driver = yield* Effect.serviceOption(Driver)
    if (Option.isSome(driver)) yield* driver.value.register(conn, { ...config, sampler })
    else yield* probe(config, sampler)(conn)
  })
