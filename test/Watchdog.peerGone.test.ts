/**
 * peerGone and a reset early in a connection's life (issue 12, section 4).
 *
 * The story: the peer sends more than the connection's buffers hold while
 * nobody consumes (the inbound mailbox fills, the transport's buffer passes its
 * high-water mark, the socket is paused), then resets the connection ~150 ms
 * after open, before the first probe tick. A paused socket does not read, so
 * Node sees neither the ECONNRESET nor an EOF; the kernel unhashes the reset
 * socket at once, so its row is gone from /proc/net/tcp before the first probe
 * ever saw it. The probe must take "a connected socket the kernel no longer
 * lists" as gone from its first sample on, and reap within 2 probe intervals.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Schedule, TestClock } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { Connection, DisconnectReason, Framing, Transport, Watchdog } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { captureLogs } from "./helpers/logs.js"
import { established } from "./helpers/tcpInfo.js"

const within = <A, E, R>(ms: number, what: string, self: Effect.Effect<A, E, R>) =>
  Effect.timeoutFail(self, { duration: ms, onTimeout: () => new Error(`timed out after ${ms} ms waiting for ${what}`) })

/** A loopback server handing over its first accepted socket; everything is destroyed with the scope. */
const server = Effect.gen(function*() {
  const accepted = yield* Deferred.make<Net.Socket>()
  const sockets: Array<Net.Socket> = []
  const srv = yield* Effect.acquireRelease(
    Effect.async<Net.Server>((resume) => {
      const s = Net.createServer((socket) => {
        sockets.push(socket)
        socket.on("error", () => {})
        Deferred.unsafeDone(accepted, Effect.succeed(socket))
      })
      s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
    }),
    (s) =>
      Effect.sync(() => {
        for (const socket of sockets) socket.destroy()
        s.close()
      })
  )
  return { port: (srv.address() as Net.AddressInfo).port, accepted: Deferred.await(accepted) }
})

const PROBE_MS = 1000 // the default probe interval

/**
 * One trial of the story, with the default probe: returns how long after the
 * reset the connection was reaped, and why.
 */
const resetWhilePaused = (totalBytes: number, readHighWaterMark?: number) =>
  Effect.scoped(Effect.gen(function*() {
    const codec = Framing.lengthPrefixed()
    const srv = yield* server
    const conn = yield* Connection.connectTcp({
      port: srv.port,
      codec,
      ...(readHighWaterMark === undefined ? {} : { readHighWaterMark }),
      watchdogs: [Watchdog.peerGone()] // default probe: 1 second
    })
    const openedAt = performance.now()
    const peer = yield* srv.accepted
    const socket = conn.unsafeStats().transport.socket!
    const frame = Framing.encode(codec, new Uint8Array(60).fill(120))
    const frames = Array.from({ length: Math.ceil(totalBytes / frame.length) }, () => frame)
    peer.write(Buffer.concat(frames))
    // nobody consumes `conn.messages`: the socket ends up paused by backpressure
    yield* within(
      2000,
      "the socket to be paused",
      Effect.repeat(Effect.sync(() => socket.isPaused()), { until: (p) => p, schedule: Schedule.spaced("5 millis") })
    )
    expect(conn.unsafeStats().state).toBe("Active")
    // the story's timing: the reset comes ~150 ms after open
    const wait = 150 - (performance.now() - openedAt)
    if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
    peer.resetAndDestroy()
    const resetAt = performance.now()
    const reason = yield* within(2 * PROBE_MS + 2000, "the reap", conn.closed).pipe(Effect.option)
    return { reason, latency: performance.now() - resetAt, stillActive: conn.unsafeStats().state === "Active" }
  }))

