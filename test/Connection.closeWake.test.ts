/**
 * Virtual-time tests of the close procedure's bounded waits (one wake-up per wait: the writer
 * stopping, the peer's EOF, an abort request, or the deadline on the Clock): each ends at the
 * first of them, at the exact virtual time.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { Connection, DisconnectReason, Transport } from "effect-tether"

const frame = (n: number, size = 8) => new Uint8Array(size).fill(n % 256)

describe("Connection close: one wake-up per bounded wait (TestClock)", () => {
  it.scoped("linger: a late EOF ends the wait when it arrives, not at the bound", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      peer.setIgnoreFin(true) // the peer does not answer our FIN by itself
      const conn = yield* Connection.make(t, { lingerTimeout: "5 seconds" })
      const closing = yield* Effect.fork(conn.close())
      yield* TestClock.adjust("1200 millis")
      expect(yield* conn.state).toBe("Closing")
      yield* peer.end // the peer's EOF, 1.2 s after our FIN
      const outcome = yield* Fiber.join(closing)
      expect(outcome).toMatchObject({ finSent: true, peerEof: true, lingerExpired: false, closeMillis: 1200 })
      expect(peer.destroyed()).toBe(true)
    }))

  it.scoped("linger: an abort during the wait for the EOF ends it at once", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      peer.setIgnoreFin(true)
      const conn = yield* Connection.make(t, { lingerTimeout: "5 seconds" })
      yield* conn.send(frame(1))
      const closing = yield* Effect.fork(conn.close())
      yield* TestClock.adjust("2 seconds")
      expect(yield* conn.state).toBe("Closing")
      const aborted = yield* conn.abort("enough")
      const outcome = yield* Fiber.join(closing)
      expect(aborted).toBe(outcome) // one procedure, one outcome
      expect(outcome).toMatchObject({ finSent: true, lingerExpired: false, closeMillis: 2000, delivered: 1 })
      expect(outcome.reason._tag).toBe("LocalClose") // the first request decides the reason
      expect(peer.destroyed()).toBe(true)
    }))

  it.scoped("FIN: an abort while the transport's shutdown hangs cuts it short", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      peer.setShutdownHangs(true)
      const conn = yield* Connection.make(t, { lingerTimeout: "5 seconds" })
      const closing = yield* Effect.fork(conn.close())
      yield* TestClock.adjust("1 second")
      conn.unsafeRequestClose(DisconnectReason.Aborted({ message: "stop" }), "abort")
      const outcome = yield* Fiber.join(closing)
      expect(outcome).toMatchObject({ finSent: false, lingerExpired: false, closeMillis: 1000 })
      expect(peer.destroyed()).toBe(true)
      expect(yield* conn.state).toBe("Closed")
    }))

  it.scoped("drain: an abort while the writer is stuck ends the drain at once; every frame is accounted for", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 100 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, { drainTimeout: "10 seconds", writeTimeout: "1 minute", maxBatchFrames: 4 })
      for (let i = 0; i < 20; i++) yield* conn.send(frame(i, 50))
      const closing = yield* Effect.fork(conn.close())
      yield* TestClock.adjust("3 seconds")
      expect(yield* conn.state).toBe("Draining")
      conn.unsafeRequestClose(DisconnectReason.Aborted({ message: "stop" }), "abort")
      const outcome = yield* Fiber.join(closing)
      expect(outcome).toMatchObject({ finSent: false, drained: false, lingerExpired: false, closeMillis: 3000 })
      expect(outcome.delivered + (outcome.truncated ? 1 : 0) + outcome.undelivered.length).toBe(20)
      expect(peer.destroyed()).toBe(true)
    }))

  it.scoped("drain: the writer finishing ends the drain when it does; the linger follows with its own bound", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 100 })
      peer.setReading(false)
      peer.setIgnoreFin(true)
      const conn = yield* Connection.make(t, { drainTimeout: "10 seconds", lingerTimeout: "3 seconds", maxBatchFrames: 4 })
      for (let i = 0; i < 20; i++) yield* conn.send(frame(i, 50))
      const closing = yield* Effect.fork(conn.close())
      yield* TestClock.adjust("4 seconds")
      expect(yield* conn.state).toBe("Draining")
      peer.setReading(true) // the writer drains, at 4 s; then our FIN, then no EOF: the linger ends at 4 + 3 s
      yield* TestClock.adjust("2999 millis")
      expect(yield* conn.state).toBe("Closing")
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(closing)
      expect(outcome).toMatchObject({ drained: true, finSent: true, lingerExpired: true, closeMillis: 7000, delivered: 20 })
      expect(outcome.undelivered).toEqual([])
    }))
})
