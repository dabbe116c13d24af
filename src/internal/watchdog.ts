/**
 * Watchdog fibers. Each one runs in the connection's scope, reads the
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
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as Connection from "../Connection.js"
import * as DR from "../DisconnectReason.js"
import * as Metrics from "../Metrics.js"
import type { DisconnectReason } from "../DisconnectReason.js"
import type * as Watchdog from "../Watchdog.js"
import * as cfg from "./config.js"
import type { Sample } from "./tcpProbe.js"
import * as tcpProbe from "./tcpProbe.js"

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

/** @internal */
export const liveness = (options?: Watchdog.LivenessOptions): Connection.Attachment => (conn) =>
  Effect.gen(function*() {
    const boundMs = millis(options?.bound ?? defaults.livenessBound)
    const fullyClosed = () => conn.unsafeStats().state === "Closed" && conn.unsafeStats().transport.state === "closed"
    const watch = Effect.gen(function*() {
      // wait for the connection to leave Active (abort goes straight to Closed)
      const left = yield* Stream.runHead(Stream.filter(conn.stateChanges, (s) => s !== "Active"))
      const leftAt = yield* Clock.currentTimeMillis
      const firstState = Option.getOrElse(left, () => conn.unsafeStats().state)
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
    yield* Effect.forkScoped(watch)
  })

// ---------------------------------------------------------------------------
// send-stall and peer-gone probe

/** @internal */
export interface ProbeService {
  readonly sample: (
    target: Watchdog.ProbeTarget,
    notBefore: number
  ) => Effect.Effect<Sample>
}

/** @internal */
export interface ProbeConfig {
  readonly probeInterval: Duration.DurationInput
  readonly stallTimeout: Duration.DurationInput
  readonly stall: boolean
  readonly peerGone: boolean
}

/** Node's view: whether the socket errored or was destroyed behind the connection's back. */
const socketFailure = (conn: Connection.Handle): string | undefined => {
  const socket = conn.unsafeStats().transport.socket
  if (socket !== undefined) {
    const errored = (socket as { errored?: unknown }).errored
    if (errored !== null && errored !== undefined) {
      const code = typeof errored === "object" && "code" in errored ? String(errored.code) : "error"
      return `socket error ${code}`
    }
  }
  return conn.unsafeStats().transport.state === "closed" ? "socket destroyed" : undefined
}

/** @internal */
export const probe = (config: ProbeConfig, sampler: ProbeService): Connection.Attachment => (conn) =>
  Effect.gen(function*() {
    const intervalMs = millis(config.probeInterval)
    const stallMs = millis(config.stallTimeout)
    const target: Watchdog.ProbeTarget = { stats: () => conn.unsafeStats().transport }
    const loop = Effect.gen(function*() {
      let maxAcked = -1
      let rowSeen = false // the kernel listed this socket at least once
      let lastFramesIn = conn.unsafeStats().framesIn
      let progressAt: number | undefined // start of the current no-progress period (while bytes are queued)
      while (true) {
        const before = yield* Clock.currentTimeMillis
        // sleep to the next tick boundary: every connection with this interval samples in the same tick;
        // durations are measured in tick times, so wake-up jitter cannot stretch or shrink them
        const now = before - (before % intervalMs) + intervalMs
        yield* sleepMillis(now - before)
        const stats = conn.unsafeStats()
        if (stats.state === "Closed") return
        const sample = yield* sampler.sample(target, now)
        // "skipped": the sampler saw no need for kernel figures (nothing in flight, reads flowing): Node's view
        const row = sample === "absent" || sample === "skipped" ? undefined : sample
        const t = conn.unsafeStats().transport
        // a connected socket without a row: the kernel dropped the connection (reset, timeout). The sampler
        // says so itself ("absent": no row, from the first probe on), or a sampler that only gives rows
        // stops listing a socket it listed before. A socket paused by backpressure sees the peer's RST only
        // here: Node does not read it, so neither an error nor an EOF reaches the transport.
        const vanished = t.state !== "closed" &&
          (sample === "absent" || (sample === undefined && rowSeen))
        if (row !== undefined) rowSeen = true

        if (config.peerGone && stats.state === "Active") {
          const failure = socketFailure(conn)
          const gone = failure ??
            (row !== undefined && row.state !== "ESTABLISHED" ? row.state : undefined) ??
            (vanished ? "CLOSE" : undefined) ??
            (t.state === "half-closed-remote" ? "CLOSE_WAIT" : undefined) // Node saw EOF nobody has read
          // after a clean FIN, frames still being delivered to a consumer will reach the EOF by themselves:
          // only a connection whose inbound side stands still (nobody reads) is reaped
          const delivering = gone === "CLOSE_WAIT" && stats.framesIn !== lastFramesIn
          lastFramesIn = stats.framesIn
          if (gone !== undefined && !delivering) {
            // CLOSE_WAIT: the peer sent FIN cleanly, so our side can still drain and FIN; anything else is dead
            const mode = gone === "CLOSE_WAIT" ? "graceful" : "abort"
            yield* reap(conn, "peer-gone", DR.PeerGone({ state: gone }), mode, {
              // what each side said: the kernel's row (or that it had none) and Node's error or EOF
              tcpState: row?.state ?? (vanished ? "no row" : "unknown"),
              nodeState: failure ?? t.state,
              queuedBytes: t.queuedBytes + (row?.txQueue ?? 0),
              retransmits: row?.retransmits ?? 0
            })
            return
          }
        }

        if (!config.stall || (stats.state !== "Active" && stats.state !== "Draining")) continue
        // queued = user space (Node's buffer) + kernel send queue; acked = handed to kernel − kernel queue
        const userQueued = t.queuedBytes
        const kernelQueued = row?.txQueue ?? 0
        const queued = userQueued + kernelQueued
        const acked = row === undefined ? t.bytesHandedToKernel : t.bytesHandedToKernel - row.txQueue
        const progressed = acked > maxAcked
        if (progressed) maxAcked = acked
        if (queued === 0 || progressed || progressAt === undefined) {
          progressAt = queued === 0 ? undefined : now
          continue
        }
        const stalledMs = now - progressAt
        if (stalledMs < stallMs) continue
        const reason = DR.SendStalled({ queuedBytes: queued, stalledFor: Duration.millis(stalledMs) })
        yield* reap(conn, "send-stall", reason, "abort", {
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
        })
        return
      }
    })
    yield* Effect.forkScoped(loop)
  })

/** @internal */
export class TcpProbe extends Context.Reference<TcpProbe>()("tether/Watchdog/TcpProbe", {
  defaultValue: (): Watchdog.TcpProbeService => tcpProbe.makeProcNetSampler()
}) {}

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

/** sendStall / peerGone / reaper: the probe settings (explicit, else from Config), the TcpProbe, one probe fiber. @internal */
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
    yield* probe({
      probeInterval: options?.probeInterval ?? fromEnv!.probeInterval,
      stallTimeout: options?.stallTimeout ?? fromEnv!.stallTimeout,
      stall,
      peerGone
    }, sampler)(conn)
  })
