/**
 * Virtual-time tests of the connection's bounds: linger, drain, per-write
 * deadlines, a FIN that never completes. The far end is the in-memory peer.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Option, Stream, TestClock } from "effect"
import { Connection, DisconnectReason, Framing, Transport } from "effect-tether"

const frame = (n: number, size = 8) => new Uint8Array(size).fill(n % 256)

describe("Connection (TestClock)", () => {
  it.scoped("the send queue is bounded in bytes: full at sendQueueHighWaterMark, open again at the low mark", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 100 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, {
        sendQueueCapacity: 1000,
        sendQueueHighWaterMark: 1040,
        sendQueueLowWaterMark: 208,
        maxBatchFrames: 1
      })
      // 100-byte payloads are 104 bytes on the wire (length prefix)
      let accepted = 0
      while ((yield* conn.trySend(frame(accepted, 100))) === "accepted") accepted++
      expect(accepted).toBe(10) // 10 queued (1040 bytes), far below the 1000-frame capacity
      // the writer's first step runs on its scheduler (not inside a send): it takes one batch into flight,
      // which is the kernel's 100 bytes and more: the write stalls there
      while (conn.unsafeStats().framesInFlight === 0) yield* Effect.yieldNow()
      expect(conn.unsafeStats().queueBytes).toBe(936)
      // below the high mark, but not open again until the low mark (hysteresis)
      expect(yield* conn.trySend(frame(accepted, 100))).toBe("full")
      const waiting = yield* Effect.fork(conn.send(frame(99, 100)))
      // the peer reads: the queue drains; the waiting sender commits once it is down to the low mark
      peer.setReading(true)
      yield* Fiber.join(waiting)
      const outcome = yield* conn.close()
      expect(outcome).toMatchObject({ delivered: 11, undelivered: [], drained: true })
    }))

  it.scoped("linger expiry destroys the socket at exactly lingerTimeout", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      peer.setIgnoreFin(true) // the peer never answers our FIN
      const conn = yield* Connection.make(t, { lingerTimeout: "5 seconds" })
      yield* conn.send(frame(1))
      const closing = yield* Effect.fork(conn.close("done"))
      yield* TestClock.adjust("4999 millis")
      expect(peer.finReceived()).toBe(true)
      expect(peer.destroyed()).toBe(false)
      expect(yield* conn.state).toBe("Closing")
      yield* TestClock.adjust("1 millis")
      const outcome = yield* Fiber.join(closing)
      expect(peer.destroyed()).toBe(true)
      expect(outcome.lingerExpired).toBe(true)
      expect(outcome.closeMillis).toBe(5000)
      expect(outcome.delivered).toBe(1)
      expect(outcome.undelivered).toEqual([])
      expect(outcome.reason._tag).toBe("LocalClose")
      expect(yield* conn.state).toBe("Closed")
    }))

  it.scoped("a peer that answers FIN lets close complete without waiting", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t)
      yield* conn.send(frame(1))
      const outcome = yield* conn.close()
      expect(outcome.closeMillis).toBe(0)
      expect(outcome.peerEof).toBe(true)
      expect(outcome.finSent).toBe(true)
      expect(outcome.drained).toBe(true)
      expect(peer.destroyed()).toBe(true)
    }))

  it.scoped("drain timeout: a writer stuck behind a non-reading peer is cut off at drainTimeout", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 100 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, {
        drainTimeout: "2 seconds",
        lingerTimeout: "3 seconds",
        writeTimeout: "1 minute",
        maxBatchFrames: 4
      })
      for (let i = 0; i < 20; i++) yield* conn.send(frame(i, 50))
      const closing = yield* Effect.fork(conn.close())
      yield* TestClock.adjust("1999 millis")
      expect(yield* conn.state).toBe("Draining")
      yield* TestClock.adjust("1 millis")
      // drain gave up: a peer that cannot take our data cannot take a FIN either: destroy at once
      const outcome = yield* Fiber.join(closing)
      expect(outcome.closeMillis).toBe(2000)
      expect(outcome.finSent).toBe(false)
      expect(outcome.drained).toBe(false)
      expect(peer.destroyed()).toBe(true)
      // every accepted frame is accounted for: written to the kernel or handed back
      expect(outcome.delivered + (outcome.truncated ? 1 : 0) + outcome.undelivered.length).toBe(20)
      expect(outcome.undelivered.length).toBeGreaterThan(0)
    }))

  it.scoped("the write deadline is armed per write: an idle gap longer than writeTimeout is harmless", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, { writeTimeout: "1 second" })
      yield* conn.send(frame(1))
      yield* TestClock.adjust("10 seconds") // idle, far beyond the write timeout
      yield* conn.send(frame(2))
      yield* TestClock.adjust("10 seconds")
      yield* conn.send(frame(3))
      const received = yield* Effect.repeat(Effect.sync(() => peer.received().length), {
        until: (n) => n === 36
      })
      expect(received).toBe(36)
      expect(yield* conn.state).toBe("Active")
    }))

  it.scoped("a write that does not complete within writeTimeout ends the connection with WriteTimeout", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 10 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, { writeTimeout: "2 seconds" })
      yield* conn.send(frame(1, 100))
      yield* TestClock.adjust("1999 millis")
      expect(yield* conn.state).toBe("Active")
      yield* TestClock.adjust("1 millis")
      const reason = yield* conn.closed
      expect(reason._tag).toBe("WriteTimeout")
      const outcome = yield* conn.outcome
      // its first 10 bytes are in the "kernel": cut in the middle, not handed back
      expect(outcome.truncated).toEqual(frame(1, 100))
      expect(outcome.undelivered.length).toBe(0)
      expect(outcome.delivered).toBe(0)
      expect(peer.destroyed()).toBe(true)
      const err = yield* Effect.flip(conn.send(frame(2)))
      expect(err._tag).toBe("ConnectionClosed")
    }))

  it.scoped("a transport whose shutdown never completes still finishes closing at the bound", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      peer.setShutdownHangs(true)
      const conn = yield* Connection.make(t, { lingerTimeout: "3 seconds" })
      const closing = yield* Effect.fork(conn.close())
      yield* TestClock.adjust("3 seconds")
      const outcome = yield* Fiber.join(closing)
      expect(outcome.closeMillis).toBe(3000)
      expect(outcome.finSent).toBe(false)
      expect(outcome.lingerExpired).toBe(true)
      expect(peer.destroyed()).toBe(true)
    }))

  it.scoped("abort destroys at once and hands back every queued frame", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 10 })
      peer.setReading(false)
      const conn = yield* Connection.make(t)
      for (let i = 0; i < 5; i++) yield* conn.send(frame(i, 20))
      const outcome = yield* conn.abort("fatal")
      expect(outcome.reason).toEqual(DisconnectReason.Aborted({ message: "fatal" }))
      expect(outcome.closeMillis).toBe(0)
      expect(outcome.undelivered.length + (outcome.truncated ? 1 : 0) + outcome.delivered).toBe(5)
      expect(peer.destroyed()).toBe(true)
    }))

  it.scoped("the peer's EOF closes the connection with PeerClosed and ends the inbound stream", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t)
      yield* peer.write(Framing.encode(conn.codec, Framing.utf8("last words")))
      yield* peer.end
      const frames = yield* Stream.runCollect(conn.incoming)
      expect(Chunk.toArray(frames).map(Framing.text)).toEqual(["last words"])
      expect((yield* conn.closed)._tag).toBe("PeerClosed")
      const err = yield* Effect.flip(conn.send(frame(1)))
      expect(err).toMatchObject({ _tag: "ConnectionClosed", reason: { _tag: "PeerClosed" } })
    }))

  it.scoped("read: a chunk of everything queued, waiting while empty; none after the EOF and the last frame", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t)
      const enc = (s: string) => Framing.encode(conn.codec, Framing.utf8(s))
      yield* peer.write(enc("a"))
      yield* peer.write(enc("b"))
      const first = yield* conn.read
      expect(Option.map(first, (c) => Chunk.toArray(c).map(Framing.text))).toEqual(Option.some(["a", "b"]))
      // nothing queued: read waits until the next frame arrives
      const waiting = yield* Effect.fork(conn.read)
      yield* Effect.yieldNow()
      expect(waiting.unsafePoll()).toBeNull()
      yield* peer.write(enc("c"))
      const second = yield* Fiber.join(waiting)
      expect(Option.map(second, (c) => Chunk.toArray(c).map(Framing.text))).toEqual(Option.some(["c"]))
      yield* peer.write(enc("last"))
      yield* peer.end
      const third = yield* conn.read
      expect(Option.map(third, (c) => Chunk.toArray(c).map(Framing.text))).toEqual(Option.some(["last"]))
      expect(yield* conn.read).toEqual(Option.none())
      expect(yield* conn.read).toEqual(Option.none())
      expect((yield* conn.closed)._tag).toBe("PeerClosed")
    }))

  it.scoped("read keeps the inbound backpressure: a reader stalled at inboundCapacity resumes when read takes", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, { inboundCapacity: 4 })
      for (let i = 0; i < 10; i++) yield* peer.write(Framing.encode(conn.codec, Framing.utf8(`m${i}`)))
      yield* peer.end
      const got: Array<string> = []
      let chunks = 0
      while (true) {
        const next = yield* conn.read
        if (Option.isNone(next)) break
        chunks++
        // never more than the capacity (plus what one transport read decodes) at once
        expect(Chunk.size(next.value)).toBeLessThanOrEqual(10)
        for (const f of next.value) got.push(Framing.text(f))
      }
      expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`))
      expect(chunks).toBeGreaterThan(1)
      expect(conn.unsafeStats().framesIn).toBe(10)
    }))

  it.scoped("runForEachChunk: every frame in order until the EOF; a failure of the callback ends the loop with it", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, { inboundCapacity: 3 })
      for (let i = 0; i < 20; i++) yield* peer.write(Framing.encode(conn.codec, Framing.utf8(`m${i}`)))
      yield* peer.end
      const got: Array<string> = []
      yield* Connection.runForEachChunk(conn, (frames) => Effect.sync(() => got.push(...Chunk.toArray(frames).map(Framing.text))))
      expect(got).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`))

      const [t2, peer2] = yield* Transport.memoryPair()
      const conn2 = yield* Connection.make(t2)
      yield* peer2.write(Framing.encode(conn2.codec, Framing.utf8("boom")))
      const err = yield* Effect.flip(Connection.runForEachChunk(conn2, () => Effect.fail("handler failed" as const)))
      expect(err).toBe("handler failed")
    }))

  it.scoped("a reset ends the connection with an I/O reason", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t)
      yield* peer.reset
      const reason = yield* conn.closed
      expect(reason).toMatchObject({ _tag: "IoError", code: "ECONNRESET" })
    }))

  it.scoped("an oversized inbound frame ends the connection with FrameTooLarge; nothing after it is delivered", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const codec = Framing.lengthPrefixed({ maxFrameBytes: 16 })
      const conn = yield* Connection.make(t, { codec })
      const big = Framing.lengthPrefixed().encodeChunks(new Uint8Array(17))
      yield* peer.write(Framing.encode(codec, Framing.utf8("ok")))
      yield* peer.write(Buffer.concat(big))
      yield* peer.write(Framing.encode(codec, Framing.utf8("after")))
      yield* peer.end
      const frames = yield* Stream.runCollect(conn.incoming)
      expect(Chunk.toArray(frames).map(Framing.text)).toEqual(["ok"])
      expect(yield* conn.closed).toEqual(DisconnectReason.FrameTooLarge({ size: 17, max: 16 }))
    }))

  it.scoped("an oversized outbound frame fails that send and leaves the connection unharmed", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, { codec: Framing.lengthPrefixed({ maxFrameBytes: 4 }) })
      const err = yield* Effect.flip(conn.send(new Uint8Array(5)))
      expect(err).toMatchObject({ _tag: "FrameError", reason: "FrameTooLarge", size: 5, max: 4 })
      yield* conn.send(new Uint8Array(4))
      yield* Effect.repeat(Effect.sync(() => peer.received().length), { until: (n) => n === 8 })
      expect(yield* conn.state).toBe("Active")
    }))

  it.scoped("trySend reports a full queue instead of waiting", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 1 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, { sendQueueCapacity: 2, maxBatchFrames: 1 })
      expect(yield* conn.trySend(frame(0))).toBe("accepted")
      while (conn.unsafeStats().queueDepth > 0) yield* Effect.yieldNow() // the writer takes it (and stalls)
      const results: Array<string> = []
      for (let i = 1; i < 5; i++) results.push(yield* conn.trySend(frame(i)))
      // one in flight (stuck in the "kernel"), two queued, the rest refused
      expect(results).toEqual(["accepted", "accepted", "full", "full"])
      const outcome = yield* conn.abort()
      expect(outcome.undelivered.length + (outcome.truncated ? 1 : 0) + outcome.delivered).toBe(3)
    }))

  it.scoped("the state is observable as a stream of changes", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      peer.setIgnoreFin(true)
      const conn = yield* Connection.make(t, { lingerTimeout: "1 second" })
      const states = yield* Effect.fork(Stream.runCollect(Stream.takeUntil(conn.stateChanges, (s) => s === "Closed")))
      yield* Effect.yieldNow()
      const closing = yield* Effect.fork(conn.close())
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      expect(Chunk.toArray(yield* Fiber.join(states))).toEqual(["Active", "Draining", "Closing", "Closed"])
      expect(Option.isSome(Option.some(1))).toBe(true)
    }))
})
