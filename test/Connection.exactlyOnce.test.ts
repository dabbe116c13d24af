/**
 * Exactly once at the kernel boundary (issue 12 §1): a connection to a peer that
 * stops reading ends while a write is in progress; afterwards the peer reads to
 * the end. What it received and what the outcome hands back must never overlap,
 * and together (with the one frame cut in the middle, if any) they are every
 * accepted frame, in order. Also the memory transport (TestClock) and sendAll's
 * accepted count (§6).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Schedule, Scope, TestClock } from "effect"
import { Connection, DisconnectReason, Framing, Transport, Watchdog } from "effect-tether"
import { decodeReceived, duplicates, numbered, seqOf, silentPeer, type SilentPeer } from "./helpers/exactPeer.js"

const FRAMES = 6000

/** Sends the numbered frames in order until one is refused; the numbers accepted. */
const produce = (conn: Connection.Connection) =>
  Effect.gen(function*() {
    const accepted: Array<number> = []
    const fiber = yield* Effect.fork(Effect.gen(function*() {
      for (let seq = 0; seq < FRAMES; seq++) {
        const ok = yield* conn.send(numbered(seq)).pipe(Effect.as(true), Effect.catchTag("ConnectionClosed", () => Effect.succeed(false)))
        if (!ok) return
        accepted.push(seq)
      }
    }))
    return { accepted, fiber }
  })

/** Waits (bounded) until a write is stuck in progress: Node holds bytes the kernel has no room for. */
const awaitStuck = (conn: Connection.Connection) =>
  Effect.suspend(() =>
    conn.unsafeStats().transport.queuedBytes > 0 && conn.unsafeStats().queueDepth > 0
      ? Effect.void
      : Effect.fail("not yet")
  ).pipe(
    Effect.retry(Schedule.spaced("10 millis")),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the writer never got stuck") })
  )

/** The peer reads everything; then the accounting must be exact. */
const verify = (
  peer: SilentPeer,
  conn: Connection.Connection,
  outcome: Connection.CloseOutcome,
  accepted: ReadonlyArray<number>
) =>
  Effect.gen(function*() {
    const bytes = yield* peer.readToEnd(0)
    const { seqs, tailBytes } = decodeReceived(bytes)
    const undelivered = outcome.undelivered.map(seqOf)
    const truncated = outcome.truncated === undefined ? [] : [seqOf(outcome.truncated)]
    expect(undelivered.length).toBeGreaterThan(0) // the ending did cut the stream short
    expect(duplicates(seqs, undelivered), "frames both received and handed back").toBe(0)
    expect([...seqs, ...truncated, ...undelivered]).toEqual(accepted)
    expect(outcome.delivered).toBe(seqs.length)
    // a frame cut in the middle is exactly the peer's undecodable tail
    expect(tailBytes > 0).toBe(truncated.length > 0)
    expect(conn.unsafeStats().transport.bytesHandedToKernel).toBe(bytes.length)
    return { received: seqs.length, truncated: truncated.length, undelivered: undelivered.length }
  })

const base = { sendQueueCapacity: 8192, drainTimeout: "600 millis" } as const

