/**
 * The single writer: the only code that writes to the framed seam. It runs only while there is
 * work — started by the first frame (or control write) queued after it stopped, it takes batches
 * until the queue is empty and ends — so an idle connection parks no writer. Each write, data or
 * control, has a fresh deadline (`writeTimeout`), enforced by one deadline fiber that lives while
 * writes happen and ends after a quiet `writeTimeout`.
 *
 * Over a seam that writes with callbacks (`unsafeWrite`: TCP, TLS) the writer is no fiber at all:
 * each step — take a batch, hand it to the socket — is a task on the writer's scheduler, started
 * by the send that finds it stopped and by the write callback of the batch before. That is the
 * fiber's own schedule (the same batching, the same fairness budget, the same points a
 * `ControlledScheduler` steps), without a fiber forked per burst of sends or resumed per batch.
 * One exception, for latency: on the fair scheduler, the send that finds the writer stopped takes
 * the first step itself, in place, while the scheduler's budget for the event-loop turn lasts (a
 * request/response does not wait for the scheduler's next run: ~30 µs per message here). Past the
 * budget the step is scheduled as before, so the frames of many sends in one turn (a broadcast, a
 * burst) still gather into one batch per connection.
 * Control writes are effects (a WebSocket's PONGs): the fiber writer runs them, and a direct
 * writer that finds one pending hands over to it.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as DR from "../../DisconnectReason.js"
import * as Metrics from "../../Metrics.js"
import type * as Transport from "../../Transport.js"
import type { Core, Outbound } from "./state.js"
import { unsafeTryNow } from "../scheduler.js"
import { reportDepth, touch } from "./state.js"

/** Called when the writer must end the connection (I/O error, write deadline). @internal */
export type Fail = (reason: DR.DisconnectReason) => void

const writeTimeoutReason = <In, Out>(core: Core<In, Out>) =>
  DR.WriteTimeout({ timeout: core.settings.writeTimeout, queuedBytes: core.framed.stats().queuedBytes })

/** The deadline fiber's loop: sleeps until the deadline of the write in progress, re-reads, ends when quiet. */
const deadlineLoop = <In, Out>(core: Core<In, Out>, timeoutNanos: bigint, fail: Fail): Effect.Effect<void> =>
  Effect.suspend(() => {
    const now = core.clock.unsafeCurrentTimeNanos()
    const started = core.writeStartedAt
    if (started !== undefined) {
      const left = started + timeoutNanos - now
      if (left > 0n) return Effect.zipRight(Effect.sleep(Duration.nanos(left)), deadlineLoop(core, timeoutNanos, fail))
      core.deadline = undefined
      fail(writeTimeoutReason(core))
      return Effect.void
    }
    // no write in progress: stay for one quiet writeTimeout (back-to-back writes reuse this fiber), then end
    const quietUntil = core.lastWriteEnd + timeoutNanos
    if (core.writer === undefined && quietUntil <= now) {
      core.deadline = undefined
      return Effect.void
    }
    const wait = quietUntil > now ? quietUntil - now : timeoutNanos
    return Effect.zipRight(Effect.sleep(Duration.nanos(wait)), deadlineLoop(core, timeoutNanos, fail))
  })

const beginWrite = <In, Out>(core: Core<In, Out>, fail: Fail): void => {
  core.writeStartedAt = core.clock.unsafeCurrentTimeNanos()
  touch(core)
  const t = core.settings.writeTimeoutNanos
  if (t !== undefined && core.deadline === undefined) {
    core.deadline = core.runner.run(deadlineLoop(core, t, fail))
  }
}
const endWrite = <In, Out>(core: Core<In, Out>): bigint => {
  const now = core.clock.unsafeCurrentTimeNanos()
  core.writeStartedAt = undefined
  core.lastWriteEnd = now
  touch(core)
  return now
}

const writeBatch = <In, Out>(core: Core<In, Out>, batch: ReadonlyArray<Outbound<Out>>, fail: Fail) =>
  Effect.suspend(() => {
    core.inFlight = batch
    reportDepth(core)
    beginWrite(core, fail)
    const startedNanos = core.writeStartedAt!
    return Effect.map(core.framed.write(batch), (bytes) => completed(core, batch, bytes, startedNanos))
  })

/** A batch's write completed: all of it is with the kernel. */
const completed = <In, Out>(
  core: Core<In, Out>,
  batch: ReadonlyArray<Outbound<Out>>,
  bytes: number,
  startedNanos: bigint
): void => {
  const nowNanos = endWrite(core)
  core.inFlight = undefined
  core.framesOut += batch.length
  core.bytesOut += bytes
  core.lastWriteAt = Number(nowNanos / 1_000_000n)
  const tags = core.labels.tags
  Metrics.framesOut.unsafeUpdate(batch.length, tags)
  Metrics.bytesOut.unsafeUpdate(bytes, tags)
  Metrics.writeLatency.unsafeUpdate(Number(nowNanos - startedNanos) / 1e9, tags)
}

