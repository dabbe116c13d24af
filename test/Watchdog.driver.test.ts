/**
 * The watchdog driver: one fiber per probe interval runs the send-stall and
 * peer-gone probes of every connection registered with it. Registration and
 * unregistration, the same reaps at the same ticks as the per-connection probe,
 * idle connections never sampled (a tick where none needs kernel figures reads
 * no table), TestClock throughout; the real /proc/net/tcp sampler over a
 * synthetic table on Linux.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Scope } from "effect"
import { Connection, DisconnectReason, Framing, Transport, Watchdog } from "effect-tether"
import * as Testing from "effect-tether/testing"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { captureLogs, type LogLine } from "./helpers/logs.js"
import { established } from "./helpers/tcpInfo.js"

const frame = (n: number, size = 8) => new Uint8Array(size).fill(n % 256)
const at = Testing.adjustTo
const until = (cond: () => boolean) => Testing.eventually(cond)
const warnings = (lines: ReadonlyArray<LogLine>) =>
  lines.filter((l) => l.level === "WARN" && l.annotations["watchdog"] !== undefined)


/**
 * A sampler that knows nothing of the kernel (Node's view) and clears a connection with nothing
 * queued in user space: `reads` counts the samples it was asked for.
 */
const nodeViewProbe = (): Watchdog.TcpProbeService => {
  let reads = 0
  return {
    sample: () =>
      Effect.sync(() => {
        reads++
        return undefined
      }),
    unsafeCanSkip: (target) => target.stats().queuedBytes === 0,
    reads: () => reads
  }
}

/** A scripted sampler with no skip rule (every registered connection is sampled every tick). */
const scripted = (sample: () => Watchdog.TcpInfo | "absent" | undefined) => Testing.scriptedProbe(sample)