describe("Connection: exactly once at the kernel boundary (loopback)", () => {
  it.live("close with a drain timeout", () =>
    Effect.scoped(Effect.gen(function*() {
      const peer = yield* silentPeer()
      const conn = yield* Connection.connectTcp({ port: peer.port, ...base })
      const { accepted, fiber } = yield* produce(conn)
      yield* awaitStuck(conn)
      const outcome = yield* conn.close()
      yield* Fiber.join(fiber)
      expect(outcome.drained).toBe(false)
      yield* verify(peer, conn, outcome, accepted)
    })), 20_000)

  it.live("abort", () =>
    Effect.scoped(Effect.gen(function*() {
      const peer = yield* silentPeer()
      const conn = yield* Connection.connectTcp({ port: peer.port, ...base })
      const { accepted, fiber } = yield* produce(conn)
      yield* awaitStuck(conn)
      const outcome = yield* conn.abort()
      yield* Fiber.join(fiber)
      expect(outcome.reason._tag).toBe("Aborted")
      yield* verify(peer, conn, outcome, accepted)
    })), 20_000)

  it.live("write timeout", () =>
    Effect.scoped(Effect.gen(function*() {
      const peer = yield* silentPeer()
      const conn = yield* Connection.connectTcp({ port: peer.port, ...base, writeTimeout: "400 millis" })
      const { accepted, fiber } = yield* produce(conn)
      const outcome = yield* conn.outcome.pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("no write timeout") }))
      yield* Fiber.join(fiber)
      expect(outcome.reason._tag).toBe("WriteTimeout")
      yield* verify(peer, conn, outcome, accepted)
    })), 20_000)

  it.live("a watchdog reap (send stall)", () =>
    Effect.scoped(Effect.gen(function*() {
      const peer = yield* silentPeer()
      const conn = yield* Connection.connectTcp({
        port: peer.port,
        ...base,
        writeTimeout: "1 minute",
        watchdogs: [Watchdog.reaper({ stallTimeout: "500 millis", probeInterval: "100 millis" })]
      })
      const { accepted, fiber } = yield* produce(conn)
      const outcome = yield* conn.outcome.pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("never reaped") }))
      yield* Fiber.join(fiber)
      expect(outcome.reason._tag).toBe("SendStalled")
      yield* verify(peer, conn, outcome, accepted)
    })), 20_000)

  it.live("scope close", () =>
    Effect.scoped(Effect.gen(function*() {
      const peer = yield* silentPeer()
      const scope = yield* Scope.make()
      const conn = yield* Connection.connectTcp({ port: peer.port, ...base }).pipe(Scope.extend(scope))
      const { accepted, fiber } = yield* produce(conn)
      yield* awaitStuck(conn)
      yield* Scope.close(scope, Exit.void)
      const outcome = yield* conn.outcome
      yield* Fiber.join(fiber)
      expect(outcome.reason).toEqual(DisconnectReason.LocalClose({ message: "scope closed" }))
      yield* verify(peer, conn, outcome, accepted)
    })), 20_000)

  it.live("TLS: abort (only complete TLS records count as reaching the peer)", () =>
    Effect.scoped(Effect.gen(function*() {
      const peer = yield* silentPeer({ tls: true })
      const conn = yield* Connection.connectTls({ port: peer.port, rejectUnauthorized: false, ...base })
      yield* peer.awaitSockets(1)
      const { accepted, fiber } = yield* produce(conn)
      yield* awaitStuck(conn)
      const outcome = yield* conn.abort()
      yield* Fiber.join(fiber)
      yield* verify(peer, conn, outcome, accepted)
    })), 20_000)
})

describe("Connection: when Node cannot tell (guarded fallback)", () => {
  it.live("no writeQueueSize on the handle: the batch in flight is handed back whole (at least once, nothing lost)", () =>
    Effect.scoped(Effect.gen(function*() {
      const peer = yield* silentPeer()
      const conn = yield* Connection.connectTcp({ port: peer.port, ...base })
      // hide the semi-private field, as a Node version without it would
      const handle = (conn.unsafeStats().transport.socket as unknown as { _handle: object })._handle
      Object.defineProperty(handle, "writeQueueSize", { get: () => undefined, configurable: true })
      const { accepted, fiber } = yield* produce(conn)
      yield* awaitStuck(conn)
      const outcome = yield* conn.abort()
      yield* Fiber.join(fiber)
      const bytes = yield* peer.readToEnd(0)
      const { seqs } = decodeReceived(bytes)
      const undelivered = outcome.undelivered.map(seqOf)
      expect(outcome.truncated).toBeUndefined()
      expect(outcome.delivered).toBeLessThanOrEqual(seqs.length)
      // nothing lost: every accepted frame was received or handed back (some possibly both)
      expect([...new Set([...seqs, ...undelivered])].sort((a, b) => a - b)).toEqual(accepted)
      expect(conn.unsafeStats().transport.bytesHandedToKernel).toBeLessThanOrEqual(bytes.length)
    })), 20_000)
})

