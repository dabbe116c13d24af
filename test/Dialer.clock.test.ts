/**
 * Virtual-time tests of the dialer: backoff and its reset, the stop-gate in
 * every state, replay on reconnect, Stop against a peer that never closes.
 * The far ends are in-memory transports handed out by a test "server".
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option, Queue, Schedule, TestClock } from "effect"
import { Dialer, Framing } from "tether"
import { memoryServer, receivedFrames } from "./helpers/dial.js"

const utf8 = Framing.utf8

/** Lets every ready fiber run (no virtual time passes). */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

const awaitStatus = (dialer: Dialer.Dialer, status: Dialer.Status) =>
  Effect.repeat(dialer.status, { until: (s) => s === status, schedule: Schedule.forever }).pipe(
    Effect.zipLeft(settle)
  )

describe("Dialer (TestClock)", () => {
  it.scoped("sends while down go to the backlog and are replayed in order, before new frames, exactly once", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      const dialer = yield* Dialer.make({
        connect: server.connect,
        backoff: Schedule.spaced("1 second")
      })
      const first = yield* Queue.take(server.peers)
      yield* awaitStatus(dialer, "Connected")
      yield* dialer.send(utf8("a"))
      yield* settle
      expect(receivedFrames(first)).toEqual(["a"])
      yield* first.reset
      yield* awaitStatus(dialer, "Backoff")
      yield* dialer.send(utf8("b"))
      yield* dialer.send(utf8("c"))
      expect(dialer.unsafeStats().backlogMessages).toBe(2)
      yield* TestClock.adjust("1 second")
      const second = yield* Queue.take(server.peers)
      yield* awaitStatus(dialer, "Connected")
      yield* dialer.send(utf8("d"))
      yield* settle
      expect(receivedFrames(second)).toEqual(["b", "c", "d"])
      const outcome = yield* dialer.stop()
      expect(outcome.undelivered).toEqual([])
      expect(yield* dialer.status).toBe("Stopped")
      const err = yield* Effect.flip(dialer.send(utf8("e")))
      expect(err._tag).toBe("DialerStopped")
    }))
})
