/**
 * The writer's scheduler.
 *
 * A socket write that completes synchronously calls back through `process.nextTick`, and
 * Effect's default scheduler runs fibers on microtasks, resetting its "yield to the event loop"
 * counter whenever its queue empties. Producers, the writer and the write callbacks could then
 * cycle for seconds without the event loop ever turning: timers (deadlines, watchdogs) and reads
 * would starve. The fair scheduler runs a writer's steps on microtasks (no added latency) up to a
 * budget per event-loop turn, then on a macrotask (`setImmediate`, the check phase), so the event
 * loop turns at least once per `budget` writer steps. This is about fairness, not time: TestClock
 * is unaffected.
 * @internal
 */
import * as FiberRef from "effect/FiberRef"
import * as Scheduler from "effect/Scheduler"

/** @internal */
export const macrotask: Scheduler.Scheduler = Scheduler.makeBatched((runBatch) => setImmediate(runBatch))

/**
 * A fair scheduler, and the writer's way to take a step at once: `unsafeTryNow` spends one unit of
 * this turn's budget if any is left (the caller then runs its step itself, in place), or says no
 * (the step goes on the scheduler: a microtask while budget lasts, else a macrotask).
 * @internal
 */
export interface Fair extends Scheduler.Scheduler {
  readonly unsafeTryNow: () => boolean
}

const fairSchedulers = new WeakSet<Scheduler.Scheduler>()

/** The fair scheduler's in-place step, when `scheduler` is one and its budget allows. @internal */
export const unsafeTryNow = (scheduler: Scheduler.Scheduler): boolean =>
  fairSchedulers.has(scheduler) && (scheduler as Fair).unsafeTryNow()

/** @internal */
export const fair = (budget: number, options?: { readonly inPlace?: boolean | undefined }): Scheduler.Scheduler => {
  const inPlace = options?.inPlace ?? true
  let used = 0
  let resetArmed = false
  const reset = () => {
    used = 0
    resetArmed = false
  }
  const spend = (): boolean => {
    if (used >= budget) return false
    used++
    if (!resetArmed) {
      resetArmed = true
      setImmediate(reset)
    }
    return true
  }
  const micro = Scheduler.makeBatched((runBatch) => queueMicrotask(runBatch))
  const self: Fair = {
    ...Scheduler.make((task, priority) => {
      if (spend()) micro.scheduleTask(task, priority)
      else macrotask.scheduleTask(task, priority)
    }),
    unsafeTryNow: inPlace ? spend : () => false
  }
  fairSchedulers.add(self)
  return self
}

/** @internal */
export const defaultWriterScheduler: Scheduler.Scheduler = fair(4)

/** @internal */
export const currentWriterScheduler: FiberRef.FiberRef<Scheduler.Scheduler> = FiberRef.unsafeMake(
  defaultWriterScheduler
)
