/**
 * Real sockets on loopback against misbehaving peers: graceful close, a stubborn
 * peer that never sends FIN, a reset mid-stream, ordering under concurrency,
 * oversized frames, sends after the peer left, and no leaked sockets or fibers.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Option, Stream, Supervisor } from "effect"
import * as Net from "node:net"
import { Connection, Framing } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { awaitEvent, collectFrames, rawServer } from "./helpers/rawPeer.js"
import { tlsServer } from "./helpers/tls.js"

const within = <A, E, R>(ms: number, what: string, self: Effect.Effect<A, E, R>) => Testing.within(ms, what, self)

describe("Connection (loopback)", () => {
  it.scopedLive("after close the peer reads EOF within 200 ms, with every frame before it", () =>
    Effect.gen(function*() {
      const server = yield* rawServer()
      const conn = yield* Connection.connectTcp({ port: server.port })
      const peer = yield* Queue_take(server)
      const frames = collectFrames(peer)
      const eof = yield* Effect.fork(awaitEvent(peer, "end"))
      for (let i = 0; i < 100; i++) yield* conn.send(Framing.utf8(`frame ${i}`))
      const t0 = performance.now()
      const outcome = yield* conn.close("done")
      const eofAt = yield* within(200, "peer EOF", Fiber.join(eof))
      expect(eofAt - t0).toBeLessThan(200)
      expect(frames.map((f) => f.toString())).toEqual(Array.from({ length: 100 }, (_, i) => `frame ${i}`))
      expect(outcome).toMatchObject({ delivered: 100, undelivered: [], drained: true, finSent: true, peerEof: true })
      expect(conn.unsafeStats().transport.socket?.destroyed).toBe(true)
    }))

  it.scopedLive("a stubborn peer (reads, never ends): close completes at lingerTimeout + ≤ 100 ms and destroys", () =>
    Effect.gen(function*() {
      const server = yield* rawServer({ allowHalfOpen: true })
      const conn = yield* Connection.connectTcp({ port: server.port, lingerTimeout: "800 millis" })
      const peer = yield* Queue_take(server)
      peer.resume() // keeps reading, never ends its side
      const peerSawFin = yield* Effect.fork(awaitEvent(peer, "end"))
      yield* conn.send(Framing.utf8("hello"))
      const t0 = performance.now()
      const outcome = yield* conn.close()
      const elapsed = performance.now() - t0
      expect(elapsed).toBeGreaterThanOrEqual(795)
      expect(elapsed).toBeLessThanOrEqual(900)
      expect(outcome).toMatchObject({ lingerExpired: true, finSent: true, peerEof: false, delivered: 1 })
      expect(conn.unsafeStats().transport.socket?.destroyed).toBe(true)
      yield* within(1000, "peer to see our FIN", Fiber.join(peerSawFin))
    }))

  it.scopedLive("a peer that resets mid-stream: closed completes with an I/O reason, nothing thrown", () =>
    Effect.gen(function*() {
      const server = yield* rawServer({
        onSocket: (s) => s.once("data", () => s.resetAndDestroy())
      })
      const conn = yield* Connection.connectTcp({ port: server.port })
      const payload = new Uint8Array(16 * 1024)
      const sender = yield* Effect.fork(
        Effect.forever(conn.send(payload)).pipe(Effect.flip)
      )
      const reason = yield* within(3000, "closed", conn.closed)
      expect(reason._tag).toBe("IoError")
      if (reason._tag === "IoError") expect(["ECONNRESET", "EPIPE"]).toContain(reason.code)
      const sendError = yield* within(3000, "the sender to fail", Fiber.join(sender))
      expect(sendError._tag).toBe("ConnectionClosed")
      const outcome = yield* conn.outcome
      expect(outcome.delivered).toBeGreaterThanOrEqual(0)
      expect(conn.unsafeStats().transport.socket?.destroyed).toBe(true)
    }))

  it.scopedLive("10,000 sends from 50 concurrent fibers arrive exactly once, in per-fiber order", () =>
    Effect.gen(function*() {
      const server = yield* rawServer()
      const conn = yield* Connection.connectTcp({ port: server.port, sendQueueCapacity: 64 })
      const peer = yield* Queue_take(server)
      const frames = collectFrames(peer)
      yield* Effect.forEach(
        Array.from({ length: 50 }, (_, f) => f),
        (f) => Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => conn.send(Framing.utf8(`${f}:${i}`)), {
          discard: true
        }),
        { concurrency: "unbounded", discard: true }
      )
      const outcome = yield* conn.close()
      expect(outcome.delivered).toBe(10_000)
      expect(outcome.undelivered).toEqual([])
      // close waited for the peer's EOF, which the peer sends after reading everything
      expect(outcome.peerEof).toBe(true)
      expect(frames.length).toBe(10_000)
      const next = new Map<number, number>()
      for (const raw of frames) {
        const [f, i] = raw.toString().split(":").map(Number) as [number, number]
        expect(i).toBe(next.get(f) ?? 0)
        next.set(f, i + 1)
      }
      expect(next.size).toBe(50)
      for (const n of next.values()) expect(n).toBe(200)
    }))

  it.scopedLive("inbound frames arrive in order through the stream; the peer's EOF ends it", () =>
    Effect.gen(function*() {
      const server = yield* rawServer()
      const conn = yield* Connection.connectTcp({ port: server.port })
      const peer = yield* Queue_take(server)
      const codec = Framing.lengthPrefixed()
      for (let i = 0; i < 1000; i++) peer.write(Framing.encode(codec, Framing.utf8(`m${i}`)))
      peer.end()
      const got = yield* within(3000, "the stream to end", Stream.runCollect(conn.incoming))
      expect(Chunk.toArray(got).map(Framing.text)).toEqual(Array.from({ length: 1000 }, (_, i) => `m${i}`))
      expect((yield* conn.closed)._tag).toBe("PeerClosed")
    }))

  it.scopedLive("a send after the peer closed fails with a typed error, no crash", () =>
    Effect.gen(function*() {
      const server = yield* rawServer({ onSocket: (s) => s.end() })
      const conn = yield* Connection.connectTcp({ port: server.port })
      const reason = yield* within(2000, "closed", conn.closed)
      expect(reason._tag).toBe("PeerClosed")
      const err = yield* Effect.flip(conn.send(Framing.utf8("too late")))
      expect(err).toMatchObject({ _tag: "ConnectionClosed", reason: { _tag: "PeerClosed" } })
      expect(yield* Effect.flip(conn.trySend(Framing.utf8("too late")))).toMatchObject({ _tag: "ConnectionClosed" })
    }))

  it.scopedLive("an oversized inbound frame ends the connection with FrameTooLarge", () =>
    Effect.gen(function*() {
      const server = yield* rawServer()
      const conn = yield* Connection.connectTcp({
        port: server.port,
        codec: Framing.lengthPrefixed({ maxFrameBytes: 1024 * 1024 })
      })
      const peer = yield* Queue_take(server)
      const header = Buffer.alloc(4)
      header.writeUInt32BE(2 * 1024 * 1024)
      peer.write(header)
      peer.write(Buffer.alloc(64 * 1024)) // the body starts arriving; nothing of it is delivered
      const reason = yield* within(2000, "closed", conn.closed)
      expect(reason).toMatchObject({ _tag: "FrameTooLarge", size: 2 * 1024 * 1024, max: 1024 * 1024 })
      const got = yield* Stream.runCollect(conn.incoming)
      expect(Chunk.size(got)).toBe(0)
    }))

  it.scopedLive("a slow consumer pauses the socket (backpressure) without losing frames", () =>
    Effect.gen(function*() {
      const server = yield* rawServer()
      const conn = yield* Connection.connectTcp({ port: server.port, inboundCapacity: 8, readHighWaterMark: 16 * 1024 })
      const peer = yield* Queue_take(server)
      const codec = Framing.lengthPrefixed()
      const frame = new Uint8Array(1024)
      let writes = 0
      let blocked = false
      // write until the kernel pushes back on the peer: only possible if we stopped reading
      for (let i = 0; i < 100_000 && !blocked; i++) {
        blocked = !peer.write(Framing.encode(codec, frame))
        writes++
      }
      expect(blocked).toBe(true)
      peer.end()
      const count = yield* within(5000, "all frames", Stream.runCount(conn.incoming))
      expect(count).toBe(writes)
    }))

  it.scopedLive("a send storm cannot starve the event loop: timers still fire on time", () =>
    Effect.gen(function*() {
      const server = yield* rawServer()
      const conn = yield* Connection.connectTcp({ port: server.port, sendQueueCapacity: 256 })
      const peer = yield* Queue_take(server)
      peer.resume()
      const frame = Framing.utf8("storm")
      const producers = yield* Effect.forEach(
        Array.from({ length: 8 }),
        () => Effect.fork(Effect.forever(conn.send(frame))),
        { discard: false }
      )
      const t0 = performance.now()
      yield* Effect.sleep("100 millis") // a live timer, as watchdogs and write deadlines use
      const late = performance.now() - t0 - 100
      expect(late).toBeLessThan(250)
      expect(conn.unsafeStats().framesOut).toBeGreaterThan(0)
      yield* Effect.forEach(producers, Fiber.interrupt, { discard: true })
      yield* conn.abort()
    }))

  it.scopedLive("connectTimeout fires on a connect that never completes (TLS handshake never answered)", () =>
    Effect.gen(function*() {
      const server = yield* rawServer({ allowHalfOpen: true }) // accepts TCP, never speaks TLS
      const t0 = performance.now()
      const err = yield* within(
        3000,
        "the connect timeout",
        Effect.flip(Connection.connectTls({ port: server.port, connectTimeout: "300 millis", servername: "localhost" }))
      )
      expect(err).toMatchObject({ _tag: "TransportError", reason: "ConnectTimeout" })
      expect(performance.now() - t0).toBeLessThan(1000)
      const accepted = yield* Queue_take(server)
      const ended = awaitEvent(accepted, "end")
      accepted.resume() // consume the ClientHello so the FIN behind it is seen
      if (!accepted.readableEnded) yield* within(1000, "the abandoned socket to be closed (FIN)", ended)
    }))

  it.scopedLive("TLS: round trip and graceful close", () =>
    Effect.gen(function*() {
      const server = yield* tlsServer
      const conn = yield* Connection.connectTls({ port: server.port, ca: [server.cert], servername: "localhost" })
      yield* conn.send(Framing.utf8("over tls"))
      const echoed = yield* within(2000, "echo", Stream.runHead(conn.incoming))
      expect(Option.map(echoed, Framing.text)).toEqual(Option.some("over tls"))
      const outcome = yield* conn.close()
      expect(outcome).toMatchObject({ finSent: true, peerEof: true, lingerExpired: false })
      expect(conn.kind).toBe("tls")
    }))

  it.scopedLive("no leaks: after the scope closes its sockets are destroyed and its fibers are gone", () =>
    Effect.gen(function*() {
      const supervisor = yield* Supervisor.track
      const server = yield* rawServer({ allowHalfOpen: true })
      const sockets: Array<Net.Socket> = []
      yield* Effect.scoped(
        Effect.gen(function*() {
          for (let i = 0; i < 5; i++) {
            const conn = yield* Connection.connectTcp({ port: server.port, lingerTimeout: "100 millis" })
            yield* conn.send(Framing.utf8("x"))
            sockets.push(conn.unsafeStats().transport.socket!)
          }
        })
      ).pipe(Effect.supervised(supervisor))
      expect(sockets.every((s) => s.destroyed)).toBe(true)
      const fibers = yield* supervisor.value
      const alive = fibers.filter((f) => f.unsafePoll() === null)
      expect(alive).toEqual([])
    }))
})

// the accepted socket of the most recent connection
const Queue_take = (server: { readonly accepted: import("effect").Queue.Dequeue<Net.Socket> }) =>
  within(2000, "accept", Effect.flatMap(Effect.succeed(server.accepted), (q) => q.take))

