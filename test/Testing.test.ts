/**
 * The test kit (`tether/testing`) does what it says: every misbehaving peer
 * misbehaves the way its documentation says, against a raw client or a real
 * tether connection on loopback, and is gone when its scope closes; the
 * TestClock helpers are bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Either, Exit, Fiber, Queue, Schedule, Scope, TestClock } from "effect"
import * as Net from "node:net"
import { Connection, Dialer, Framing, WebSocket } from "effect-tether"
import * as Testing from "effect-tether/testing"

/** A raw client socket, destroyed with the scope. */
const client = (port: number, options?: { readonly allowHalfOpen?: boolean }) =>
  Effect.acquireRelease(
    Effect.async<Net.Socket>((resume) => {
      const socket = Net.connect({ host: "127.0.0.1", port, allowHalfOpen: options?.allowHalfOpen ?? false })
      socket.on("error", () => {})
      socket.once("connect", () => resume(Effect.succeed(socket)))
    }),
    (s) => Effect.sync(() => s.destroy())
  )

const event = (socket: Net.Socket, name: "end" | "close") =>
  Effect.async<void>((resume) => {
    const f = () => resume(Effect.void)
    socket.once(name, f)
    return Effect.sync(() => socket.off(name, f))
  })

const errorCode = (socket: Net.Socket) =>
  Effect.async<string | undefined>((resume) => {
    socket.once("error", (e: NodeJS.ErrnoException) => resume(Effect.succeed(e.code)))
  })

/** Waits, one event-loop turn at a time, with a live bound. */
const liveUntil = (what: string, cond: () => boolean) =>
  Testing.within(
    "5 seconds",
    what,
    Effect.repeat(Testing.macrotask, { until: () => cond() })
  )

describe("Testing (TestClock helpers)", () => {
  it.effect("eventually: returns once the condition holds, fails with a TestingError after maxTurns", () =>
    Effect.gen(function*() {
      let done = false
      yield* Effect.fork(Effect.zipRight(Testing.macrotask, Effect.sync(() => (done = true))))
      yield* Testing.eventually(() => done, { what: "the worker" })
      expect(done).toBe(true)
      const never = yield* Effect.either(Testing.eventually(() => false, { what: "nothing", maxTurns: 20 }))
      expect(Either.isLeft(never) && never.left.message).toContain("never: nothing")
    }))

  it.effect("awaitSleeper: waits for a fiber to sleep until the given time; bounded when nobody does", () =>
    Effect.gen(function*() {
      const woke = yield* Effect.fork(
        Effect.zipRight(Effect.zipRight(Testing.settle, Effect.sleep("10 seconds")), Clock.currentTimeMillis)
      )
      yield* Testing.awaitSleeper(10_000)
      yield* TestClock.adjust("10 seconds")
      expect(yield* Fiber.join(woke)).toBe(10_000)
      const none = yield* Effect.either(Testing.awaitSleeper(99_000, { maxTurns: 50 }))
      expect(Either.isLeft(none) && none.left.message).toContain("no fiber sleeps until 99000")
    }))

  it.effect("adjustTo moves the clock to an absolute time", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1 second")
      yield* Testing.adjustTo(30_000)
      expect(yield* Clock.currentTimeMillis).toBe(30_000)
    }))

  it.scoped("memoryServer: dials in memory, records attempts in virtual time, can refuse; settle delivers sends", () =>
    Effect.gen(function*() {
      const server = yield* Testing.memoryServer()
      server.setRefusing(true)
      const dialer = yield* Dialer.make({ connect: server.connect, backoff: Schedule.spaced("1 second") })
      yield* Testing.settle
      expect(server.attempts).toEqual([0])
      server.setRefusing(false)
      yield* TestClock.adjust("1 second")
      const peer = yield* Queue.take(server.peers)
      yield* dialer.send(Framing.utf8("hello"))
      yield* Testing.settle
      expect(Testing.receivedFrames(peer)).toEqual(["hello"])
      expect(server.attempts).toEqual([0, 1000])
      expect(yield* dialer.status).toBe("Connected")
    }))

  it.scoped("memoryPair is Transport.memoryPair: its far end sees a connection's frames", () =>
    Effect.gen(function*() {
      const [transport, peer] = yield* Testing.memoryPair()
      const conn = yield* Connection.make(transport)
      yield* conn.send(Framing.utf8("a"))
      yield* conn.send(Framing.utf8("b"))
      yield* Testing.settle
      expect(Testing.receivedFrames(peer)).toEqual(["a", "b"])
    }))
})

