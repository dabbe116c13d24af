/**
 * The stop-gate: nothing is queued once it is closed, and a producer waiting for
 * capacity when it closes fails instead of slipping in.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, FastCheck as fc, Fiber, TestClock } from "effect"
import { StopGate } from "effect-tether"

describe("StopGate", () => {
  it.effect("a gate closed beforehand refuses the send and the queue stays empty", () =>
    Effect.gen(function*() {
      const gate = yield* StopGate.make<string>()
      const q = StopGate.unsafeMakeQueue<number, string>(gate, { capacity: 4 })
      yield* StopGate.close(gate, "shutdown")
      const err = yield* Effect.flip(q.offer(1))
      expect(err).toEqual(new StopGate.GateClosed({ reason: "shutdown" }))
      expect(yield* Effect.flip(q.tryOffer(2))).toEqual(new StopGate.GateClosed({ reason: "shutdown" }))
      expect(q.size()).toBe(0)
      expect(yield* q.awaitItems).toBe(false)
    }))

  it.effect("capacity 1, full, a second send waiting; the gate closes and the first drains: the waiter fails", () =>
    Effect.gen(function*() {
      const gate = yield* StopGate.make<string>()
      const q = StopGate.unsafeMakeQueue<string, string>(gate, { capacity: 1 })
      yield* q.offer("first")
      const waiting = yield* Effect.fork(q.offer("second"))
      yield* Effect.yieldNow()
      expect(q.waiting()).toBe(1)
      yield* StopGate.close(gate, "stop")
      // drain what was accepted before the close
      expect(yield* q.awaitItems).toBe(true)
      expect(q.unsafeTakeUpTo(10)).toEqual(["first"])
      const exit = yield* Fiber.await(waiting)
      expect(exit).toEqual(Exit.fail(new StopGate.GateClosed({ reason: "stop" })))
      expect(q.size()).toBe(0)
      expect(yield* q.awaitItems).toBe(false)
    }))

  it.effect("the drain happening before the waiter runs still cannot let it in after the close", () =>
    Effect.gen(function*() {
      const gate = yield* StopGate.make<string>()
      const q = StopGate.unsafeMakeQueue<string, string>(gate, { capacity: 1 })
      yield* q.offer("first")
      const waiting = yield* Effect.fork(q.offer("second"))
      yield* Effect.yieldNow()
      // the slot is granted to the waiter (take), then the gate closes before the waiter resumes
      expect(q.unsafeTakeUpTo(1)).toEqual(["first"])
      gate.unsafeClose("stop")
      const exit = yield* Fiber.await(waiting)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(q.size()).toBe(0)
    }))

  it.effect("waiting producers are served in arrival order", () =>
    Effect.gen(function*() {
      const gate = yield* StopGate.make<string>()
      const q = StopGate.unsafeMakeQueue<number, string>(gate, { capacity: 1 })
      yield* q.offer(0)
      const fibers = []
      for (let i = 1; i <= 5; i++) {
        fibers.push(yield* Effect.fork(q.offer(i)))
        yield* Effect.yieldNow()
      }
      const got: Array<number> = []
      while (got.length < 6) {
        yield* q.awaitItems
        got.push(...q.unsafeTakeUpTo(1))
        yield* Effect.yieldNow()
      }
      expect(got).toEqual([0, 1, 2, 3, 4, 5])
      for (const f of fibers) yield* Fiber.join(f)
    }))

  it.effect("an interrupted waiter gives its granted slot to the next one", () =>
    Effect.gen(function*() {
      const gate = yield* StopGate.make<string>()
      const q = StopGate.unsafeMakeQueue<string, string>(gate, { capacity: 1 })
      yield* q.offer("a")
      const w1 = yield* Effect.fork(q.offer("b"))
      yield* Effect.yieldNow()
      const w2 = yield* Effect.fork(q.offer("c"))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(w1)
      expect(q.unsafeTakeUpTo(1)).toEqual(["a"])
      yield* Fiber.join(w2)
      expect(q.unsafeTakeUpTo(1)).toEqual(["c"])
    }))

  it.effect("property: every offer is either committed (and taken exactly once) or refused with the reason", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 4 }),
          fc.array(fc.constantFrom("offer", "take", "yield"), { maxLength: 40 }),
          fc.integer({ min: 0, max: 40 }),
          (capacity, ops, closeAt) =>
            Effect.runPromise(Effect.gen(function*() {
              const gate = yield* StopGate.make<string>()
              const q = StopGate.unsafeMakeQueue<number, string>(gate, { capacity })
              const producers: Array<Fiber.RuntimeFiber<void, StopGate.GateClosed<string>>> = []
              const taken: Array<number> = []
              let next = 0
              for (let i = 0; i < ops.length; i++) {
                if (i === closeAt) gate.unsafeClose("closed")
                const op = ops[i]!
                if (op === "offer") producers.push(yield* Effect.fork(q.offer(next++)))
                else if (op === "take") taken.push(...q.unsafeTakeUpTo(2))
                else yield* Effect.yieldNow()
              }
              gate.unsafeClose("closed")
              let accepted = 0
              for (const p of producers) {
                const exit = yield* Fiber.await(p)
                if (Exit.isSuccess(exit)) accepted++
              }
              taken.push(...q.unsafeTakeAll())
              // committed = taken, each exactly once; nothing left behind. (Order across different
              // producers is not asserted: a producer granted a slot and a newcomer that finds another
              // free slot may commit in either order; each producer's own sends stay in order.)
              expect(new Set(taken).size).toBe(taken.length)
              expect(taken.length).toBe(accepted)
              expect(q.size()).toBe(0)
            }))
        ),
        { numRuns: 200 }
      )
    ))
})

describe("StopGate queue: byte water marks", () => {
  it.effect("full at the high water mark whatever the item count, open again only at the low one; waiters in order", () =>
    Effect.gen(function*() {
      const gate = yield* StopGate.make<string>()
      const q = StopGate.unsafeMakeQueue<Uint8Array, string>(gate, {
        capacity: 1000,
        weight: (b) => b.length,
        highWaterMark: 1000,
        lowWaterMark: 300
      })
      const item = (n: number) => new Uint8Array(n)
      for (let i = 0; i < 9; i++) expect(yield* q.tryOffer(item(100))).toBe("accepted")
      expect(q.queuedWeight()).toBe(900)
      expect(yield* q.tryOffer(item(100))).toBe("accepted") // reaches 1000: full from now on
      expect(yield* q.tryOffer(item(1))).toBe("full")
      // waiting producers, in arrival order
      const a = yield* Effect.fork(q.offer(item(50)))
      const b = yield* Effect.fork(q.offer(item(60)))
      yield* Effect.yieldNow()
      expect(q.waiting()).toBe(2)
      // taking down to 600 bytes: still above the low mark, still full
      q.unsafeTakeUpTo(4)
      expect(q.queuedWeight()).toBe(600)
      expect(yield* q.tryOffer(item(1))).toBe("full")
      yield* Effect.yieldNow()
      expect(q.waiting()).toBe(2)
      // down to 300: open; the waiters commit first (in order), the newcomer after them
      q.unsafeTakeUpTo(3)
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      expect(q.unsafeTakeAll().map((x) => x.length)).toEqual([100, 100, 100, 50, 60])
      expect(q.queuedWeight()).toBe(0)
      // an item heavier than the high mark is accepted by an empty queue
      expect(yield* q.tryOffer(item(5000))).toBe("accepted")
      expect(yield* q.tryOffer(item(1))).toBe("full")
    }))
})

describe("StopGate.closeAndDrain", () => {
  it.effect("closes the gate, hands every accepted item to the handler in order, refuses the rest", () =>
    Effect.gen(function*() {
      const gate = yield* StopGate.make<string>()
      const q = StopGate.unsafeMakeQueue<number, string>(gate, { capacity: 2 })
      yield* q.offer(1)
      yield* q.offer(2)
      const waiting = yield* Effect.fork(q.offer(3)) // waiting for capacity when the gate closes
      yield* Effect.yieldNow()
      const seen: Array<number> = []
      const report = yield* StopGate.closeAndDrain(q, "shutdown", (n) => Effect.sync(() => seen.push(n)), "1 second")
      expect(report).toEqual({ handled: 2, remaining: [], drained: true })
      expect(seen).toEqual([1, 2])
      expect(yield* Fiber.await(waiting)).toEqual(Exit.fail(new StopGate.GateClosed({ reason: "shutdown" })))
      expect(yield* Effect.flip(q.offer(4))).toEqual(new StopGate.GateClosed({ reason: "shutdown" }))
    }))

  it.effect("at the bound, the item being handled and everything after it are handed back (TestClock)", () =>
    Effect.gen(function*() {
      const gate = yield* StopGate.make<string>()
      const q = StopGate.unsafeMakeQueue<number, string>(gate, { capacity: 8 })
      for (const n of [1, 2, 3, 4]) yield* q.offer(n)
      const drain = yield* Effect.fork(
        StopGate.closeAndDrain(q, "shutdown", () => Effect.sleep("400 millis"), "1 second")
      )
      yield* TestClock.adjust("1 second")
      const report = yield* Fiber.join(drain)
      // 1 and 2 took 800 ms; 3 was being handled when the second ran out
      expect(report).toEqual({ handled: 2, remaining: [3, 4], drained: false })
    }))

  it.effect("a failing handler stops the drain; that item and the rest are handed back", () =>
    Effect.gen(function*() {
      const gate = yield* StopGate.make<string>()
      const q = StopGate.unsafeMakeQueue<number, string>(gate, { capacity: 8 })
      for (const n of [1, 2, 3]) yield* q.offer(n)
      const report = yield* StopGate.closeAndDrain(
        q,
        "shutdown",
        (n) => (n === 2 ? Effect.fail("boom") : Effect.void),
        "1 second"
      )
      expect(report).toEqual({ handled: 1, remaining: [2, 3], drained: false })
    }))
})