const writeControl = <In, Out>(
  core: Core<In, Out>,
  pending: ReadonlyArray<Effect.Effect<void, Transport.TransportError>>,
  fail: Fail
): Effect.Effect<void, Transport.TransportError> =>
  Effect.forEach(pending, (w) =>
    Effect.suspend(() => {
      beginWrite(core, fail)
      return Effect.tap(w, () => {
        endWrite(core)
      })
    }), { discard: true })

/** The writer stopped (nothing queued, or failed): clear it and wake a waiting drain. */
const stop = <In, Out>(core: Core<In, Out>): void => {
  core.writer = undefined
  core.closeWake?.()
}

const loop = <In, Out>(core: Core<In, Out>, fail: Fail): Effect.Effect<void, Transport.TransportError> =>
  Effect.suspend(() => {
    if (core.writerStopped) {
      stop(core)
      return Effect.void
    }
    const control = core.controlPending ? core.framed.control?.unsafeTake() : undefined
    core.controlPending = false
    if (control !== undefined && control.length > 0) {
      return Effect.zipRight(writeControl(core, control, fail), loop(core, fail))
    }
    const batch = core.queue.unsafeTakeUpTo(core.settings.maxBatchFrames, core.settings.maxBatchBytes)
    if (batch.length === 0) {
      stop(core)
      return Effect.void
    }
    return Effect.zipRight(writeBatch(core, batch, fail), loop(core, fail))
  })

/** The writer's failure: no writer is started any more, and the connection ends. */
const writerFailed = <In, Out>(core: Core<In, Out>, fail: Fail, e: { readonly message: string; readonly code?: string | undefined }) => {
  core.writeStartedAt = undefined
  core.writerStopped = true
  stop(core)
  fail(DR.IoError({ message: e.message, code: e.code }))
}

const startFiber = <In, Out>(core: Core<In, Out>, fail: Fail): void => {
  const run = loop(core, fail).pipe(
    Effect.catchAllCause((cause) => {
      // interrupted by the close procedure: it accounts for the batch in flight itself
      if (Cause.isInterruptedOnly(cause)) return Effect.void
      const failure = Cause.failureOption(cause)
      return Effect.sync(() =>
        writerFailed(
          core,
          fail,
          Option.isSome(failure) ? failure.value : { message: `write failed: ${defectMessage(Cause.squash(cause))}` }
        )
      )
    })
  )
  // started on the writer's scheduler too, not inside the send (`runFork` would start it there):
  // its first step is a step like the others
  const scheduler = core.settings.scheduler
  core.writer = core.runner.run(Effect.withScheduler(run, scheduler), { scheduler, immediate: false })
}

const defectMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const schedule = <In, Out>(core: Core<In, Out>, fail: Fail): void => {
  core.settings.scheduler.scheduleTask(() => directStep(core, fail), 0)
}

/** One step of the direct writer: the next batch to the socket, or the end of the run. */
const directStep = <In, Out>(core: Core<In, Out>, fail: Fail): void => {
  if (core.writerStopped) return stop(core)
  if (core.controlPending) {
    // a control write is an effect: the fiber writer takes over (it runs the control lane first)
    core.writer = undefined
    return startFiber(core, fail)
  }
  const batch = core.queue.unsafeTakeUpTo(core.settings.maxBatchFrames, core.settings.maxBatchBytes)
  if (batch.length === 0) return stop(core)
  core.inFlight = batch
  reportDepth(core)
  beginWrite(core, fail)
  const startedNanos = core.writeStartedAt!
  try {
    core.framed.unsafeWrite!(batch, (error, bytes) => {
      // the close procedure stopped the writer (it accounts for the batch in flight itself)
      if (core.writerStopped) return
      if (error !== undefined) return writerFailed(core, fail, error)
      completed(core, batch, bytes, startedNanos)
      schedule(core, fail)
    })
  } catch (e) {
    // a codec that throws while encoding (a bug): the connection ends, typed, instead of the process
    writerFailed(core, fail, { message: `write failed: ${defectMessage(e)}` })
  }
}

/**
 * Starts the writer if it is not running and there is work. Synchronous, so that the sender's
 * commit and the start are one step: called after every commit to the queue, and by the
 * transport's control lane. The writer's first step runs on its scheduler, not inside the send
 * (frames the sender commits in the same synchronous run go out in the same batch) — except for a
 * direct writer on the fair scheduler with budget left in this turn, which writes in place.
 * @internal
 */
export const kick = <In, Out>(core: Core<In, Out>, fail: Fail): void => {
  if (core.writer !== undefined || core.writerStopped) return
  if (core.queue.size() === 0 && !core.controlPending) return
  if (core.framed.unsafeWrite !== undefined && !core.controlPending) {
    core.writer = "direct"
    // in place, inside the send, while the fair scheduler's budget for this turn lasts (a request/response
    // pays no wait for the scheduler); past it, on the scheduler, where the frames of many sends (a broadcast,
    // a burst) gather into one batch per connection
    return unsafeTryNow(core.settings.scheduler) ? directStep(core, fail) : schedule(core, fail)
  }
  startFiber(core, fail)
}

/** Whether the writer may still do something (running or about to be started). @internal */
export const busy = <In, Out>(core: Core<In, Out>): boolean =>
  !core.writerStopped && (core.writer !== undefined || core.queue.size() > 0 || core.controlPending)
