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
 * The fair scheduler: a writer's steps on microtasks up to `budget` per event-loop turn, then on a
 * macrotask. `unsafeTryNow` is the writer's way to take a step at once: it spends one unit of this
 * turn's budget if any is left (the caller then runs its step itself, in place), or says no (the
 * step goes on the scheduler). Always no with `inPlace: false`.
 * @internal
 */
export class Fair implements Scheduler.Scheduler {
  private used = 0
  private resetArmed = false
  private readonly micro = Scheduler.makeBatched((runBatch) => queueMicrotask(runBatch))
  private readonly reset = () => {
    this.used = 0
    this.resetArmed = false
  }
  readonly shouldYield = Scheduler.defaultShouldYield

  constructor(private readonly budget: number, private readonly inPlace: boolean) {}

  private spend(): boolean {
    if (this.used >= this.budget) return false
    this.used++
    if (!this.resetArmed) {
      this.resetArmed = true
      setImmediate(this.reset)
    }
    return true
  }

  scheduleTask(task: Scheduler.Task, priority: number): void {
    if (this.spend()) this.micro.scheduleTask(task, priority)
    else macrotask.scheduleTask(task, priority)
  }

  unsafeTryNow(): boolean {
    return this.inPlace && this.spend()
  }
}

/** The fair scheduler's in-place step, when `scheduler` is one and its budget allows. @internal */
export const unsafeTryNow = (scheduler: Scheduler.Scheduler): boolean =>
  scheduler instanceof Fair && scheduler.unsafeTryNow()

/** @internal */
export const fair = (budget: number, options?: { readonly inPlace?: boolean | undefined }): Scheduler.Scheduler =>
  new Fair(budget, options?.inPlace ?? true)

/** @internal */
export const defaultWriterScheduler: Scheduler.Scheduler = fair(4)

/** @internal */
export const currentWriterScheduler: FiberRef.FiberRef<Scheduler.Scheduler> = FiberRef.unsafeMake(
  defaultWriterScheduler
)