describe("Connection: exactly once on the memory transport (TestClock)", () => {
  it.scoped("a write timeout in the middle of a frame: the cut frame is truncated, the rest handed back", () =>
    Effect.gen(function*() {
      // the far end's kernel takes 10 bytes and then nothing: the 2nd frame (4 + 5 bytes) is cut after 1 byte
      const [transport, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 10 })
      peer.setReading(false)
      const conn = yield* Connection.make(transport, { writeTimeout: "1 second", maxBatchFrames: 16 })
      const frames = ["abcde", "fghij", "klmno"].map(Framing.utf8)
      yield* conn.sendAll(frames)
      const outcomeFiber = yield* Effect.fork(conn.outcome)
      yield* TestClock.adjust("1 second")
      const outcome = yield* Fiber.join(outcomeFiber)
      expect(outcome.reason._tag).toBe("WriteTimeout")
      expect(outcome.delivered).toBe(1)
      expect(outcome.truncated).toEqual(frames[1])
      expect(outcome.undelivered).toEqual([frames[2]])
      expect(transport.stats().bytesHandedToKernel).toBe(10)
      expect(outcome.drained).toBe(false)
    }))

  it.scoped("a write cut exactly at a frame boundary: nothing truncated", () =>
    Effect.gen(function*() {
      const [transport, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 9 })
      peer.setReading(false)
      const conn = yield* Connection.make(transport, { writeTimeout: "1 second" })
      const frames = ["abcde", "fghij"].map(Framing.utf8)
      yield* conn.sendAll(frames)
      yield* Effect.yieldNow()
      const outcome = yield* conn.abort()
      expect(outcome.delivered).toBe(1)
      expect(outcome.truncated).toBeUndefined()
      expect(outcome.undelivered).toEqual([frames[1]])
      expect(transport.stats().bytesHandedToKernel).toBe(9)
    }))
})

describe("Connection.sendAll: the accepted count when it fails partway (§6)", () => {
  it.live("ConnectionClosed carries how many frames were queued; those are accounted for in the outcome", () =>
    Effect.scoped(Effect.gen(function*() {
      const [transport, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 0 })
      peer.setReading(false)
      // the queue holds 3 frames while one (a batch of 1) is in flight and never completes
      const conn = yield* Connection.make(transport, { sendQueueCapacity: 3, maxBatchFrames: 1 })
      const frames = Array.from({ length: 10 }, (_, i) => Framing.utf8(`f${i}x`))
      const sending = yield* Effect.fork(Effect.flip(conn.sendAll(frames)))
      // bounded wait until the writer holds its batch and the queue is full behind it
      yield* Effect.suspend(() =>
        transport.stats().queuedBytes > 0 && conn.unsafeStats().queueDepth === 3 ? Effect.void : Effect.fail("not yet")
      ).pipe(Effect.retry(Schedule.spaced("1 millis")), Effect.timeout("2 seconds"))
      const outcome = yield* conn.abort()
      const err = yield* Fiber.join(sending)
      expect(err._tag).toBe("ConnectionClosed")
      const accepted = (err as Connection.ConnectionClosed).accepted
      expect(accepted).toBe(4) // 1 in flight + 3 queued
      expect(outcome.delivered + (outcome.truncated ? 1 : 0) + outcome.undelivered.length).toBe(accepted)
      expect(outcome.undelivered).toEqual(frames.slice(0, accepted))
    })))

  it.scoped("a sendAll on a closed connection accepted nothing", () =>
    Effect.gen(function*() {
      const [transport] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(transport)
      yield* conn.abort()
      const err = yield* Effect.flip(conn.sendAll([Framing.utf8("a")]))
      expect(err).toMatchObject({ _tag: "ConnectionClosed", accepted: 0 })
    }))
})
