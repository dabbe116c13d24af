/**
 * Shared one-shot timers on the Effect `Clock`: one fiber for many deadlines.
 *
 * A listener closing thousands of sessions would otherwise fork (and then interrupt) a sleeping
 * fiber per bounded wait; here a deadline is an entry in a FIFO per duration (entries of one
 * duration come in deadline order, so a FIFO is a priority queue), and one fiber — only while
 * some entry is pending — sleeps on the Clock until the earliest head, runs what is due and sleeps
 * again. A cancel only drops its entry's `fire`. The fiber is re-started (the sleeping one interrupted)
 * only when a new deadline is earlier than the one it sleeps to. TestClock drives it like any
 * `Effect.sleep`.
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"

/** @internal */
export interface Timers {
  /** Runs `fire` once `millis` have passed on the Clock, unless the returned cancel runs first. Synchronous. */
  readonly schedule: (millis: number, fire: () => void) => () => void
}

/**
 * A deadline. Its `fire` is dropped when it fires or is cancelled: a cancelled entry stays in its FIFO until
 * its deadline passes, and must not keep what its `fire` refers to (a closed session and its connection, for
 * up to the timeout) alive until then. Its cancel is a bound method, not a closure of `schedule`'s.
 */
class Entry {
  constructor(readonly deadline: number, public fire: (() => void) | undefined) {}
  cancel(): void {
    this.fire = undefined
  }
}

interface Fifo {
  items: Array<Entry>
  head: number
}

/** @internal */
export const make = (
  clock: Clock.Clock,
  run: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void, unknown>
): Timers => {
  const queues = new Map<number, Fifo>()
  // the fiber that runs the queues, its generation (a replaced one ends without touching anything)
  // and the deadline it sleeps to
  let current: Fiber.RuntimeFiber<void, unknown> | undefined
  let generation = 0
  let target = Infinity

  const loop = (gen: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (gen !== generation) return Effect.void
      const now = clock.unsafeCurrentTimeMillis()
      let next = Infinity
      for (const [millis, q] of queues) {
        while (q.head < q.items.length) {
          const e = q.items[q.head]!
          const fire = e.fire
          if (fire !== undefined && e.deadline > now) break
          q.head++
          if (fire !== undefined) {
            e.fire = undefined
            fire()
            if (gen !== generation) return Effect.void // the fire armed an earlier deadline: a new fiber took over
          }
        }
        if (q.head >= q.items.length) queues.delete(millis)
        else {
          if (q.head > 1024 && q.head * 2 > q.items.length) {
            q.items = q.items.slice(q.head)
            q.head = 0
          }
          next = Math.min(next, q.items[q.head]!.deadline)
        }
      }
      if (gen !== generation) return Effect.void // a fire re-armed (a new fiber took over)
      if (next === Infinity) {
        current = undefined
        target = Infinity
        return Effect.void
      }
      target = next
      return Effect.zipRight(Effect.sleep(Duration.millis(next - now)), loop(gen))
    })

  const start = (deadline: number) => {
    const old = current
    const gen = ++generation
    target = deadline
    current = undefined
    const fiber = run(loop(gen))
    if (gen === generation && target !== Infinity) current = fiber
    old?.unsafeInterruptAsFork(FiberId.none)
  }

  return {
    schedule: (millis, fire) => {
      const e = new Entry(clock.unsafeCurrentTimeMillis() + millis, fire)
      let q = queues.get(millis)
      if (q === undefined) {
        q = { items: [], head: 0 }
        queues.set(millis, q)
      }
      q.items.push(e)
      if (current === undefined || e.deadline < target) start(e.deadline)
      return e.cancel.bind(e)
    }
  }
}