describe("Watchdog.Driver: registration (TestClock)", () => {
  it.scoped("each probe registers once; it leaves when its scope closes, at the next tick once Closed, and when reaped", () =>
    Effect.gen(function*() {
      const driver = yield* Watchdog.makeDriver
      const probe = nodeViewProbe()
      const open = (scope: Scope.Scope, id: string) =>
        Effect.gen(function*() {
          const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 100 })
          return {
            peer,
            conn: yield* Connection.make(t, {
              id,
              writeTimeout: "1 hour",
              // liveness + reaper: only the reaper registers (liveness needs no driver)
              watchdogs: Watchdog.defaults({ reaper: { probeInterval: "1 second", stallTimeout: "3 seconds" } })
            })
          }
        }).pipe(
          Effect.provideService(Watchdog.Driver, driver),
          Effect.provideService(Watchdog.TcpProbe, probe),
          Scope.extend(scope)
        )
      const scopes = yield* Effect.forEach([1, 2, 3, 4], () => Scope.make())
      const [a, b, c, d] = yield* Effect.forEach(scopes, (s, i) => open(s, `c${i}`))
      expect(driver.unsafeStats().registered).toBe(4)

      // a scope closed: unregistered by its finalizer, at once
      yield* Scope.close(scopes[0]!, Exit.void)
      expect(a!.conn.unsafeStats().state).toBe("Closed")
      expect(driver.unsafeStats().registered).toBe(3)

      // closed while its scope stays open: the next tick drops it
      yield* b!.conn.abort("done")
      expect(driver.unsafeStats().registered).toBe(3)
      yield* at(1000)
      expect(driver.unsafeStats().registered).toBe(2)

      // reaped: no longer probed
      c!.peer.setReading(false)
      const sender = yield* Effect.fork(Effect.forever(c!.conn.send(frame(1, 500))))
      yield* until(() => c!.conn.unsafeStats().transport.queuedBytes > 0)
      yield* at(5000) // stall first seen at 2 s, reaped at 5 s
      expect((yield* c!.conn.closed)._tag).toBe("SendStalled")
      yield* Fiber.await(sender)
      expect(driver.unsafeStats().registered).toBe(1)
      const reads = probe.reads()
      yield* at(10_000)
      expect(probe.reads()).toBe(reads) // d is idle and the reaped one is gone: nothing sampled
      expect(d!.conn.unsafeStats().state).toBe("Active")
      expect(driver.unsafeStats().ticks).toBe(10) // one walk per tick for every connection

      yield* Scope.close(scopes[3]!, Exit.void)
      expect(driver.unsafeStats().registered).toBe(0)
      for (const s of scopes) yield* Scope.close(s, Exit.void)
    }))

  it.scoped("2,500 connections (a walk of three slices): every one probed at the first tick, then parked at rest and walked by no tick until its next activity; closing 1,000 leaves 1,500", () =>
    Effect.gen(function*() {
      const driver = yield* Watchdog.makeDriver
      const probe = nodeViewProbe()
      const scope = yield* Scope.make()
      const open = (n: number, s: Scope.Scope) =>
        Effect.forEach(Array.from({ length: n }), () =>
          Effect.flatMap(Transport.memoryPair(), ([t]) =>
            Connection.make(t, { watchdogs: [Watchdog.reaper({ probeInterval: "1 second", stallTimeout: "5 seconds" })] })))
          .pipe(
            Effect.provideService(Watchdog.Driver, driver),
            Effect.provideService(Watchdog.TcpProbe, probe),
            Scope.extend(s)
          )
      const kept = yield* open(1500, yield* Effect.scope)
      yield* open(1000, scope)
      expect(driver.unsafeStats().registered).toBe(2500)
      yield* at(1000)
      expect(driver.unsafeStats()).toMatchObject({ registered: 2500, parked: 2500, ticks: 1, sampled: 0, skipped: 2500 })
      yield* at(3000)
      expect(driver.unsafeStats()).toMatchObject({ registered: 2500, parked: 2500, ticks: 3, sampled: 0, skipped: 2500 })
      // activity puts a connection back in the walk: probed at the next tick, parked again
      yield* kept[7]!.send(frame(1))
      yield* until(() => kept[7]!.unsafeStats().framesOut === 1)
      expect(driver.unsafeStats().parked).toBe(2499)
      yield* Scope.close(scope, Exit.void)
      expect(driver.unsafeStats()).toMatchObject({ registered: 1500, parked: 1499 })
      yield* at(4000)
      expect(driver.unsafeStats()).toMatchObject({ registered: 1500, parked: 1500, ticks: 4, skipped: 2501 })
      expect(kept.every((c) => c.unsafeStats().state === "Active")).toBe(true)
      expect(probe.reads()).toBe(0)
    }), 60_000) // a scale test: 2 500 connections opened and 1 000 closed take ~7 s alone, more under the full suite

  it.scoped("two probes of one connection (different intervals) both park, both wake on its activity, and the stall is still reaped", () =>
    Effect.gen(function*() {
      const driver = yield* Watchdog.makeDriver
      const probe = nodeViewProbe()
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 1000 })
      const conn = yield* Connection.make(t, {
        writeTimeout: "1 hour",
        watchdogs: [
          Watchdog.sendStall({ probeInterval: "1 second", stallTimeout: "3 seconds" }),
          Watchdog.peerGone({ probeInterval: "500 millis" })
        ]
      }).pipe(Effect.provideService(Watchdog.Driver, driver), Effect.provideService(Watchdog.TcpProbe, probe))
      yield* at(2000)
      expect(driver.unsafeStats()).toMatchObject({ registered: 2, parked: 2 })
      // the peer stops reading and the sender keeps sending: its activity wakes both probes
      peer.setReading(false)
      yield* Effect.fork(Effect.forever(conn.send(frame(5, 500))))
      yield* until(() => t.stats().queuedBytes > 0)
      expect(driver.unsafeStats().parked).toBe(0)
      // stall first seen at the 3 s tick, reaped 3 s later (a stranded sendStall probe would never reap it)
      yield* at(5999)
      expect(yield* conn.state).toBe("Active")
      yield* at(6000)
      expect((yield* conn.closed)._tag).toBe("SendStalled")
    }))

  it.scoped("probes of different intervals each tick at their own boundaries", () =>
    Effect.gen(function*() {
      const driver = yield* Watchdog.makeDriver
      const probe = scripted(() => established)
      const make = (interval: Duration.DurationInput) =>
        Effect.flatMap(Transport.memoryPair(), ([t]) =>
          Connection.make(t, { watchdogs: [Watchdog.peerGone({ probeInterval: interval })] }))
      yield* Effect.all([make("500 millis"), make("2 seconds")]).pipe(
        Effect.provideService(Watchdog.Driver, driver),
        Effect.provideService(Watchdog.TcpProbe, probe)
      )
      yield* at(4000)
      // 8 ticks of 500 ms + 2 of 2 s, one sample per connection and tick
      expect(driver.unsafeStats().ticks).toBe(10)
      expect(probe.reads()).toBe(10)
    }))

  it.scoped("without a Driver in the context each connection runs its own probe (nothing registered)", () =>
    Effect.gen(function*() {
      const driver = yield* Watchdog.makeDriver
      const [t] = yield* Transport.memoryPair()
      const probe = scripted(() => "absent")
      const conn = yield* Connection.make(t, { watchdogs: [Watchdog.peerGone({ probeInterval: "1 second" })] }).pipe(
        Effect.provideService(Watchdog.TcpProbe, probe)
      )
      expect(driver.unsafeStats().registered).toBe(0)
      yield* at(1000)
      expect((yield* conn.outcome).reason).toEqual(DisconnectReason.PeerGone({ state: "CLOSE" }))
      expect(driver.unsafeStats().ticks).toBe(0)
    }))
})

