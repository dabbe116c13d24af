/**
 * The close procedure, run once, from the first close request: gate, bounded drain, FIN,
 * bounded linger for the peer's EOF, destroy, outcome. It runs uninterruptibly.
 *
 * Each bounded wait is one wake-up, not a race: the events that can end it (the writer stopping,
 * the peer's EOF, an abort request) and its deadline all call `core.closeWake`, which re-checks
 * what the wait is for. The deadline is one interruptible `Clock.sleep` in a child fiber (so
 * TestClock drives it), cancelled as soon as the wait ends. A close costs the procedure's fiber
 * and one timer fiber per bounded wait: no `raceFirst` / `Effect.timeout` fiber pairs, no
 * `inheritAll`, no interruption causes to build.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as LogLevel from "effect/LogLevel"
import type * as Tracer from "effect/Tracer"
import type * as Connection from "../../Connection.js"
import * as DR from "../../DisconnectReason.js"
import * as Metrics from "../../Metrics.js"
import { Encoded } from "./models.js"
import { endInbound, pump, type RequestClose } from "./reader.js"
import type { Core, Outbound } from "./state.js"
import { enter, log } from "./state.js"
import { busy } from "./writer.js"

/** How a bounded wait ended. */
type Woken = "ready" | "aborted" | "expired"

const noop = () => {}

/**
 * Runs `fire` once `timeout` has passed on the connection's Clock, unless the returned cancel
 * runs first: an entry in the shared timers when the connection has them (a listener's sessions:
 * no fiber per close), else one interruptible sleep in a child fiber of the close procedure
 * (interrupted at once by the cancel; the procedure's end would interrupt it anyway). An infinite
 * bound arms nothing.
 */
const alarm = <In, Out>(core: Core<In, Out>, timeout: Duration.Duration, fire: () => void): Effect.Effect<() => void> => {
  if (!Duration.isFinite(timeout)) return Effect.succeed(noop)
  const timers = core.timers
  if (timers !== undefined) return Effect.sync(() => timers.schedule(Duration.toMillis(timeout), fire))
  let cancelled = false
  const ring = Effect.sync(() => {
    if (!cancelled) fire()
  })
  return Effect.map(Effect.fork(Effect.interruptible(Effect.zipRight(core.clock.sleep(timeout), ring))), (fiber) => () => {
    if (cancelled) return
    cancelled = true
    fiber.unsafeInterruptAsFork(FiberId.none)
  })
}

/**
 * Suspends until `check` answers: it runs now and on every `core.closeWake` (abort request, EOF,
 * writer stop, deadline). Not interruptible: every wait it is used for is bounded by an alarm.
 */
const wakeOn = <In, Out>(core: Core<In, Out>, check: () => Woken | undefined): Effect.Effect<Woken> =>
  Effect.suspend(() => {
    const now = check()
    if (now !== undefined) return Effect.succeed(now)
    return Effect.async<Woken>((resume) => {
      const wake = () => {
        const r = check()
        if (r === undefined) return
        core.closeWake = undefined
        resume(Effect.succeed(r))
      }
      core.closeWake = wake
    })
  })

const levelOf = (severity: "debug" | "info" | "warning" | "error"): LogLevel.LogLevel =>
  severity === "debug"
    ? LogLevel.Debug
    : severity === "info"
    ? LogLevel.Info
    : severity === "warning"
    ? LogLevel.Warning
    : LogLevel.Error

const payloadOf = <Out>(o: Outbound<Out>): Out => (o instanceof Encoded ? (o as Encoded<Out>).payload : o as Out)

