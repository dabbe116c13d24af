/**
 * Virtual-time tests of every watchdog: exact firing times, resets on the right
 * traffic and none on the wrong traffic. The far end is the in-memory peer; the
 * kernel view is either absent (memory transport: Node-style fallback figures)
 * or scripted through a replacement `Watchdog.TcpProbe`.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Schedule, TestClock } from "effect"
import { Connection, DisconnectReason, Framing, Transport, Watchdog } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { captureLogs, type LogLine } from "./helpers/logs.js"

const frame = (n: number, size = 8) => new Uint8Array(size).fill(n % 256)

/** The watchdogs' reap lines (warnings annotated with the watchdog's name). */
const warnings = (lines: ReadonlyArray<LogLine>) =>
  lines.filter((l) => l.level === "WARN" && l.annotations["watchdog"] !== undefined)

/** A macrotask turn: lets fibers scheduled on the event loop (the connection's writer) run. */
/** Lets forked fibers run until `cond` holds; fails after 5000 event-loop turns instead of hanging. */
const until = (cond: () => boolean) => Testing.eventually(cond)
/** Moves virtual time to `t` millis (absolute). */
const at = Testing.adjustTo

const scriptedProbe = Testing.scriptedProbe
const row = (state: string, txQueue: number, retransmits = 0): Watchdog.TcpInfo => ({
  local: "127.0.0.1|40000",
  remote: "127.0.0.1|7000",
  state,
  txQueue,
  rxQueue: 0,
  timer: txQueue > 0 ? 1 : 0,
  retransmits,
  inode: 1
})

describe("Watchdog.idle (TestClock)", () => {
  it.scoped("read-idle closes with IdleTimeout exactly readIdle after the last inbound bytes", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, { id: "idle-r", watchdogs: [Watchdog.idle({ readIdle: "10 seconds" })] })
      yield* at(6000)
      yield* peer.write(Framing.encode(conn.codec, Framing.utf8("hi")))
      yield* until(() => conn.unsafeStats().lastReadAt === 6000)
      yield* at(8000)
      yield* conn.send(frame(1)) // outbound traffic must not reset read-idle
      yield* until(() => conn.unsafeStats().lastWriteAt === 8000)
      yield* at(15999)
      expect(yield* conn.state).toBe("Active")
      yield* at(16000)
      const reason = yield* conn.closed
      expect(reason).toEqual(DisconnectReason.IdleTimeout({ kind: "read", idleFor: Duration.millis(10000) }))
      const w = warnings(logs.lines)
      expect(w.length).toBe(1)
      expect(w[0]!.annotations).toMatchObject({ connection: "idle-r", reason: "IdleTimeout", idleSeconds: 10 })
    }).pipe(Effect.provide(logs.layer))
  })

  it.scoped("write-idle runs its action every writeIdle while idle; a write restarts it; reads do not", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const events: Array<[number, string, boolean]> = []
      const conn = yield* Connection.make(t, {
        watchdogs: [
          Watchdog.idle({
            writeIdle: "5 seconds",
            onIdle: (e) => Effect.map(TestClock.currentTimeMillis, (n) => void events.push([n, e.kind, e.first]))
          })
        ]
      })
      yield* at(10000)
      expect(events).toEqual([[5000, "write", true], [10000, "write", false]])
      yield* conn.send(frame(1))
      yield* until(() => conn.unsafeStats().lastWriteAt === 10000)
      yield* at(13000)
      yield* peer.write(Framing.encode(conn.codec, Framing.utf8("in")))
      yield* until(() => conn.unsafeStats().lastReadAt === 13000)
      yield* at(14999)
      expect(events.length).toBe(2)
      yield* at(15000)
      expect(events).toEqual([[5000, "write", true], [10000, "write", false], [15000, "write", true]])
      expect(yield* conn.state).toBe("Active")
    }))

  it.scoped("an idle action that sends (a ping) re-arms the write-idle timer through its own write", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, {
        watchdogs: [Watchdog.idle({ writeIdle: "3 seconds", onIdle: (e) => e.connection.send(Framing.utf8("ping")) })]
      })
      const pingBytes = Framing.encode(conn.codec, Framing.utf8("ping")).length
      yield* at(2999)
      expect(peer.received().length).toBe(0)
      yield* at(3000)
      yield* until(() => peer.received().length === pingBytes)
      yield* at(5999)
      expect(peer.received().length).toBe(pingBytes)
      yield* at(6000)
      yield* until(() => peer.received().length === 2 * pingBytes)
    }))

  it.scoped("all-idle counts reads and writes; closes after allIdle of neither", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, { watchdogs: [Watchdog.idle({ allIdle: "4 seconds" })] })
      yield* at(3000)
      yield* peer.write(Framing.encode(conn.codec, Framing.utf8("in")))
      yield* until(() => conn.unsafeStats().lastReadAt === 3000)
      yield* at(6000)
      yield* conn.send(frame(1))
      yield* until(() => conn.unsafeStats().lastWriteAt === 6000)
      yield* at(9999)
      expect(yield* conn.state).toBe("Active")
      yield* at(10000)
      expect(yield* conn.closed).toEqual(DisconnectReason.IdleTimeout({ kind: "all", idleFor: Duration.millis(4000) }))
    }))
})

