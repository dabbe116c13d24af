/**
 * The single writer's schedule and failures, on both of its forms: the direct writer (a seam that
 * writes with callbacks: TCP on loopback) and the fiber writer (the memory transport, whose write
 * is an effect). Both run their steps on the writer's scheduler (`Connection.currentWriterScheduler`),
 * so a `ControlledScheduler` steps them; both end the connection typed when a codec throws.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Scheduler } from "effect"
import { Connection, DisconnectReason, Framing, Transport } from "effect-tether"
import * as Testing from "effect-tether/testing"

// a length-prefixed codec whose encoder throws on a payload starting with 0xff (a codec bug)
const poisoned = (): Framing.Codec<Uint8Array, Uint8Array> => {
  const inner = Framing.lengthPrefixed()
  const boom = (payload: Uint8Array) => {
    if (payload[0] === 0xff) throw new Error("encoder exploded")
  }
  return {
    ...inner,
    encodeInto: (payload, target, offset) => {
      boom(payload)
      return inner.encodeInto(payload, target, offset)
    },
    encodeChunks: (payload) => {
      boom(payload)
      return inner.encodeChunks(payload)
    }
  }
}

const poison = Uint8Array.of(0xff, 1, 2)

/** Polls a condition on the event loop, failing after `ms`. */
const until = (ms: number, what: string, cond: () => boolean) =>
  Testing.within(
    ms,
    what,
    Effect.gen(function*() {
      while (!cond()) yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
    })
  )

