/**
 * The writer fiber's scheduler.
 *
 * A socket write that completes synchronously calls back through
 * `process.nextTick`, and Effect's default scheduler runs fibers on microtasks,
 * resetting its "yield to the event loop" counter whenever its queue empties.
 * Producers, the writer and the write callbacks can then cycle for seconds
 * without the event loop ever turning: timers (deadlines, watchdogs) and reads
 * starve. Resuming the writer on a macrotask (`setImmediate`, the check phase)
 * gives the event loop one turn per write batch — at the cost of nothing but a
 * larger next batch. This is about fairness, not time: TestClock is unaffected.
 * @internal
 */
import * as Scheduler from "effect/Scheduler"

/** @internal */
export const macrotask: Scheduler.Scheduler = Scheduler.makeBatched((runBatch) => setImmediate(runBatch))
