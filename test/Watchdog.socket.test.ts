/**
 * The watchdogs on real sockets (127.0.0.1), with short timeouts: a peer that
 * stops reading is reaped by the send-stall probe within stallTimeout + 2 ×
 * probeInterval (the slow-but-steady reader runs alone: test/serial/Watchdog.slowReader.test.ts); a
 * peer that closes or resets while nobody reads is noticed by the peer-gone
 * probe; a stubborn peer after `close` is destroyed by the liveness watchdog.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schedule } from "effect"
import * as Net from "node:net"
import { Connection, Framing, Watchdog } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { captureLogs, type LogLine } from "./helpers/logs.js"

const within = <A, E, R>(ms: number, what: string, self: Effect.Effect<A, E, R>) => Testing.within(ms, what, self)

/** A loopback server handing over its first accepted socket; everything is destroyed with the scope. */
const server = (options: Net.ServerOpts, onSocket?: (socket: Net.Socket) => void) =>
  Effect.map(Testing.peer({ ...options, onSocket }), (peer) => ({ port: peer.port, accepted: peer.first }))

const reaps = (lines: ReadonlyArray<LogLine>) =>
  lines.filter((l) => l.level === "WARN" && l.annotations["watchdog"] !== undefined)

const BIG = 256 * 1024

