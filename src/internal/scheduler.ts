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

/** @internal */
export const fair = (budget: number): Scheduler.Scheduler => {
  let used = 0
  let resetArmed = false
  const reset = () => {
    used = 0
    resetArmed = false
  }
  const micro = Scheduler.makeBatched((runBatch) => queueMicrotask(runBatch))
  return Scheduler.make((task, priority) => {
    if (used < budget) {
      used++
      if (!resetArmed) {
        resetArmed = true
        setImmediate(reset)
      }
      micro.scheduleTask(task, priority)
    } else {
      macrotask.scheduleTask(task, priority)
    }
  })
}

/** @internal */
export const defaultWriterScheduler: Scheduler.Scheduler = fair(4)

/** @internal */
export const currentWriterScheduler: FiberRef.FiberRef<Scheduler.Scheduler> = FiberRef.unsafeMake(
  defaultWriterScheduler
)