describe("Watchdog.heartbeat (TestClock)", () => {
  const hb = Framing.utf8("HB")
  const tr = Framing.utf8("TR")
  const setup = Effect.gen(function*() {
    const [t, peer] = yield* Transport.memoryPair()
    const sent: Array<[number, string]> = []
    const record = (conn: Connection.Connection, what: Uint8Array) =>
      Effect.zipRight(
        Effect.flatMap(TestClock.currentTimeMillis, (n) => Effect.sync(() => sent.push([n, Framing.text(what)]))),
        conn.send(what)
      )
    const conn = yield* Connection.make(t, {
      id: "hb",
      watchdogs: [
        Watchdog.heartbeat({
          interval: "30 seconds",
          sendHeartbeat: (c) => record(c, hb),
          sendTestRequest: (c) => record(c, tr)
        })
      ]
    })
    return { conn, peer, sent }
  })

  it.scoped("silent peer: heartbeat at 30 s, test request at 36 s (which resets outbound), PeerTimeout at 72 s", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const { conn, sent } = yield* setup
      yield* at(29999)
      expect(sent).toEqual([])
      yield* at(30000)
      expect(sent).toEqual([[30000, "HB"]])
      yield* at(36000)
      expect(sent).toEqual([[30000, "HB"], [36000, "TR"]])
      yield* at(65999)
      expect(sent.length).toBe(2)
      yield* at(66000) // 30 s after the test request was written
      expect(sent).toEqual([[30000, "HB"], [36000, "TR"], [66000, "HB"]])
      yield* at(71999)
      expect(yield* conn.state).toBe("Active")
      yield* at(72000)
      expect(yield* conn.closed).toEqual(DisconnectReason.PeerTimeout({ silentFor: Duration.millis(72000) }))
      const w = warnings(logs.lines)
      expect(w.length).toBe(1)
      expect(w[0]!.annotations).toMatchObject({ connection: "hb", reason: "PeerTimeout", silentSeconds: 72 })
    }).pipe(Effect.provide(logs.layer))
  })

  it.scoped("only inbound traffic resets the inbound timer; an answer to the test request cancels the timeout", () =>
    Effect.gen(function*() {
      const { conn, peer, sent } = yield* setup
      const say = (t: number) =>
        Effect.gen(function*() {
          yield* at(t)
          yield* peer.write(Framing.encode(conn.codec, Framing.utf8("peer")))
          yield* until(() => conn.unsafeStats().lastReadAt === t)
        })
      // our own sends every 20 s: no heartbeat needed, and they do not keep the peer "alive"
      yield* at(20000)
      yield* conn.send(frame(1))
      yield* until(() => conn.unsafeStats().lastWriteAt === 20000)
      yield* at(35999)
      expect(sent).toEqual([])
      yield* at(36000)
      expect(sent).toEqual([[36000, "TR"]])
      yield* say(50000) // the peer answers before the second expiry (72 s)
      yield* at(85999)
      expect(sent).toEqual([[36000, "TR"], [66000, "HB"]])
      yield* at(86000) // 36 s after the peer's last bytes
      expect(sent).toEqual([[36000, "TR"], [66000, "HB"], [86000, "TR"]])
      yield* at(121999)
      expect(yield* conn.state).toBe("Active")
      yield* at(122000)
      expect((yield* conn.closed)._tag).toBe("PeerTimeout")
    }))

  it.scoped("testRequestFactor is configurable", () =>
    Effect.gen(function*() {
      const [t] = yield* Transport.memoryPair()
      const trs: Array<number> = []
      const conn = yield* Connection.make(t, {
        watchdogs: [
          Watchdog.heartbeat({
            interval: "10 seconds",
            testRequestFactor: 2,
            sendHeartbeat: () => Effect.void,
            sendTestRequest: () => Effect.map(TestClock.currentTimeMillis, (n) => void trs.push(n))
          })
        ]
      })
      yield* at(20000)
      expect(trs).toEqual([20000])
      yield* at(39999)
      expect(yield* conn.state).toBe("Active")
      yield* at(40000)
      expect(yield* conn.closed).toEqual(DisconnectReason.PeerTimeout({ silentFor: Duration.millis(40000) }))
    }))

  it.scoped("a heartbeat hook blocked behind a wedged writer does not block the inbound timeout", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 1 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, {
        sendQueueCapacity: 1,
        writeTimeout: "1 hour",
        watchdogs: [
          Watchdog.heartbeat({
            interval: "10 seconds",
            sendHeartbeat: (c) => c.send(Framing.utf8("HB")),
            sendTestRequest: (c) => c.send(Framing.utf8("TR"))
          })
        ]
      })
      yield* conn.send(frame(1, 100)) // taken by the writer, stuck in the "kernel"
      yield* conn.send(frame(2, 100)) // fills the queue: every hook send now blocks
      // the test request goes out at 12 s (its hook blocks); the second expiry at 24 s still fires
      yield* at(23999)
      expect(yield* conn.state).toBe("Active")
      yield* at(24000)
      expect(yield* conn.state).toBe("Draining")
      yield* at(29000) // the graceful close is bounded by drainTimeout (5 s)
      const outcome = yield* conn.outcome
      expect(outcome.reason).toEqual(DisconnectReason.PeerTimeout({ silentFor: Duration.millis(24000) }))
      expect(outcome.closeMillis).toBe(5000)
    }))
})