describe("Watchdog.Driver: the same reaps as the per-connection probe (TestClock)", () => {
  it.scoped("Node fallback figures: a non-reading peer is reaped stallTimeout after progress was last seen, figures logged", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const driver = yield* Watchdog.makeDriver
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 1000 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, {
        id: "stalled",
        writeTimeout: "1 hour",
        sendQueueCapacity: 4,
        maxBatchFrames: 1,
        watchdogs: [Watchdog.sendStall({ probeInterval: "1 second", stallTimeout: "30 seconds" })]
      }).pipe(Effect.provideService(Watchdog.Driver, driver))
      const sender = yield* Effect.fork(Effect.forever(conn.send(frame(7, 500))))
      yield* until(() => conn.unsafeStats().queueDepth === 4)
      yield* at(30999) // the first tick (t = 1 s) saw the stall begin
      expect(yield* conn.state).toBe("Active")
      yield* at(31000)
      const reason = yield* conn.closed
      expect(reason._tag).toBe("SendStalled")
      if (reason._tag === "SendStalled") expect(Duration.toMillis(reason.stalledFor)).toBe(30000)
      expect(yield* Effect.flip(Fiber.join(sender))).toMatchObject({ _tag: "ConnectionClosed" })
      expect(peer.destroyed()).toBe(true)
      const w = warnings(logs.lines)
      expect(w.length).toBe(1)
      expect(w[0]!.annotations).toMatchObject({
        connection: "stalled",
        watchdog: "send-stall",
        reason: "SendStalled",
        secondsWithoutProgress: 30,
        source: "node"
      })
      expect(w[0]!.annotations["queuedBytes"]).toBe(reason._tag === "SendStalled" ? reason.queuedBytes : -1)
    }).pipe(Effect.provide(logs.layer))
  })

  it.scoped("50 idle connections and one whose peer stops reading: it alone is sampled and reaped within stallTimeout + 2 probes; no sample on idle ticks", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const driver = yield* Watchdog.makeDriver
      const probe = nodeViewProbe()
      const options: Connection.Options = { writeTimeout: "1 hour", watchdogs: Watchdog.defaults({ reaper: { probeInterval: "1 second", stallTimeout: "5 seconds" } }) }
      const withDriver = <A, E, R>(self: Effect.Effect<A, E, R>) =>
        self.pipe(Effect.provideService(Watchdog.Driver, driver), Effect.provideService(Watchdog.TcpProbe, probe))
      const idle = yield* Effect.forEach(Array.from({ length: 50 }), () =>
        Effect.flatMap(Transport.memoryPair(), ([t]) => Connection.make(t, options)).pipe(withDriver))
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 1000 })
      const stalled = yield* Connection.make(t, { ...options, id: "stops-reading" }).pipe(withDriver)
      expect(driver.unsafeStats().registered).toBe(51)
      yield* at(10_000)
      expect(probe.reads()).toBe(0) // 10 ticks, nothing queued anywhere: not one sample
      // each probed once on Node's view at the first tick, then parked: walked by none of the next 9
      expect(driver.unsafeStats()).toMatchObject({ ticks: 10, sampled: 0, skipped: 51, parked: 51 })

      const stallAt = 10_500
      yield* at(stallAt)
      peer.setReading(false)
      yield* Effect.fork(Effect.forever(stalled.send(frame(3, 400))))
      yield* until(() => t.stats().queuedBytes > 0)
      const bound = stallAt + 5000 + 2 * 1000
      yield* at(stallAt + 5000 - 1)
      expect(yield* stalled.state).toBe("Active") // never before stallTimeout
      yield* at(bound)
      expect((yield* stalled.closed)._tag).toBe("SendStalled")
      const reads = probe.reads()
      expect(reads).toBeGreaterThanOrEqual(5) // only the stalled one, once per tick
      expect(reads).toBeLessThanOrEqual(7)
      yield* at(30_000)
      expect(probe.reads()).toBe(reads) // the others still need nothing
      for (const c of idle) expect(c.unsafeStats().state).toBe("Active")
      expect(warnings(logs.lines).map((l) => l.annotations["connection"])).toEqual(["stops-reading"])
      expect(driver.unsafeStats().registered).toBe(50)
    }).pipe(Effect.provide(logs.layer))
  })

  for (const resetAt of [1, 999, 1000, 1001]) {
    it.scoped(`peer-gone: the row vanishes at ${resetAt} ms: reaped as PeerGone (CLOSE) by abort within 2 probe intervals`, () =>
      Effect.gen(function*() {
        const driver = yield* Watchdog.makeDriver
        let now = 0
        const probe = scripted(() => (now >= resetAt ? "absent" : established))
        const [t] = yield* Transport.memoryPair()
        const conn = yield* Connection.make(t, { watchdogs: [Watchdog.peerGone({ probeInterval: "1 second" })] }).pipe(
          Effect.provideService(Watchdog.Driver, driver),
          Effect.provideService(Watchdog.TcpProbe, probe)
        )
        const track = (ms: number) => Effect.zipRight(at(ms), Effect.sync(() => void (now = ms)))
        yield* track(resetAt - 1)
        now = resetAt
        const firstTick = Math.ceil(resetAt / 1000) * 1000
        if (firstTick > resetAt) {
          yield* track(firstTick - 1)
          expect(yield* conn.state).toBe("Active")
        }
        yield* track(firstTick)
        const outcome = yield* conn.outcome
        expect(outcome.reason).toEqual(DisconnectReason.PeerGone({ state: "CLOSE" }))
        expect(outcome.finSent).toBe(false)
        expect(firstTick - resetAt).toBeLessThan(2000)
      }))
  }

  it.scoped("peer-gone: CLOSE_WAIT with no read pending closes gracefully at the next tick", () =>
    Effect.gen(function*() {
      const driver = yield* Watchdog.makeDriver
      let state = "ESTABLISHED"
      const [t] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, { watchdogs: [Watchdog.peerGone({ probeInterval: "1 second" })] }).pipe(
        Effect.provideService(Watchdog.Driver, driver),
        Effect.provideService(Watchdog.TcpProbe, scripted(() => ({ ...established, state })))
      )
      yield* at(3500)
      state = "CLOSE_WAIT"
      yield* at(3999)
      expect(yield* conn.state).toBe("Active")
      yield* at(4000)
      const outcome = yield* conn.outcome
      expect(outcome.reason).toEqual(DisconnectReason.PeerGone({ state: "CLOSE_WAIT" }))
      expect(outcome.finSent).toBe(true)
    }))
})

