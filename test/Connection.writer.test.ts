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
  it.scopedLive("direct writer (TCP): an idle writer's first batch goes out in the send; what comes while it is with the socket waits for one scheduler step", () => {
    const scheduler = new Scheduler.ControlledScheduler()
    return Effect.gen(function*() {
      const server = yield* Testing.peer()
      const conn = yield* Connection.connectTcp({ port: server.port })
      const peer = yield* server.accepted.take
      const frames = Testing.collectFrames(peer)
      // the writer is idle: the send hands everything it commits to the socket itself, no step needed
      yield* conn.sendAll([Framing.utf8("a"), Framing.utf8("b"), Framing.utf8("c")])
      expect(conn.unsafeStats()).toMatchObject({ queueDepth: 0, framesInFlight: 3 })
      yield* until(2000, "the batch written", () => conn.unsafeStats().framesOut === 3)
      yield* until(2000, "the peer got all three", () => frames.length === 3)
      // the writer's next step (after the write's callback) waits for the scheduler: what is sent now queues
      yield* conn.send(Framing.utf8("d"))
      yield* conn.send(Framing.utf8("e"))
      yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      expect(conn.unsafeStats()).toMatchObject({ framesOut: 3, queueDepth: 2 })
      // one step writes everything committed
      scheduler.step()
      expect(conn.unsafeStats()).toMatchObject({ queueDepth: 0, framesInFlight: 2 })
      yield* until(2000, "the second batch written", () => conn.unsafeStats().framesOut === 5)
      yield* until(2000, "the peer got all five", () => frames.length === 5)
      expect(frames.map((f) => f.toString())).toEqual(["a", "b", "c", "d", "e"])
      // everything else the writer does runs on this scheduler: step it until closed
      yield* Effect.fork(conn.close())
      yield* until(2000, "the close", () => {
        scheduler.step()
        return conn.unsafeStats().state === "Closed"
      })
    }).pipe(Effect.locally(Connection.currentWriterScheduler, scheduler))
  })

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