describe("Watchdog.liveness (TestClock)", () => {
  it.scoped("a peer that never answers our FIN is destroyed at the liveness bound (linger set longer)", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      peer.setIgnoreFin(true)
      const conn = yield* Connection.make(t, {
        id: "zombie",
        lingerTimeout: "1 hour",
        watchdogs: [Watchdog.liveness({ bound: "10 seconds" })]
      })
      yield* conn.send(frame(1))
      const closing = yield* Effect.fork(conn.close("bye"))
      yield* at(9999)
      expect(yield* conn.state).toBe("Closing")
      expect(peer.destroyed()).toBe(false)
      yield* at(10000)
      const outcome = yield* Fiber.join(closing)
      expect(peer.destroyed()).toBe(true)
      expect(outcome.closeMillis).toBe(10000)
      expect(outcome.reason._tag).toBe("LocalClose") // the first close request's reason stays
      expect(yield* conn.state).toBe("Closed")
      const w = warnings(logs.lines).filter((l) => l.annotations["watchdog"] === "liveness")
      expect(w.length).toBe(1)
      expect(w[0]!.annotations).toMatchObject({
        connection: "zombie",
        reason: "LivenessTimeout",
        state: "Closing",
        secondsSinceActive: 10
      })
    }).pipe(Effect.provide(logs.layer))
  })

  it.scoped("a drain that cannot finish is cut at the bound; every accepted frame is accounted for", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 100 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, {
        drainTimeout: "1 hour",
        writeTimeout: "1 hour",
        maxBatchFrames: 2,
        watchdogs: [Watchdog.liveness({ bound: "5 seconds" })]
      })
      for (let i = 0; i < 10; i++) yield* conn.send(frame(i, 60))
      const closing = yield* Effect.fork(conn.close())
      yield* at(4999)
      expect(yield* conn.state).toBe("Draining")
      yield* at(5000)
      const outcome = yield* Fiber.join(closing)
      expect(outcome.closeMillis).toBe(5000)
      expect(peer.destroyed()).toBe(true)
      expect(outcome.delivered + (outcome.truncated ? 1 : 0) + outcome.undelivered.length).toBe(10)
    }))

  it.scoped("Closed but the socket still alive (a transport whose destroy did not take): destroyed at the bound", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const [inner, peer] = yield* Transport.memoryPair()
      let destroyCalls = 0
      const t: Transport.Transport = {
        ...inner,
        destroy: Effect.suspend(() => (destroyCalls++ === 0 ? Effect.void : inner.destroy)) // the first one is lost
      }
      const conn = yield* Connection.make(t, { watchdogs: [Watchdog.liveness({ bound: "4 seconds" })] })
      const outcome = yield* conn.abort("fatal")
      expect(outcome.closeMillis).toBe(0)
      expect(yield* conn.state).toBe("Closed")
      expect(peer.destroyed()).toBe(false) // a zombie socket behind a Closed connection
      yield* at(3999)
      expect(peer.destroyed()).toBe(false)
      yield* at(4000)
      expect(peer.destroyed()).toBe(true)
      const w = warnings(logs.lines)
      expect(w.length).toBe(1)
      expect(w[0]!.annotations).toMatchObject({ reason: "LivenessTimeout", state: "Closed", transportState: "open" })
    }).pipe(Effect.provide(logs.layer))
  })

  it.scoped("does nothing when the connection's own bounds close it first", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      peer.setIgnoreFin(true)
      const conn = yield* Connection.make(t, {
        lingerTimeout: "3 seconds",
        watchdogs: [Watchdog.liveness({ bound: "10 seconds" })]
      })
      const closing = yield* Effect.fork(conn.close())
      yield* at(3000)
      const outcome = yield* Fiber.join(closing)
      expect(outcome.lingerExpired).toBe(true)
      yield* at(20000)
      expect(warnings(logs.lines)).toEqual([])
    }).pipe(Effect.provide(logs.layer))
  })
})