describe("Testing (TCP peers on loopback)", () => {
  it.live("within fails with a TestingError naming what it waited for", () =>
    Effect.gen(function*() {
      const r = yield* Effect.either(Testing.within(30, "the reply", Effect.never))
      expect(Either.isLeft(r) && r.left.message).toMatch(/timed out after 30ms waiting for the reply/)
    }))

  it.live("a peer's scope closes its server and destroys its sockets", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const peer = yield* Scope.extend(Testing.peer(), scope)
      const socket = yield* Scope.extend(client(peer.port), scope)
      yield* Queue.take(peer.accepted)
      const closed = yield* Effect.fork(event(socket, "close"))
      yield* Scope.close(scope, Exit.void)
      yield* Testing.within("2 seconds", "the client socket to close", Fiber.join(closed))
      const refused = yield* Effect.either(Effect.scoped(Connection.connectTcp({ port: peer.port })))
      expect(Either.isLeft(refused) && refused.left.code).toBe("ECONNREFUSED")
    }))

  it.scopedLive("stubbornPeer: reads everything, never answers our FIN: a close ends by its linger bound", () =>
    Effect.gen(function*() {
      const peer = yield* Testing.stubbornPeer()
      const conn = yield* Connection.connectTcp({ port: peer.port, lingerTimeout: "300 millis" })
      yield* conn.send(Framing.utf8("hello"))
      yield* liveUntil("the peer to read the frame", () => peer.bytesReceived() === 9)
      const outcome = yield* conn.close()
      expect(outcome).toMatchObject({ lingerExpired: true, finSent: true, peerEof: false, delivered: 1 })
    }))

  it.scopedLive("a plain peer, for contrast: answers FIN with FIN, the close is graceful", () =>
    Effect.gen(function*() {
      const peer = yield* Testing.peer({ onSocket: (s) => s.resume() })
      const conn = yield* Connection.connectTcp({ port: peer.port, lingerTimeout: "5 seconds" })
      const outcome = yield* conn.close()
      expect(outcome).toMatchObject({ lingerExpired: false, peerEof: true })
    }))

  it.scopedLive("nonReaderPeer: reads nothing (the client's writes back up) until resumed, then everything", () =>
    Effect.gen(function*() {
      const peer = yield* Testing.nonReaderPeer()
      const socket = yield* client(peer.port)
      yield* peer.first
      const total = 32 * 1024 * 1024
      socket.write(Buffer.alloc(total))
      yield* Effect.repeatN(Testing.macrotask, 20)
      expect(peer.bytesReceived()).toBe(0)
      expect(socket.writableLength).toBeGreaterThan(0) // kernel buffers full: the rest waits in user space
      yield* peer.resume
      yield* liveUntil("the resumed peer to read everything", () => peer.bytesReceived() === total)
      expect(socket.writableLength).toBe(0)
    }))

  it.scopedLive("halfOpenPeer: sends its FIN at once and keeps reading what we send", () =>
    Effect.gen(function*() {
      const peer = yield* Testing.halfOpenPeer()
      const socket = yield* client(peer.port, { allowHalfOpen: true })
      yield* Testing.within("2 seconds", "the peer's FIN", event(socket, "end"))
      socket.write(Buffer.alloc(1000))
      yield* liveUntil("the half-open peer to read", () => peer.bytesReceived() === 1000)
      expect(socket.destroyed).toBe(false)
    }))

  it.scopedLive("resetPeer afterBytes: reads, then RST once it has read that much", () =>
    Effect.gen(function*() {
      const peer = yield* Testing.resetPeer({ afterBytes: 1000 })
      const socket = yield* client(peer.port)
      const code = yield* Effect.fork(errorCode(socket))
      socket.write(Buffer.alloc(500))
      yield* liveUntil("the first 500 bytes", () => peer.bytesReceived() === 500)
      expect(socket.destroyed).toBe(false)
      socket.write(Buffer.alloc(500))
      expect(yield* Testing.within("2 seconds", "the reset", Fiber.join(code))).toBe("ECONNRESET")
    }))

  it.scopedLive("resetPeer afterMillis: RST that long after accepting, seen by a connection as an I/O close", () =>
    Effect.gen(function*() {
      const peer = yield* Testing.resetPeer({ afterMillis: "50 millis" })
      const conn = yield* Connection.connectTcp({ port: peer.port })
      const reason = yield* Testing.within("2 seconds", "the connection to end", conn.closed)
      expect(reason._tag).toBe("IoError")
    }))

  it.scopedLive("slowAlivePeer: reads at its rate, no faster, and keeps reading", () =>
    Effect.gen(function*() {
      // 100 kB/s in 50 ms ticks: 5000 bytes a tick, so 30000 bytes take at least 6 ticks
      const peer = yield* Testing.slowAlivePeer({ bytesPerSecond: 100_000, tick: "50 millis" })
      const socket = yield* client(peer.port)
      yield* peer.first
      const t0 = performance.now()
      socket.write(Buffer.alloc(1024 * 1024))
      yield* liveUntil("30 kB read", () => peer.bytesReceived() >= 30_000)
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250)
      expect(peer.bytesReceived()).toBeLessThan(1024 * 1024)
      const before = peer.bytesReceived()
      yield* liveUntil("more read", () => peer.bytesReceived() > before)
    }))

  it.scopedLive("silentWebSocketPeer: takes the upgrade request, never answers: the client's handshake times out", () =>
    Effect.gen(function*() {
      const peer = yield* Testing.silentWebSocketPeer()
      const t0 = performance.now()
      const r = yield* Effect.either(WebSocket.connect(`ws://127.0.0.1:${peer.port}/feed`, { handshakeTimeout: "300 millis" }))
      expect(Either.isLeft(r)).toBe(true)
      expect(performance.now() - t0).toBeGreaterThanOrEqual(290)
      const head = yield* Testing.within("1 second", "the upgrade request", Queue.take(peer.upgradeRequests))
      expect(head).toMatch(/^GET \/feed HTTP\/1\.1\r\n/)
      expect(head.toLowerCase()).toContain("upgrade: websocket")
    }))

  it.live("freePort: nothing listens there", () =>
    Effect.gen(function*() {
      const port = yield* Testing.freePort()
      const r = yield* Effect.either(Effect.scoped(Connection.connectTcp({ port })))
      expect(Either.isLeft(r) && r.left.code).toBe("ECONNREFUSED")
    }))
})