/** @internal */
export const procedure = <In, Out>(core: Core<In, Out>, requestClose: RequestClose): Effect.Effect<void> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const { mode, reason } = core.closeRequest!
      const settings = core.settings
      const tags = core.labels.tags
      const requestedAt = core.clock.unsafeCurrentTimeMillis()
      core.gate.unsafeClose(reason) // refuse new sends; waiting senders fail
      pump(core, requestClose) // a stalled reader discards from now on (the EOF wait must not block)
      yield* log(core, LogLevel.Debug, () => `closing (${mode}): ${DR.describe(reason)}`)
      let drained = false
      let finSent = false
      let lingerExpired = false

      // the span is not made the parent of what runs inside (no context change per close): only the two
      // warnings below are logged under it
      const graceful = (span: Tracer.Span) => Effect.gen(function*() {
        // The graceful part starts on the next turn of the scheduler, not inside the request: a caller
        // may still act right after its synchronous request (the WebSocket heartbeat puts its Close 1011
        // on the control lane then; the drain must see it, and the FIN must not go out first).
        yield* Effect.yieldNow()
        if (core.aborted) return
        yield* enter(core, "Draining")
        const drainStart = core.clock.unsafeCurrentTimeMillis()
        // nothing to drain (no writer, nothing queued): no wait, no timer
        if (busy(core)) {
          let expired = false
          const cancel = yield* alarm(core, settings.drainTimeout, () => {
            expired = true
            core.closeWake?.()
          })
          const woken = yield* wakeOn(core, () =>
            core.aborted ? "aborted" : core.writer === undefined ? "ready" : expired ? "expired" : undefined
          )
          cancel()
          if (woken === "aborted") return
          Metrics.drainDuration.unsafeUpdate((core.clock.unsafeCurrentTimeMillis() - drainStart) / 1000, tags)
          if (woken === "expired") {
            yield* log(core, LogLevel.Warning, () =>
              `drain timeout after ${Duration.format(settings.drainTimeout)}: ${
                core.queue.size() + (core.inFlight?.length ?? 0)
              } frames not written`).pipe(Effect.withParentSpan(span))
            return
          }
        } else {
          Metrics.drainDuration.unsafeUpdate((core.clock.unsafeCurrentTimeMillis() - drainStart) / 1000, tags)
        }
        // the writer failed (write error or deadline): no point in a FIN
        if (core.aborted) return
        drained = core.queue.size() === 0 && core.inFlight === undefined
        yield* enter(core, "Closing")
        // the linger: our FIN, then the peer's EOF, both within lingerTimeout
        let ended = undefined as "aborted" | "expired" | undefined
        const cancel = yield* alarm(core, settings.lingerTimeout, () => {
          if (ended === undefined) ended = "expired"
          core.closeWake?.()
        })
        // The FIN is the transport's own effect (it may wait for its write side to flush): an abort or
        // the deadline during it interrupts this fiber's FIN (only there is it interruptible; the rest of
        // the procedure is not, so it still destroys and reports).
        const interruptFin = yield* Effect.withFiberRuntime<() => void>((fiber) =>
          Effect.succeed(() => fiber.unsafeInterruptAsFork(FiberId.none))
        )
        core.closeWake = () => {
          if (core.aborted && ended === undefined) ended = "aborted"
          if (ended === undefined) return
          core.closeWake = undefined
          interruptFin()
        }
        const fin = yield* Effect.exit(restore(core.framed.shutdownWrite))
        if (core.closeWake !== undefined) core.closeWake = undefined
        let woken: Woken
        if (Exit.isSuccess(fin)) {
          finSent = true
          woken = yield* wakeOn(core, () =>
            core.aborted ? "aborted" : core.eofSeen ? "ready" : ended === "expired" ? "expired" : undefined
          )
        } else {
          // interrupted (abort, deadline), or the socket is already gone: nothing to wait for
          woken = ended ?? "ready"
        }
        cancel()
        if (woken === "expired") {
          lingerExpired = true
          yield* log(core, LogLevel.Warning, () =>
            `linger expired after ${Duration.format(settings.lingerTimeout)}: peer never sent EOF`
          ).pipe(Effect.withParentSpan(span))
        }
      })
      if (mode === "graceful" && !core.aborted) {
        // no stack trace: capturing one costs a `new Error()` per close, paid by every session at shutdown
        yield* Effect.useSpan("tether.close.graceful", {
          attributes: { "tether.connection": core.id },
          captureStackTrace: false
        }, graceful)
      }
      // destroy: nothing below can block
      core.writerStopped = true
      // (a direct writer has no fiber: it sees `writerStopped` at its next callback and does nothing more)
      if (core.writer !== undefined && core.writer !== "direct") yield* Fiber.interrupt(core.writer)
      core.writer = undefined
      if (core.deadline !== undefined) yield* Fiber.interrupt(core.deadline)
      core.deadline = undefined
      // The batch in flight, split at what the kernel accepted (read by the transport right before
      // its destroy): frames it took in full were written, a frame it took in part is on the wire
      // truncated (`outcome.truncated`), the others never reached it and are handed back.
      const inFlight = core.inFlight
      yield* core.framed.destroy
      endInbound(core)
      const undelivered: Array<Out> = []
      let truncated: Out | undefined
      if (inFlight !== undefined && inFlight.length > 0) {
        const split = core.framed.unsafeSplit(inFlight)
        for (let i = 0; i < inFlight.length; i++) {
          if (i < split.written) continue
          if (i === split.written && split.truncated) truncated = payloadOf(inFlight[i]!)
          else undelivered.push(payloadOf(inFlight[i]!))
        }
        core.framesOut += split.written
        core.bytesOut += split.bytes
        if (split.written > 0) Metrics.framesOut.unsafeUpdate(split.written, tags)
        if (split.bytes > 0) Metrics.bytesOut.unsafeUpdate(split.bytes, tags)
      }
      core.inFlight = undefined
      for (const o of core.queue.unsafeTakeAll()) undelivered.push(payloadOf(o))
      yield* enter(core, "Closed")
      const outcome: Connection.CloseOutcome<Out> = {
        reason,
        delivered: core.framesOut,
        undelivered,
        truncated,
        drained: drained && undelivered.length === 0 && truncated === undefined,
        finSent,
        peerEof: core.eofSeen,
        lingerExpired,
        discardedInbound: core.discardedInbound,
        closeMillis: core.clock.unsafeCurrentTimeMillis() - requestedAt
      }
      if (core.reportedDepth !== 0) Metrics.sendQueueDepth.unsafeModify(-core.reportedDepth, tags)
      core.reportedDepth = 0
      Metrics.disconnects.unsafeUpdate(1, core.labels.reasonTags(reason._tag))
      Metrics.closeDuration.unsafeUpdate(outcome.closeMillis / 1000, tags)
      yield* log(core, levelOf(DR.severity(reason)), () =>
        `closed: ${DR.describe(reason)}; ${core.framesOut} frames delivered, ${undelivered.length} undelivered${
          truncated === undefined ? "" : ", 1 truncated"
        }`, { reason: reason._tag })
      core.outcome.unsafeDone(outcome)
    })
  )