describe("Watchdog.sendStall (TestClock)", () => {
  it.scoped("Node fallback figures: a non-reading peer is reaped stallTimeout after progress was last seen", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 1000 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, {
        id: "stalled",
        writeTimeout: "1 hour",
        sendQueueCapacity: 4,
        maxBatchFrames: 1,
        watchdogs: [Watchdog.sendStall({ probeInterval: "1 second", stallTimeout: "30 seconds" })]
      })
      // a sender that keeps sending: it ends up waiting for queue capacity
      const sender = yield* Effect.fork(Effect.forever(conn.send(frame(7, 500))))
      yield* until(() => conn.unsafeStats().queueDepth === 4)
      yield* at(30999) // first sample (t = 1 s) saw the stall begin
      expect(yield* conn.state).toBe("Active")
      yield* at(31000)
      const reason = yield* conn.closed
      expect(reason._tag).toBe("SendStalled")
      if (reason._tag === "SendStalled") {
        expect(Duration.toMillis(reason.stalledFor)).toBe(30000)
        expect(reason.queuedBytes).toBeGreaterThan(0)
      }
      const err = yield* Effect.flip(Fiber.join(sender))
      expect(err).toMatchObject({ _tag: "ConnectionClosed", reason: { _tag: "SendStalled" } })
      expect(peer.destroyed()).toBe(true)
      const outcome = yield* conn.outcome
      expect(outcome.undelivered.length).toBeGreaterThan(0)
      const w = warnings(logs.lines)
      expect(w.length).toBe(1)
      expect(w[0]!.annotations).toMatchObject({
        connection: "stalled",
        reason: "SendStalled",
        secondsWithoutProgress: 30,
        source: "node"
      })
      expect(w[0]!.annotations["queuedBytes"]).toBe(reason._tag === "SendStalled" ? reason.queuedBytes : -1)
    }).pipe(Effect.provide(logs.layer))
  })

  it.scoped("a slow peer whose acknowledgements keep moving is never reaped; an idle one neither", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 1000 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, {
        writeTimeout: "1 hour",
        maxBatchFrames: 1,
        watchdogs: [Watchdog.sendStall({ probeInterval: "1 second", stallTimeout: "6 seconds" })]
      })
      for (let i = 0; i < 60; i++) yield* conn.send(frame(i, 500))
      // the peer takes a little every 5 s: progress, never a 6 s stall
      const slowReader = yield* Effect.fork(Effect.repeat(
        Effect.sync(() => {
          peer.setReading(true)
          peer.setReading(false)
        }),
        Schedule.spaced("5 seconds")
      ))
      yield* at(60000)
      expect(yield* conn.state).toBe("Active")
      expect(t.stats().queuedBytes).toBeGreaterThan(0) // still slow, still queued
      // the peer catches up; then the connection idles for two minutes
      yield* Fiber.interrupt(slowReader)
      peer.setReading(true)
      yield* until(() => conn.unsafeStats().queueDepth === 0 && t.stats().queuedBytes === 0)
      yield* at(180000)
      expect(yield* conn.state).toBe("Active")
      expect(peer.received().length).toBe(60 * 504)
    }))

  it.scoped("kernel figures: queued = kernel send queue; progress = handed to kernel − send queue", () =>
    Effect.gen(function*() {
      const [t] = yield* Transport.memoryPair()
      let tx = 5000
      const probe = scriptedProbe(() => row("ESTABLISHED", tx, 4))
      const conn = yield* Connection.make(t, {
        writeTimeout: "1 hour",
        watchdogs: [Watchdog.sendStall({ probeInterval: "1 second", stallTimeout: "5 seconds" })]
      }).pipe(Effect.provideService(Watchdog.TcpProbe, probe))
      yield* conn.send(frame(1, 10000)) // all of it "handed to the kernel"; user space is empty
      yield* until(() => t.stats().bytesHandedToKernel === 10004)
      // acknowledgements trickle in for 10 s: tx_queue shrinks by 100 a second
      for (let s = 1; s <= 10; s++) {
        yield* at(s * 1000)
        tx -= 100
      }
      expect(yield* conn.state).toBe("Active")
      // the peer goes silent with 4000 bytes unacknowledged: last progress seen at t = 11 s
      yield* at(15999)
      expect(yield* conn.state).toBe("Active")
      yield* at(16000)
      expect(yield* conn.closed).toEqual(
        DisconnectReason.SendStalled({ queuedBytes: 4000, stalledFor: Duration.millis(5000) })
      )
    }))

  it.scoped("kernel figures: a write that lands while the table is read does not count as acknowledged (a slow reader is never reaped)", () =>
    Effect.gen(function*() {
      const [t] = yield* Transport.memoryPair()
      // the peer acknowledges 100 bytes a second, steadily; the kernel's send queue is the rest
      const ackedAt = (ms: number) => Math.floor(ms / 1000) * 100
      let conn: Connection.Connection | undefined
      let racedAt = -1
      // a table read is asynchronous: the row is the kernel's view when the read started, and at t = 3 s a
      // 5 000-byte write reaches the kernel while the read is under way (after the row, before the probe looks)
      const probe: Watchdog.TcpProbeService = {
        sample: (target) =>
          Effect.gen(function*() {
            const now = yield* TestClock.currentTimeMillis
            const handedBefore = target.stats().bytesHandedToKernel
            const info = { ...row("ESTABLISHED", handedBefore - ackedAt(now)), handedBefore }
            if (now === 3000 && conn !== undefined) {
              racedAt = now
              yield* Effect.orDie(conn.send(frame(9, 5000)))
              yield* Effect.orDie(until(() => target.stats().bytesHandedToKernel === handedBefore + 5004))
            }
            return info
          }),
        reads: () => 0
      }
      conn = yield* Connection.make(t, {
        writeTimeout: "1 hour",
        watchdogs: [Watchdog.sendStall({ probeInterval: "1 second", stallTimeout: "5 seconds" })]
      }).pipe(Effect.provideService(Watchdog.TcpProbe, probe))
      yield* conn.send(frame(1, 100_000))
      yield* until(() => t.stats().bytesHandedToKernel === 100_004)
      // counted as handed *now* − the row's queue, the race would put acked 5 000 bytes ahead of the truth:
      // no "progress" for the next 50 s, and a reap at t = 8 s. Counted from the row's own moment, every
      // second shows 100 more bytes acknowledged.
      yield* at(60_000)
      expect(racedAt).toBe(3000)
      expect(yield* conn.state).toBe("Active")
    }))

  it.scoped("kernel figures: nothing queued (tx_queue 0, user space empty) is never a stall", () =>
    Effect.gen(function*() {
      const [t] = yield* Transport.memoryPair()
      const probe = scriptedProbe(() => row("ESTABLISHED", 0))
      const conn = yield* Connection.make(t, {
        watchdogs: [Watchdog.sendStall({ probeInterval: "1 second", stallTimeout: "2 seconds" })]
      }).pipe(Effect.provideService(Watchdog.TcpProbe, probe))
      yield* conn.send(frame(1, 100))
      yield* at(60000)
      expect(yield* conn.state).toBe("Active")
      expect(probe.reads()).toBe(60)
    }))

  it.effect("stallTimeout and probeInterval come from Config when not given", () =>
    Effect.gen(function*() {
      const fromEnv = yield* Watchdog.sendStallConfig
      expect(Duration.toMillis(fromEnv.stallTimeout)).toBe(2000)
      expect(Duration.toMillis(fromEnv.probeInterval)).toBe(500)
      const defaults = yield* Effect.withConfigProvider(Watchdog.sendStallConfig, emptyProvider)
      expect(Duration.toMillis(defaults.stallTimeout)).toBe(30000)
      expect(Duration.toMillis(defaults.probeInterval)).toBe(1000)
    }).pipe(Effect.withConfigProvider(envProvider)))

  it.scoped("a stall timeout from Config is what the reaper uses", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 10 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, { writeTimeout: "1 hour", watchdogs: [Watchdog.sendStall()] })
      yield* conn.send(frame(1, 100))
      // probe ticks every 500 ms: stall first seen at 500, reaped at 2500
      yield* at(2499)
      expect(yield* conn.state).toBe("Active")
      yield* at(2500)
      expect((yield* conn.closed)._tag).toBe("SendStalled")
    }).pipe(Effect.withConfigProvider(envProvider)))
})