describe("Watchdog.peerGone: a reset while the reader is paused (loopback)", () => {
  for (const [name, total, hwm] of [
    ["~1 MB sent, default read high-water mark", 1024 * 1024, undefined],
    ["~230 KB sent, 16 KiB read high-water mark", 230 * 1024, 16 * 1024]
  ] as const) {
    it.scopedLive(`${name}: reaped as PeerGone (CLOSE, no kernel row) within 2 probe intervals, 3 trials`, () => {
      const logs = captureLogs()
      return Effect.gen(function*() {
        const latencies: Array<number> = []
        for (let trial = 0; trial < 3; trial++) {
          const { latency, reason, stillActive } = yield* resetWhilePaused(total, hwm)
          expect(stillActive, `trial ${trial}: still Active ${Math.round(latency)} ms after the reset`).toBe(false)
          expect(reason._tag).toBe("Some")
          // "CLOSE": the kernel dropped the row and Node never heard of the reset (its socket does not read);
          // when Node's handle was still reading ahead, it got the ECONNRESET and that is what is reported
          if (reason._tag === "Some") {
            expect(reason.value._tag).toBe("PeerGone")
            if (reason.value._tag === "PeerGone") expect(reason.value.state).toMatch(/^(CLOSE|socket error ECONNRESET)$/)
          }
          expect(latency).toBeLessThanOrEqual(2 * PROBE_MS)
          latencies.push(Math.round(latency))
        }
        console.log(`reset while paused (${name}): reaped ${latencies.join(", ")} ms after the reset`)
        // the reap says what each side knew: the kernel had no row; Node never saw the reset
        const reaps = logs.lines.filter((l) => l.level === "WARN" && l.annotations["watchdog"] === "peer-gone")
        expect(reaps.length).toBe(3)
        for (const r of reaps) {
          if (r.annotations["nodeState"] === "open") expect(r.annotations["tcpState"]).toBe("no row")
          else expect(r.annotations["nodeState"]).toBe("socket error ECONNRESET")
        }
        const silent = reaps.filter((r) => r.annotations["nodeState"] === "open").length
        console.log(`  ${silent}/3 resets Node never saw (kernel row gone, socket open and paused)`)
      }).pipe(Effect.provide(logs.layer))
    }, 30_000)
  }

  it.scopedLive("a healthy paused connection is never reaped (its row is there, or found by inode)", () =>
    Effect.gen(function*() {
      const codec = Framing.lengthPrefixed()
      const srv = yield* server
      const conn = yield* Connection.connectTcp({
        port: srv.port,
        codec,
        watchdogs: [Watchdog.peerGone({ probeInterval: "100 millis" })]
      })
      const peer = yield* srv.accepted
      const frame = Framing.encode(codec, new Uint8Array(60))
      peer.write(Buffer.concat(Array.from({ length: 20_000 }, () => frame)))
      const socket = conn.unsafeStats().transport.socket!
      yield* within(
        2000,
        "the socket to be paused",
        Effect.repeat(Effect.sync(() => socket.isPaused()), { until: (p) => p, schedule: Schedule.spaced("5 millis") })
      )
      // ten probes of a paused, live socket
      const ended = yield* Effect.timeout(conn.closed, "1 second").pipe(Effect.option)
      expect(ended._tag).toBe("None")
      expect(conn.unsafeStats().state).toBe("Active")
    }))
})

describe("the /proc/net/tcp sampler: absent, found by inode, or unknown", () => {
  const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
  const rowLine = (inode: number, state = "01") =>
    `   0: 0100007F:1F90 0100007F:C350 ${state} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0\n`

  it.scopedLive("a connected socket missing from a non-empty table is absent; by inode it is found; empty says nothing", () =>
    Effect.gen(function*() {
      const srv = yield* server
      const t = yield* Transport.connectTcp({ port: srv.port })
      yield* srv.accepted
      const socket = t.stats().socket!
      const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd
      const inode = parseInt(/\d+/.exec(Fs.readlinkSync(`/proc/self/fd/${fd}`))![0], 10)
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "tether-tcp-"))),
        (d) => Effect.sync(() => Fs.rmSync(d, { recursive: true, force: true }))
      )
      const table = (name: string, text: string) => {
        const file = Path.join(dir, name)
        Fs.writeFileSync(file, text)
        return Watchdog.makeProcNetProbe([file])
      }
      const now = Date.now()
      // other sockets only: ours is gone
      expect(yield* table("other", header + rowLine(inode + 1)).sample(t, now)).toBe("absent")
      // our inode under a key that does not match ours: that row is ours
      const found = yield* table("inode", header + rowLine(inode, "08")).sample(t, now)
      expect(found).toMatchObject({ inode, state: "CLOSE_WAIT" })
      // an empty (hidden) table says nothing
      expect(yield* table("empty", header).sample(t, now)).toBeUndefined()
      // the real table lists a live socket
      expect(yield* Watchdog.makeProcNetProbe().sample(t, now)).toMatchObject({ state: "ESTABLISHED", inode })
      // a destroyed socket: nothing to say
      yield* t.destroy
      expect(yield* table("other2", header + rowLine(inode + 1)).sample(t, now)).toBeUndefined()
    }))
})