describe("Connection writer", () => {
  it.scopedLive("direct writer (TCP): nothing is written until its scheduler steps; one step writes everything committed", () => {
    const scheduler = new Scheduler.ControlledScheduler()
    return Effect.gen(function*() {
      const server = yield* Testing.peer()
      const conn = yield* Connection.connectTcp({ port: server.port })
      const peer = yield* server.accepted.take
      const frames = Testing.collectFrames(peer)
      yield* conn.sendAll([Framing.utf8("a"), Framing.utf8("b"), Framing.utf8("c")])
      // a turn of the event loop: still nothing, the writer's first step waits for the scheduler
      yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      expect(conn.unsafeStats()).toMatchObject({ framesOut: 0, queueDepth: 3 })
      scheduler.step()
      yield* until(2000, "the batch written", () => conn.unsafeStats().framesOut === 3)
      expect(conn.unsafeStats().queueDepth).toBe(0)
      yield* until(2000, "the peer got all three", () => frames.length === 3)
      expect(frames.map((f) => f.toString())).toEqual(["a", "b", "c"])
      // the next frames wait for the next step as well
      yield* conn.send(Framing.utf8("d"))
      yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      expect(conn.unsafeStats()).toMatchObject({ framesOut: 3, queueDepth: 1 })
      scheduler.step()
      yield* until(2000, "the second batch written", () => conn.unsafeStats().framesOut === 4)
      // everything the writer does runs on this scheduler (the step after a write, too): step it until closed
      yield* Effect.fork(conn.close())
      yield* until(2000, "the close", () => {
        scheduler.step()
        return conn.unsafeStats().state === "Closed"
      })
    }).pipe(Effect.locally(Connection.currentWriterScheduler, scheduler))
  })

  it.scopedLive("direct writer (TCP), fair scheduler: a send to an idle writer writes in place while the turn's budget lasts, later ones wait for the scheduler", () =>
    Effect.gen(function*() {
      const server = yield* Testing.peer()
      const one = yield* Connection.connectTcp({ port: server.port })
      const two = yield* Connection.connectTcp({ port: server.port })
      yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r))) // a fresh turn: the budget is whole
      yield* one.send(Framing.utf8("a"))
      // written inside the send: with the socket already, nothing queued
      expect(one.unsafeStats()).toMatchObject({ queueDepth: 0, framesInFlight: 1 })
      // the budget (1) of this turn is spent: the next idle writer's step goes on the scheduler
      yield* two.send(Framing.utf8("b"))
      expect(two.unsafeStats()).toMatchObject({ queueDepth: 1, framesInFlight: 0 })
      yield* until(2000, "both written", () => one.unsafeStats().framesOut === 1 && two.unsafeStats().framesOut === 1)
      // once the writer has stopped, a new turn brings a new budget: in place again
      yield* until(2000, "the writers stopped", () => two.unsafeStats().framesInFlight === 0)
      yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      yield* two.send(Framing.utf8("c"))
      expect(two.unsafeStats()).toMatchObject({ queueDepth: 0, framesInFlight: 1 })
    }).pipe(Effect.locally(Connection.currentWriterScheduler, Connection.fairScheduler(1))))

  it.scopedLive("direct writer (TCP), fair scheduler with inPlace: false: every step waits for the scheduler", () =>
    Effect.gen(function*() {
      const server = yield* Testing.peer()
      const conn = yield* Connection.connectTcp({ port: server.port })
      yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      yield* conn.send(Framing.utf8("a"))
      yield* conn.send(Framing.utf8("b"))
      // nothing left in the send: both wait for the writer's step, and leave together
      expect(conn.unsafeStats()).toMatchObject({ queueDepth: 2, framesInFlight: 0 })
      yield* until(2000, "both written", () => conn.unsafeStats().framesOut === 2)
    }).pipe(Effect.locally(Connection.currentWriterScheduler, Connection.fairScheduler(4, { inPlace: false }))))

  it.scopedLive("fiber writer (memory transport): nothing is written until its scheduler steps, then the whole batch", () => {
    const scheduler = new Scheduler.ControlledScheduler()
    return Effect.gen(function*() {
      const [transport, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(transport)
      yield* conn.sendAll([Framing.utf8("a"), Framing.utf8("b"), Framing.utf8("c")])
      yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      expect(conn.unsafeStats()).toMatchObject({ framesOut: 0, queueDepth: 3 })
      expect(peer.received().length).toBe(0)
      // the fiber's steps (start, the write's resumption) each wait for the scheduler
      yield* until(2000, "the batch written", () => {
        scheduler.step()
        return conn.unsafeStats().framesOut === 3
      })
      expect(peer.received().length).toBe(3 * 5)
      // everything the writer does runs on this scheduler, its close too: step it until closed
      yield* Effect.fork(conn.close())
      yield* until(2000, "the close", () => {
        scheduler.step()
        return conn.unsafeStats().state === "Closed"
      })
    }).pipe(Effect.locally(Connection.currentWriterScheduler, scheduler))
  })

  it.scopedLive("direct writer (TCP): a codec that throws ends the connection with IoError; its batch comes back undelivered", () =>
    Effect.gen(function*() {
      const server = yield* Testing.peer()
      const conn = yield* Connection.connectTcp({ port: server.port, codec: poisoned() })
      const peer = yield* server.accepted.take
      const frames = Testing.collectFrames(peer)
      yield* conn.send(Framing.utf8("first"))
      yield* until(2000, "the first frame written", () => conn.unsafeStats().framesOut === 1)
      yield* conn.sendAll([Framing.utf8("second"), poison])
      const outcome = yield* Testing.within(2000, "the connection to close", conn.outcome)
      expect(DisconnectReason.$is("IoError")(outcome.reason)).toBe(true)
      expect(outcome.reason).toMatchObject({ message: "write failed: encoder exploded" })
      expect(outcome.delivered).toBe(1)
      expect(outcome.undelivered.map((f) => Buffer.from(f).toString("hex"))).toEqual([
        Buffer.from("second").toString("hex"),
        Buffer.from(poison).toString("hex")
      ])
      yield* until(2000, "the peer got the first frame", () => frames.length === 1)
      expect(frames.map((f) => f.toString())).toEqual(["first"])
    }))

  it.scopedLive("fiber writer (memory transport): a codec that throws ends the connection with IoError, nothing wedges", () =>
    Effect.gen(function*() {
      const [transport] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(transport, { codec: poisoned() })
      yield* conn.sendAll([Framing.utf8("second"), poison])
      const outcome = yield* Testing.within(2000, "the connection to close", conn.outcome)
      expect(outcome.reason).toMatchObject({ _tag: "IoError", message: "write failed: encoder exploded" })
      expect(outcome.delivered).toBe(0)
      expect(outcome.undelivered.length).toBe(2)
      expect(yield* conn.state).toBe("Closed")
    }))
})