describe("Watchdog.peerGone (TestClock)", () => {
  it.scoped("TCP state CLOSE_WAIT with no read pending: graceful close with PeerGone at the next probe", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      let state = "ESTABLISHED"
      const conn = yield* Connection.make(t, {
        watchdogs: [Watchdog.peerGone({ probeInterval: "1 second" })]
      }).pipe(Effect.provideService(Watchdog.TcpProbe, scriptedProbe(() => row(state, 0))))
      yield* at(3500)
      state = "CLOSE_WAIT"
      yield* at(3999)
      expect(yield* conn.state).toBe("Active")
      yield* at(4000)
      const outcome = yield* conn.outcome
      expect(outcome.reason).toEqual(DisconnectReason.PeerGone({ state: "CLOSE_WAIT" }))
      expect(outcome.finSent).toBe(true) // graceful: our FIN still went out
      expect(peer.destroyed()).toBe(true)
    }))

  it.scoped("CLOSE_WAIT while frames are still being delivered: reaped only at the first probe with no delivery", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, {
        watchdogs: [Watchdog.peerGone({ probeInterval: "1 second" })]
      }).pipe(Effect.provideService(Watchdog.TcpProbe, scriptedProbe(() => row("CLOSE_WAIT", 0))))
      // the peer's last frames trickle in (already sent before its FIN): one at 0.5 s, 1.5 s, ... 4.5 s
      yield* Effect.fork(Effect.repeat(
        Effect.zipRight(Effect.sleep("500 millis"), peer.write(Framing.encode(conn.codec, Framing.utf8("x")))),
        { schedule: Schedule.spaced("500 millis"), times: 4 }
      ))
      yield* at(5999)
      expect(yield* conn.state).toBe("Active")
      expect(conn.unsafeStats().framesIn).toBe(5)
      yield* at(6000)
      expect((yield* conn.outcome).reason).toEqual(DisconnectReason.PeerGone({ state: "CLOSE_WAIT" }))
    }))

  it.scoped("a connection the kernel reports as CLOSE is aborted with PeerGone; queued frames come back", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 10 })
      peer.setReading(false)
      let state = "ESTABLISHED"
      const conn = yield* Connection.make(t, {
        writeTimeout: "1 hour",
        maxBatchFrames: 1,
        watchdogs: [Watchdog.reaper({ probeInterval: "1 second", stallTimeout: "1 hour" })]
      }).pipe(Effect.provideService(Watchdog.TcpProbe, scriptedProbe(() => row(state, 10, 7))))
      for (let i = 0; i < 3; i++) yield* conn.send(frame(i, 50))
      yield* at(2000)
      state = "CLOSE"
      yield* at(3000)
      const outcome = yield* conn.outcome
      expect(outcome.reason).toEqual(DisconnectReason.PeerGone({ state: "CLOSE" }))
      expect(outcome.finSent).toBe(false)
      expect(outcome.delivered + (outcome.truncated ? 1 : 0) + outcome.undelivered.length).toBe(3)
      expect(outcome.closeMillis).toBe(0)
    }))
})