describe("Watchdog (loopback)", () => {
  it.scopedLive(
    "a peer that stops reading with > 8 MB queued is reaped within stallTimeout + 2 × probeInterval; every send fails typed",
    () => {
      const logs = captureLogs()
      return Effect.gen(function*() {
        const srv = yield* server({ pauseOnConnect: true }) // accepts, never reads a byte
        const conn = yield* Connection.connectTcp({
          port: srv.port,
          id: "non-reader",
          writeTimeout: "1 minute", // the reaper, not the write deadline, must end this
          sendQueueCapacity: 64,
          sendQueueHighWaterMark: 64 * BIG, // let the send queue itself hold 64 frames (the default bound is 1 MiB)
          watchdogs: [Watchdog.reaper({ stallTimeout: "2 seconds", probeInterval: "500 millis" })]
        })
        yield* srv.accepted
        const startedAt = performance.now()
        const payload = new Uint8Array(BIG).fill(1)
        const senders = yield* Effect.forEach(
          [1, 2, 3, 4],
          () => Effect.fork(Effect.flip(Effect.forever(conn.send(payload)))),
          { concurrency: "unbounded" }
        )
        // wait until more than 8 MB is queued toward the peer (send queue + Node buffer + kernel)
        const probe = Watchdog.makeProcNetProbe()
        const queued = Effect.gen(function*() {
          const row = yield* probe.sample({ stats: () => conn.unsafeStats().transport }, Date.now())
          return conn.unsafeStats().queueDepth * BIG + conn.unsafeStats().transport.queuedBytes + (row === "absent" || row === "skipped" ? 0 : row?.txQueue ?? 0)
        })
        let queuedAt8MB = 0
        yield* within(
          5000,
          "8 MB queued",
          Effect.repeat(Effect.tap(queued, (q) => (queuedAt8MB = q)), {
            until: (q) => q > 8 * 1024 * 1024,
            schedule: Schedule.spaced("20 millis")
          })
        )
        const at8MB = performance.now()
        const reason = yield* within(6000, "the reap", conn.closed)
        const reapedAt = performance.now()
        expect(reason._tag).toBe("SendStalled")
        const latency = reapedAt - at8MB
        console.log(
          `send-stall reap: ${Math.round(latency)} ms after > 8 MB queued (${queuedAt8MB} bytes), ` +
            `${Math.round(reapedAt - startedAt)} ms after the first send; reason: ${JSON.stringify(reason)}`
        )
        expect(latency).toBeLessThanOrEqual(2000 + 2 * 500 + 300)
        // every pending send failed with the typed error, carrying the reason
        for (const sender of senders) {
          const err = yield* within(1000, "a sender to fail", Fiber.join(sender))
          expect(err).toMatchObject({ _tag: "ConnectionClosed", reason: { _tag: "SendStalled" } })
        }
        expect(conn.unsafeStats().transport.socket?.destroyed).toBe(true)
        const outcome = yield* conn.outcome
        expect(outcome.undelivered.length).toBeGreaterThan(0)
        const lines = reaps(logs.lines)
        expect(lines.length).toBe(1)
        expect(lines[0]!.annotations).toMatchObject({ connection: "non-reader", reason: "SendStalled", source: "proc-net-tcp" })
        expect(lines[0]!.annotations["kernelQueuedBytes"]).toBeGreaterThan(0)
        expect(lines[0]!.annotations["secondsWithoutProgress"]).toBeGreaterThanOrEqual(2)
      }).pipe(Effect.provide(logs.layer))
    }
  )

  it.scopedLive("Node fallback figures (no kernel view): the non-reader is reaped as well", () =>
    Effect.gen(function*() {
      const srv = yield* server({ pauseOnConnect: true })
      const conn = yield* Connection.connectTcp({
        port: srv.port,
        writeTimeout: "1 minute",
        watchdogs: [Watchdog.sendStall({ stallTimeout: "1 second", probeInterval: "250 millis" })]
      }).pipe(
        Effect.provideService(Watchdog.TcpProbe, { sample: () => Effect.succeed(undefined), reads: () => 0 })
      )
      yield* srv.accepted
      const sender = yield* Effect.fork(Effect.flip(Effect.forever(conn.send(new Uint8Array(BIG)))))
      const t0 = performance.now()
      const reason = yield* within(6000, "the reap", conn.closed)
      expect(reason._tag).toBe("SendStalled")
      console.log(`send-stall reap (Node figures only): ${Math.round(performance.now() - t0)} ms after the first send`)
      expect((yield* Fiber.join(sender))._tag).toBe("ConnectionClosed")
    }))

  it.scopedLive("shared sampler: one /proc/net/tcp read per tick for all connections", () =>
    Effect.gen(function*() {
      const srv = yield* server({})
      const probe = Watchdog.makeProcNetProbe()
      const conns = yield* Effect.forEach(
        [1, 2, 3, 4, 5],
        () =>
          Connection.connectTcp({
            port: srv.port,
            watchdogs: [Watchdog.reaper({ stallTimeout: "1 second", probeInterval: "200 millis" })]
          }).pipe(Effect.provideService(Watchdog.TcpProbe, probe))
      )
      const readsBefore = probe.reads()
      const start = Date.now()
      yield* Effect.sleep("700 millis")
      const reads = probe.reads() - readsBefore
      const ticks = Math.floor(Date.now() / 200) - Math.floor(start / 200)
      console.log(`shared sampler: ${reads} table reads in ${ticks} ticks for ${conns.length} connections`)
      expect(reads).toBeGreaterThanOrEqual(1)
      expect(reads).toBeLessThanOrEqual(ticks + 1) // one per connection and tick would be ${5 * ticks}
    }))

  it.scopedLive("the peer's FIN while nobody reads: PeerGone (CLOSE_WAIT) at the next probe where nothing was delivered, graceful", () =>
    Effect.gen(function*() {
      const codec = Framing.lengthPrefixed()
      const srv = yield* server({ allowHalfOpen: true })
      const conn = yield* Connection.connectTcp({
        port: srv.port,
        codec,
        watchdogs: [Watchdog.peerGone({ probeInterval: "250 millis" })]
      })
      const peer = yield* srv.accepted
      // more frames than the inbound buffer holds: the reader blocks on delivery and never sees the EOF
      const frames = Array.from({ length: 3000 }, (_, i) => Framing.encode(codec, Framing.utf8(`f${i}`)))
      peer.end(Buffer.concat(frames))
      const t0 = performance.now()
      const outcome = yield* within(3000, "closed", conn.outcome)
      const latency = performance.now() - t0
      console.log(`peer-gone (FIN) detected after ${Math.round(latency)} ms`)
      expect(outcome.reason).toEqual({ _tag: "PeerGone", state: "CLOSE_WAIT" })
      expect(outcome.finSent).toBe(true)
      expect(latency).toBeLessThan(2 * 250 + 300) // the tick that sees the last frames delivered, then the next
      expect(conn.unsafeStats().transport.socket?.destroyed).toBe(true)
    }))

  it.scopedLive("a reset while nobody reads: PeerGone at the next probe", () =>
    Effect.gen(function*() {
      const codec = Framing.lengthPrefixed()
      const srv = yield* server({})
      const conn = yield* Connection.connectTcp({
        port: srv.port,
        codec,
        watchdogs: [Watchdog.peerGone({ probeInterval: "250 millis" })]
      })
      const peer = yield* srv.accepted
      const frames = Array.from({ length: 3000 }, (_, i) => Framing.encode(codec, Framing.utf8(`f${i}`)))
      peer.write(Buffer.concat(frames), () => peer.resetAndDestroy())
      const reason = yield* within(3000, "closed", conn.closed)
      expect(reason._tag).toBe("PeerGone")
      // the kernel drops the row of a reset connection: "CLOSE"; Node may report the error or an EOF first
      if (reason._tag === "PeerGone") expect(reason.state).toMatch(/^(CLOSE|CLOSE_WAIT|socket error ECONNRESET)$/)
      expect(conn.unsafeStats().transport.socket?.destroyed).toBe(true)
    }))

  it.scopedLive("a stubborn peer after close (never sends FIN): the liveness watchdog destroys it at its bound", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const srv = yield* server({ allowHalfOpen: true })
      const conn = yield* Connection.connectTcp({
        port: srv.port,
        id: "stubborn",
        lingerTimeout: "1 minute", // the connection's own bound is out of reach
        watchdogs: [Watchdog.liveness({ bound: "800 millis" })]
      })
      const peer = yield* srv.accepted
      peer.resume() // reads, never ends its side
      yield* conn.send(Framing.utf8("bye"))
      const t0 = performance.now()
      const outcome = yield* within(3000, "close", conn.close("done"))
      const elapsed = performance.now() - t0
      console.log(`liveness: stubborn peer destroyed ${Math.round(elapsed)} ms after close (bound 800 ms)`)
      expect(elapsed).toBeGreaterThanOrEqual(790)
      expect(elapsed).toBeLessThanOrEqual(800 + 300)
      expect(outcome).toMatchObject({ finSent: true, peerEof: false, lingerExpired: false, delivered: 1 })
      expect(conn.unsafeStats().transport.socket?.destroyed).toBe(true)
      const lines = reaps(logs.lines)
      expect(lines.length).toBe(1)
      expect(lines[0]!.annotations).toMatchObject({ connection: "stubborn", reason: "LivenessTimeout", state: "Closing" })
    }).pipe(Effect.provide(logs.layer))
  })
})
