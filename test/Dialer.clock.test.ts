/**
 * Virtual-time tests of the dialer: backoff and its reset, the stop-gate in
 * every state, replay on reconnect, Stop against a peer that never closes.
 * The far ends are in-memory transports handed out by a test "server".
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Option, Queue, Schedule, Stream, TestClock } from "effect"
import { Dialer, Framing, SessionSchedule } from "effect-tether"
import * as Util from "node:util"
import * as Testing from "effect-tether/testing"
import { memoryServer, receivedFrames, settle } from "./helpers/dial.js"

const utf8 = Framing.utf8


const awaitStatus = (dialer: Dialer.Dialer, status: Dialer.Status) =>
  Testing.awaitStatus(dialer, status).pipe(Effect.zipRight(settle))

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

  it.scoped("backoff: exponential sequence, capped, and reset once a connection stayed up for resetAfter", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      server.setRefusing(true)
      const dialer = yield* Dialer.make({
        connect: server.connect,
        backoff: Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("1 second"))),
        resetAfter: "5 seconds"
      })
      yield* settle
      yield* TestClock.adjust("4 seconds")
      // 0, +100, +200, +400, +800, then capped at +1000
      expect(server.attempts).toEqual([0, 100, 300, 700, 1500, 2500, 3500])
      server.setRefusing(false)
      yield* TestClock.adjust("1 second")
      const peer = yield* Queue.take(server.peers)
      yield* awaitStatus(dialer, "Connected")
      expect(server.attempts.at(-1)).toBe(4500)
      // a short-lived connection does not reset the backoff
      yield* TestClock.adjust("1 second")
      yield* peer.reset
      yield* awaitStatus(dialer, "Backoff")
      yield* TestClock.adjust("999 millis")
      expect(server.attempts.length).toBe(8)
      yield* TestClock.adjust("1 millis")
      const peer2 = yield* Queue.take(server.peers)
      expect(server.attempts.at(-1)).toBe(7000)
      yield* awaitStatus(dialer, "Connected")
      // this one stays up for resetAfter: the next delay starts from 100 ms again
      yield* TestClock.adjust("5 seconds")
      yield* peer2.reset
      yield* awaitStatus(dialer, "Backoff")
      yield* TestClock.adjust("99 millis")
      expect(server.attempts.length).toBe(9)
      yield* TestClock.adjust("1 millis")
      yield* Queue.take(server.peers)
      expect(server.attempts.at(-1)).toBe(12_100)
      yield* dialer.stop()
    }))

  it.scoped("the default backoff: jittered exponential from 100 ms, capped at 30 s", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      server.setRefusing(true)
      const dialer = yield* Dialer.make({ connect: server.connect })
      yield* settle
      yield* TestClock.adjust("5 minutes")
      const gaps = server.attempts.slice(1).map((t, i) => Math.round(t - server.attempts[i]!))
      for (let i = 0; i < 8; i++) {
        const base = 100 * 2 ** i
        expect(gaps[i]).toBeGreaterThanOrEqual(Math.floor(base * 0.8))
        expect(gaps[i]).toBeLessThanOrEqual(Math.ceil(base * 1.2))
      }
      expect(gaps.slice(-3)).toEqual([30_000, 30_000, 30_000])
      yield* dialer.stop()
    }))

  it.scoped("a connect that hangs is cut off at connectTimeout and counts as a failed attempt", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      server.setHanging(true)
      const events: Array<string> = []
      const dialer = yield* Dialer.make({
        connect: server.connect,
        connectTimeout: "3 seconds",
        backoff: Schedule.spaced("1 second"),
        onEvent: (e) =>
          Effect.sync(() => {
            if (e._tag === "ConnectFailed") events.push(e.error.reason)
          })
      })
      yield* settle
      yield* TestClock.adjust("2999 millis")
      expect(events).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(events).toEqual(["ConnectTimeout"])
      yield* TestClock.adjust("1 second")
      expect(server.attempts).toEqual([0, 4000])
      yield* dialer.stop()
    }))

  it.scoped("stop is honoured at once while connecting, during backoff and while waiting for the window", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      // connecting
      server.setHanging(true)
      const d1 = yield* Dialer.make({ connect: server.connect, connectTimeout: "1 hour" })
      yield* awaitStatus(d1, "Connecting")
      const o1 = yield* d1.stop("bye")
      expect(o1.reason).toBe("bye")
      expect(yield* d1.status).toBe("Stopped")
      // backoff
      server.setHanging(false)
      server.setRefusing(true)
      const d2 = yield* Dialer.make({ connect: server.connect, backoff: Schedule.spaced("1 hour") })
      yield* awaitStatus(d2, "Backoff")
      yield* d2.send(utf8("kept"))
      const o2 = yield* d2.stop()
      expect(o2.undelivered.map(Framing.text)).toEqual(["kept"])
      // waiting for the window (it opens in ~8 hours)
      yield* TestClock.setTime(Date.UTC(2026, 0, 5, 0, 0))
      const d3 = yield* Dialer.make({
        connect: server.connect,
        schedule: SessionSchedule.daily({ start: "08:00", end: "17:00" })
      })
      yield* awaitStatus(d3, "WaitingForWindow")
      yield* d3.stop()
      expect(yield* d3.status).toBe("Stopped")
      expect(server.attempts.length).toBe(2) // d1 and d2 once each, d3 never
    }))

  it.effect("closing the scope while waiting for the window ends the dialer at once", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2026, 0, 5, 20, 0))
      const server = yield* memoryServer()
      const events: Array<string> = []
      yield* Effect.scoped(
        Effect.gen(function*() {
          const d = yield* Dialer.make({
            connect: server.connect,
            schedule: SessionSchedule.daily({ start: "08:00", end: "17:00" }),
            onEvent: (e) => Effect.sync(() => events.push(e._tag))
          })
          yield* awaitStatus(d, "WaitingForWindow")
        })
      )
      // no virtual time was needed to get here
      expect(yield* Clock.currentTimeMillis).toBe(Date.UTC(2026, 0, 5, 20, 0))
      expect(events).toEqual(["WaitingForWindow", "Stopped"])
      expect(server.attempts).toEqual([])
    }))

  it.effect("interrupting the fiber that owns the dialer ends it at once, while connecting and during backoff", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      for (const state of ["Connecting", "Backoff"] as const) {
        server.setHanging(state === "Connecting")
        server.setRefusing(state === "Backoff")
        const events: Array<string> = []
        const started = yield* Deferred.make<void>()
        const owner = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
          const d = yield* Dialer.make({
            connect: server.connect,
            connectTimeout: "1 hour",
            backoff: Schedule.spaced("1 hour"),
            onEvent: (e) => Effect.sync(() => events.push(e._tag))
          })
          yield* awaitStatus(d, state)
          yield* Deferred.succeed(started, undefined)
          return yield* Effect.never
        })))
        yield* Deferred.await(started)
        const before = yield* Clock.currentTimeMillis
        yield* Fiber.interrupt(owner)
        expect(yield* Clock.currentTimeMillis).toBe(before)
        expect(events.at(-1)).toBe("Stopped")
      }
    }))

  it.scoped("a session deciding Stop against a peer that never closes ends the dialer at the linger bound", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      server.setup.current = (peer) => peer.setIgnoreFin(true)
      const dialer = yield* Dialer.make({
        connect: server.connect,
        connection: { lingerTimeout: "2 seconds" },
        session: (conn) =>
          Effect.gen(function*() {
            yield* conn.send(utf8("fatal"))
            return Dialer.Decision.Stop({ reason: "protocol error" })
          })
      })
      const peer = yield* Queue.take(server.peers)
      yield* awaitStatus(dialer, "Closing")
      const ending = yield* Effect.fork(dialer.outcome)
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(ending))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(ending)
      expect(outcome).toEqual({ reason: "protocol error", undelivered: [] })
      expect(peer.destroyed()).toBe(true)
      expect(receivedFrames(peer)).toEqual(["fatal"])
      const err = yield* Effect.flip(dialer.send(utf8("late")))
      expect(err).toMatchObject({ _tag: "DialerStopped", reason: "protocol error" })
    }))

  it.scoped("a failing session decides Stop", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      const dialer = yield* Dialer.make({
        connect: server.connect,
        session: () => Effect.fail("boom")
      })
      const outcome = yield* dialer.outcome
      expect(outcome.reason).toContain("session failed")
      expect(server.attempts.length).toBe(1)
    }))

  it.scoped("frames the connection accepted but never wrote go back in front of the backlog, in order", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer({ kernelBufferBytes: 16 })
      let n = 0
      server.setup.current = (peer) => {
        if (n++ === 0) peer.setReading(false) // the first far end stalls: writes stick
      }
      const requeued: Array<number> = []
      const dialer = yield* Dialer.make({
        connect: server.connect,
        backoff: Schedule.spaced("1 second"),
        connection: { maxBatchFrames: 1 },
        onEvent: (e) => Effect.sync(() => e._tag === "Disconnected" && requeued.push(e.requeued))
      })
      const first = yield* Queue.take(server.peers)
      yield* awaitStatus(dialer, "Connected")
      for (let i = 0; i < 6; i++) yield* dialer.send(utf8(`m${i}`))
      yield* settle
      yield* first.reset // m0.. partly in the "kernel", the rest queued: the queued ones come back
      yield* awaitStatus(dialer, "Backoff")
      yield* dialer.send(utf8("after"))
      const firstGot = receivedFrames(first)
      yield* TestClock.adjust("1 second")
      const second = yield* Queue.take(server.peers)
      yield* awaitStatus(dialer, "Connected")
      yield* settle
      const secondGot = receivedFrames(second)
      const all = ["m0", "m1", "m2", "m3", "m4", "m5", "after"]
      // each frame once, in order, across the two connections (handed to the first kernel = delivered)
      // the stalled far end read nothing; what reached its "kernel" counts as delivered (and died with it)
      expect(firstGot).toEqual([])
      expect(requeued[0]).toBeGreaterThan(0)
      expect(secondGot.length).toBe(requeued[0]! + 1)
      expect([...firstGot, ...secondGot]).toEqual(all.slice(all.length - firstGot.length - secondGot.length))
      expect(dialer.unsafeStats().backlogMessages).toBe(0)
      yield* dialer.stop()
    }))

  it.scoped("readyOn session: the session logs on first, then releases the backlog", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      server.setRefusing(true)
      const dialer = yield* Dialer.make({
        connect: server.connect,
        backoff: Schedule.spaced("1 second"),
        readyOn: "session",
        session: (conn, control) =>
          Effect.gen(function*() {
            yield* conn.send(utf8("LOGON"))
            yield* Effect.sleep("100 millis") // waiting for the logon reply
            yield* control.ready
            yield* conn.closed
            return Dialer.Decision.Reconnect()
          })
      })
      yield* awaitStatus(dialer, "Backoff")
      yield* dialer.send(utf8("queued-1"))
      yield* dialer.send(utf8("queued-2"))
      server.setRefusing(false)
      yield* TestClock.adjust("1 second")
      const peer = yield* Queue.take(server.peers)
      yield* awaitStatus(dialer, "Replaying")
      yield* dialer.send(utf8("new")) // still held back: the session is not ready
      yield* settle
      expect(receivedFrames(peer)).toEqual(["LOGON"])
      yield* TestClock.adjust("100 millis")
      yield* awaitStatus(dialer, "Connected")
      yield* dialer.send(utf8("direct"))
      yield* settle
      expect(receivedFrames(peer)).toEqual(["LOGON", "queued-1", "queued-2", "new", "direct"])
      yield* dialer.stop()
    }))

  it.scoped("an exhausted backoff schedule stops the dialer and hands the backlog back", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      server.setRefusing(true)
      const dialer = yield* Dialer.make({ connect: server.connect, backoff: Schedule.recurs(2) })
      yield* dialer.send(utf8("x"))
      const outcome = yield* dialer.outcome
      expect(outcome.reason).toBe("backoff schedule exhausted")
      expect(outcome.undelivered.map(Framing.text)).toEqual(["x"])
      expect(server.attempts.length).toBe(3)
    }))

  it.effect("Dialer.layer: a dialer for the lifetime of the layer", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      const got = yield* Effect.gen(function*() {
        const d = yield* Dialer.Tag
        yield* d.send(utf8("via layer"))
        const peer = yield* Queue.take(server.peers)
        yield* awaitStatus(d, "Connected")
        return peer
      }).pipe(Effect.provide(Dialer.layer({ connect: server.connect })))
      yield* settle
      expect(receivedFrames(got)).toEqual(["via layer"])
      expect(got.destroyed()).toBe(true) // the layer's scope closed: graceful close, the peer answered FIN
    }))

  it.scoped("a dialer is told by Dialer.isDialer, and shows its id and state (toJSON, toString, inspect), not its internals", () =>
    Effect.gen(function*() {
      const server = yield* memoryServer()
      server.setRefusing(true)
      const dialer = yield* Dialer.make({ id: "upstream", connect: server.connect, backoff: Schedule.spaced("1 second") })
      yield* awaitStatus(dialer, "Backoff")
      yield* dialer.send(utf8("held"))
      expect(Dialer.isDialer(dialer)).toBe(true)
      expect(dialer[Dialer.TypeId]).toBe(Dialer.TypeId)
      for (const other of [undefined, null, 1, "dialer", {}, { id: "upstream" }, { ...dialer }]) {
        expect(Dialer.isDialer(other)).toBe(false)
      }
      const json = dialer.toJSON()
      expect(json).toEqual({
        _id: "Dialer",
        id: "upstream",
        status: "Backoff",
        attempts: 1,
        connects: 0,
        backlog: { messages: 1, bytes: 4 }
      })
      // the same view everywhere, and no closure or Effect leaks into it
      expect(JSON.parse(JSON.stringify(dialer))).toEqual(json)
      expect(JSON.parse(String(dialer))).toEqual(json)
      expect(Util.inspect(dialer)).toBe(Util.inspect(json))
      server.setRefusing(false)
      yield* TestClock.adjust("1 second")
      yield* awaitStatus(dialer, "Connected")
      expect(dialer.toJSON()).toMatchObject({ status: "Connected", attempts: 2, connects: 1, backlog: { messages: 0 } })
    }))
})