describe("Watchdog.defaults and the /proc/net/tcp parser", () => {
  it("defaults is liveness + reaper, plus idle/heartbeat when asked", () => {
    expect(Watchdog.defaults().length).toBe(2)
    expect(Watchdog.defaults({ liveness: false }).length).toBe(1)
    expect(Watchdog.defaults({ idle: { readIdle: "1 minute" } }).length).toBe(3)
    expect(Watchdog.defaultSettings.stallTimeout).toBe("30 seconds")
  })

  it("parses IPv4 and IPv6 rows (addresses, ports, state, queues, timer, retransmits)", () => {
    const v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
      "   0: 0100007F:1F90 0100007F:C350 01 003E1200:00000010 04:00000014 00000003     0        0 12345 1 0\n" +
      "   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1550 1 0\n"
    const rows = Watchdog.parseProcNetTcp(v4)
    expect(rows.length).toBe(2)
    expect(rows[0]).toEqual({
      local: "127.0.0.1|8080",
      remote: "127.0.0.1|50000",
      state: "ESTABLISHED",
      txQueue: 0x3e1200,
      rxQueue: 16,
      timer: 4,
      retransmits: 3,
      inode: 12345
    })
    expect(rows[1]!.state).toBe("LISTEN")
    const v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
      "   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:C350 08 00000000:00000000 00:00000000 00000000     0        0 777 1 0\n" +
      "   1: 00000000000000000000000001000000:0050 00000000000000000000000001000000:D431 01 00000000:00000000 00:00000000 00000000     0        0 778 1 0\n"
    const rows6 = Watchdog.parseProcNetTcp(v6)
    expect(rows6[0]).toMatchObject({ local: "127.0.0.1|8080", remote: "127.0.0.1|50000", state: "CLOSE_WAIT" })
    expect(rows6[1]).toMatchObject({ local: Watchdog.endpoint("::1", 80), remote: Watchdog.endpoint("::1", 54321) })
  })

  it("normalizes Node's address forms to the table's", () => {
    expect(Watchdog.endpoint("::ffff:127.0.0.1", 80)).toBe("127.0.0.1|80")
    expect(Watchdog.endpoint("127.0.0.1", 80)).toBe("127.0.0.1|80")
    expect(Watchdog.endpoint("::1", 1)).toBe("0:0:0:0:0:0:0:1|1")
    expect(Watchdog.endpoint("fe80::a:b%eth0", 2)).toBe("fe80:0:0:0:0:0:a:b|2")
    expect(Watchdog.endpoint("2001:db8::", 3)).toBe("2001:db8:0:0:0:0:0:0|3")
  })
})

const envProvider = ConfigProvider.fromMap(
  new Map([["TETHER_STALL_TIMEOUT", "2 seconds"], ["TETHER_PROBE_INTERVAL", "500 millis"]])
)
const emptyProvider = ConfigProvider.fromMap(new Map())