// ---- the real sampler over a synthetic table (Linux) ----

const linux = process.platform === "linux" && Fs.existsSync("/proc/self/fd")
const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
const hexV4 = (ip: string) => {
  const b = ip.split(".").map((n) => parseInt(n, 10).toString(16).toUpperCase().padStart(2, "0"))
  return Os.endianness() === "LE" ? b.reverse().join("") : b.join("")
}
const hexPort = (p: number) => p.toString(16).toUpperCase().padStart(4, "0")
const tableLine = (local: number, remote: number, state: number, inode: number) =>
  `   0: ${hexV4("127.0.0.1")}:${hexPort(local)} ${hexV4("127.0.0.1")}:${hexPort(remote)} ` +
  `${state.toString(16).toUpperCase().padStart(2, "0")} 00000000:00000000 ` +
  `00:00000000 00000000  1000        0 ${inode} 1 0000000000000000 20 4 30 10 -1\n`

describe.skipIf(!linux)("Watchdog.Driver with the /proc/net/tcp sampler (synthetic table, loopback sockets)", () => {
  it.scoped("5 idle connections: one table read confirms them, then no read on any tick; a reader paused by backpressure alone is sampled, and reaped when its row goes", () =>
    Effect.gen(function*() {
      // a loopback server that accepts and reads
      const server = yield* Testing.peer({ onSocket: (socket) => void socket.resume() })
      const port = server.port
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "tether-driver-"))),
        (d) => Effect.sync(() => Fs.rmSync(d, { recursive: true, force: true }))
      )
      const file = Path.join(dir, "tcp")
      const probe = Watchdog.makeProcNetProbe([file])
      const driver = yield* Watchdog.makeDriver
      const conns = yield* Effect.forEach([1, 2, 3, 4, 5], () =>
        Effect.flatMap(Transport.connectTcp({ host: "127.0.0.1", port }), (t) =>
          Effect.map(
            Connection.make(t, {
              inboundCapacity: 4, // nobody consumes `incoming` here: a few frames and the reader pushes back
              watchdogs: Watchdog.defaults({ reaper: { probeInterval: "1 second", stallTimeout: "5 seconds" } })
            }),
            (conn) => {
              const socket = t.stats().socket!
              const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd
              const inode = parseInt(/\d+/.exec(Fs.readlinkSync(`/proc/self/fd/${fd}`))![0], 10)
              return { conn, socket, row: (state: number) => tableLine(socket.localPort!, port, state, inode) }
            }
          ))).pipe(Effect.provideService(Watchdog.Driver, driver), Effect.provideService(Watchdog.TcpProbe, probe))
      const table = (skip?: number) => header + conns.filter((_, i) => i !== skip).map((c) => c.row(1)).join("")
      Fs.writeFileSync(file, table())
      for (let s = 1; s <= 30; s++) {
        yield* at(s * 1000)
        yield* until(() => probe.reads() >= 1)
        for (let i = 0; i < 5; i++) yield* Testing.macrotask // a read, had one started, would be counted by now
      }
      expect(probe.reads()).toBe(1) // the first tick confirms all five; 29 ticks read nothing
      expect(driver.unsafeStats().sampled).toBe(5)
      for (const c of conns) expect(c.conn.unsafeStats().state).toBe("Active")

      // one reader paused by backpressure (the peer sends 2 MiB nobody consumes; a parked connection wakes on the
      // bytes): that connection alone is sampled, one read per tick
      const far = server.sockets.find((s) => s.remotePort === conns[2]!.socket.localPort)!
      const blob = new Uint8Array(64 * 1024)
      for (let i = 0; i < 32; i++) far.write(Framing.encode(conns[2]!.conn.codec, blob))
      yield* until(() => conns[2]!.socket.isPaused())
      for (let s = 31; s <= 33; s++) {
        yield* at(s * 1000)
        yield* until(() => probe.reads() >= s - 29)
      }
      expect(probe.reads()).toBe(4)
      expect(driver.unsafeStats().sampled).toBe(8)
      // the kernel drops it (a reset it never read): PeerGone at the next tick
      Fs.writeFileSync(file, table(2))
      yield* at(34_000)
      expect((yield* conns[2]!.conn.outcome).reason).toEqual(DisconnectReason.PeerGone({ state: "CLOSE" }))
      expect(conns.filter((c) => c.conn.unsafeStats().state === "Active").length).toBe(4)
    }))
})