// ---------------------------------------------------------------------------
// TestClock: the bound, with a scripted probe

const scripted = Testing.scriptedProbe


const at = (t: number) => Effect.flatMap(TestClock.currentTimeMillis, (n) => TestClock.adjust(Duration.millis(t - n)))

describe("Watchdog.peerGone: a vanished kernel row (TestClock)", () => {
  for (const resetAt of [1, 150, 500, 999, 1000, 1001, 2999]) {
    it.scoped(`the row vanishes at ${resetAt} ms: reaped as PeerGone (CLOSE) by abort within 2 probe intervals`, () =>
      Effect.gen(function*() {
        const [t, peer] = yield* Transport.memoryPair()
        let now = 0
        const conn = yield* Connection.make(t, {
          watchdogs: [Watchdog.peerGone({ probeInterval: "1 second" })]
        }).pipe(Effect.provideService(Watchdog.TcpProbe, scripted(() => (now >= resetAt ? "absent" : established))))
        const track = (ms: number) => Effect.zipRight(at(ms), Effect.sync(() => void (now = ms)))
        yield* track(resetAt - 1)
        now = resetAt
        yield* track(resetAt)
        // the first tick at or after the reset reaps: never later than 2 intervals
        const firstTick = Math.ceil(resetAt / 1000) * 1000
        if (firstTick > resetAt) {
          yield* track(firstTick - 1)
          expect(yield* conn.state).toBe("Active")
        }
        yield* track(firstTick)
        const outcome = yield* conn.outcome
        expect(outcome.reason).toEqual(DisconnectReason.PeerGone({ state: "CLOSE" }))
        expect(outcome.finSent).toBe(false) // a dead connection is aborted
        expect(firstTick - resetAt).toBeLessThan(2 * 1000)
        expect(peer.destroyed()).toBe(true)
      }))
  }

  it.scoped("absent from the very first probe (never listed): reaped at the first probe", () =>
    Effect.gen(function*() {
      const [t] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, {
        watchdogs: [Watchdog.peerGone({ probeInterval: "1 second" })]
      }).pipe(Effect.provideService(Watchdog.TcpProbe, scripted(() => "absent")))
      yield* at(999)
      expect(yield* conn.state).toBe("Active")
      yield* at(1000)
      expect((yield* conn.outcome).reason).toEqual(DisconnectReason.PeerGone({ state: "CLOSE" }))
    }))

  it.scoped("a sampler that knows nothing (undefined) never reaps a live connection", () =>
    Effect.gen(function*() {
      const [t] = yield* Transport.memoryPair()
      const probe = scripted(() => undefined)
      const conn = yield* Connection.make(t, {
        watchdogs: [Watchdog.peerGone({ probeInterval: "1 second" })]
      }).pipe(Effect.provideService(Watchdog.TcpProbe, probe))
      yield* at(60_000)
      expect(yield* conn.state).toBe("Active")
      expect(probe.reads()).toBe(60)
    }))

  it.scoped("a Node EOF with no kernel row is a dead connection (CLOSE, abort), not a clean CLOSE_WAIT", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      let gone = false
      const conn = yield* Connection.make(t, {
        inboundCapacity: 1,
        watchdogs: [Watchdog.peerGone({ probeInterval: "1 second" })]
      }).pipe(Effect.provideService(Watchdog.TcpProbe, scripted(() => (gone ? "absent" : established))))
      // more frames than the inbound mailbox holds, then EOF: the reader is parked, Node has the EOF
      for (let i = 0; i < 4; i++) yield* peer.write(Framing.encode(conn.codec, Framing.utf8(`f${i}`)))
      yield* peer.end
      yield* at(500)
      gone = true // and the kernel dropped the socket (a reset behind the FIN)
      yield* at(1000)
      const outcome = yield* conn.outcome
      expect(outcome.reason).toEqual(DisconnectReason.PeerGone({ state: "CLOSE" }))
      expect(outcome.finSent).toBe(false)
    }))
})
