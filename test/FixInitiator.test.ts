/**
 * The FIX initiator (examples/fix/client.ts on tether's Dialer) against
 * scripted acceptors: the fatal MsgSeqNum-too-low path on a real loopback
 * socket whose owner never closes it (in-process and as a separate process),
 * and the session schedule (window end, midnight rollover) in virtual time.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Option, Queue, Schedule, TestClock } from "effect"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { DisconnectReason, type Dialer, SessionSchedule, Transport } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { makeInitiator } from "../examples/fix/client.js"
import { fixCodec, get, type Message, MsgType, parseBody, Tag } from "../examples/fix/codec.js"
import { serveAcceptor } from "../examples/fix/server.js"
import { peerMessage, socketMessages } from "./helpers/fixPeer.js"
import { makeRecorder } from "./helpers/fixRecorder.js"
import { rawServer } from "./helpers/rawPeer.js"

/** Lets fibers run (no virtual time passes) until `cond` holds. */
const eventually = (what: string, cond: () => boolean) => Testing.eventually(cond, { what })
const settle = Effect.repeatN(Testing.macrotask, 50)

// ---------------------------------------------------------------------------
// fatal path on a real socket

describe("FIX initiator: MsgSeqNum too low against an acceptor that never closes its socket", () => {
  it.live("Logout with the reason, Stop (no reconnect), ended within the linger bound", () =>
    Effect.scoped(Effect.gen(function*() {
      const badSentAt = yield* Deferred.make<number>()
      const received: Array<Message> = []
      // answers the Logon, then repeats MsgSeqNum 1; never closes (allowHalfOpen, FIN ignored)
      const server = yield* rawServer({
        allowHalfOpen: true,
        onSocket: (socket) =>
          socketMessages(socket, (m) => {
            received.push(m)
            if (m.type === MsgType.Logon) {
              socket.write(peerMessage(MsgType.Logon, 1, [[98, "0"], [108, "30"]]))
              socket.write(peerMessage(MsgType.Heartbeat, 1), () =>
                Deferred.unsafeDone(badSentAt, Effect.succeed(performance.now())))
            }
          })
      })
      const initiator = yield* makeInitiator({
        port: server.port,
        lingerTimeout: "1 second",
        reconnectInterval: "50 millis",
        session: { senderCompId: "TETHER", targetCompId: "QFIX", heartBtInt: 30 }
      })
      const outcome = yield* initiator.dialer.outcome.pipe(Effect.timeout("5 seconds"))
      const elapsed = performance.now() - (yield* Deferred.await(badSentAt))
      console.info(`[FixInitiator] fatal path: dialer ended ${elapsed.toFixed(0)} ms after the bad MsgSeqNum (linger 1 s)`)
      expect(outcome.reason).toBe("MsgSeqNum too low, expecting 2 but received 1")
      const end = initiator.ends()[0]!
      expect(end.decision).toBe("Stop")
      expect(end.outcome.lingerExpired).toBe(true) // the acceptor never answered our FIN
      // bounded by the linger (1 s), with slack for a shared CPU
      expect(elapsed).toBeGreaterThanOrEqual(900)
      expect(elapsed).toBeLessThan(1000 + 700)
      const logout = received.find((m) => m.type === MsgType.Logout)!
      expect(get(logout, Tag.Text)).toBe("MsgSeqNum too low, expecting 2 but received 1")
      // no reconnect, even after many reconnect intervals
      yield* Effect.sleep("300 millis")
      expect(server.sockets).toHaveLength(1)
      expect(yield* initiator.dialer.status).toBe("Stopped")
      expect(initiator.dialer.unsafeStats().attempts).toBe(1)
    })))

  it.live("the initiator program exits (code 2) within the linger bound", () =>
    Effect.scoped(Effect.gen(function*() {
      const badSentAt = yield* Deferred.make<number>()
      const server = yield* rawServer({
        allowHalfOpen: true,
        onSocket: (socket) =>
          socketMessages(socket, (m) => {
            if (m.type === MsgType.Logon) {
              socket.write(peerMessage(MsgType.Logon, 1, [[98, "0"], [108, "30"]], { sender: "ACCEPTOR" }))
              socket.write(peerMessage(MsgType.Heartbeat, 1, [], { sender: "ACCEPTOR" }), () =>
                Deferred.unsafeDone(badSentAt, Effect.succeed(performance.now())))
            }
          })
      })
      const root = Path.resolve(Path.dirname(new URL(import.meta.url).pathname), "..")
      const exited = yield* Deferred.make<{ code: number | null; at: number; stdout: string }>()
      let stdout = ""
      const child = ChildProcess.spawn(
        process.execPath,
        ["--conditions=effect-tether-source", "--import", "tsx", "examples/fix/initiator.ts", "--port", String(server.port), "--linger", "1s", "--reconnect", "50ms"],
        { cwd: root, stdio: ["ignore", "pipe", "pipe"] }
      )
      child.stdout.setEncoding("utf8")
      child.stdout.on("data", (d: string) => (stdout += d))
      child.stderr.on("data", (d: Buffer) => (stdout += d.toString()))
      child.on("exit", (code) => Deferred.unsafeDone(exited, Effect.succeed({ code, at: performance.now(), stdout })))
      yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL")))
      const done = yield* Deferred.await(exited).pipe(Effect.timeout("15 seconds"))
      const sentAt = yield* Deferred.await(badSentAt)
      console.info(`[FixInitiator] fatal path: program exited ${(done.at - sentAt).toFixed(0)} ms after the bad MsgSeqNum (linger 1 s)`)
      expect(done.code, done.stdout).toBe(2)
      expect(done.stdout).toMatch(/58=MsgSeqNum too low, expecting 2 but received 1\|/)
      expect(done.stdout).toMatch(/stopped: MsgSeqNum too low/)
      // the linger (1 s) plus the process teardown, with slack for a shared CPU
      expect(done.at - sentAt).toBeLessThan(1000 + 1000)
      expect(server.sockets).toHaveLength(1)
    })), 20_000)
})

// ---------------------------------------------------------------------------
// schedule, in virtual time: scripted acceptors on in-memory transports

interface ScriptedAcceptor {
  readonly peer: Transport.MemoryPeer
  readonly received: Array<Message>
}

/**
 * A connect function for the initiator that makes an in-memory transport per
 * attempt; its far end answers like a plain acceptor (Logon, TestRequest,
 * Logout) with its own sequence numbers, reset by 141=Y.
 */
const scriptedAcceptors = Effect.gen(function*() {
  const peers = yield* Queue.unbounded<ScriptedAcceptor>()
  const all: Array<ScriptedAcceptor> = []
  let nextOut = 1
  const scope = yield* Effect.scope
  const connect = Effect.gen(function*() {
    const [transport, peer] = yield* Transport.memoryPair()
    const acc: ScriptedAcceptor = { peer, received: [] }
    all.push(acc)
    yield* Queue.offer(peers, acc)
    const decoder = fixCodec().makeDecoder()
    const reply = (type: string, fields: Parameters<typeof peerMessage>[2] = []) =>
      Effect.flatMap(Effect.clockWith((c) => c.currentTimeMillis), (at) =>
        peer.write(peerMessage(type, nextOut++, fields, { at })))
    const loop: Effect.Effect<void> = Effect.flatMap(peer.read, (chunks) => {
      if (chunks.length === 0) return Effect.void
      const frames: Array<Uint8Array> = []
      for (const c of chunks) decoder.decode(c, frames)
      return Effect.zipRight(
        Effect.forEach(frames, (f) => {
          const m = parseBody(f)
          acc.received.push(m)
          switch (m.type) {
            case MsgType.Logon:
              if (get(m, Tag.ResetSeqNumFlag) === "Y") nextOut = 1
              return reply(MsgType.Logon, [[98, "0"], [108, get(m, Tag.HeartBtInt) ?? "30"]])
            case MsgType.TestRequest:
              return reply(MsgType.Heartbeat, [[Tag.TestReqID, get(m, Tag.TestReqID) ?? ""]])
            case MsgType.Logout:
              return reply(MsgType.Logout)
            default:
              return Effect.void
          }
        }, { discard: true }),
        loop
      )
    })
    yield* Effect.forkIn(loop, scope)
    return transport
  })
  return { connect, peers, all }
})

const logons = (acc: ScriptedAcceptor) => acc.received.filter((m) => m.type === MsgType.Logon)

describe("FIX initiator: session schedule (TestClock)", () => {
  it.scoped("no connect outside the window; at its end Logout then disconnect; the next window is a new period", () =>
    Effect.gen(function*() {
      // Europe/London is on UTC in November: the window is 08:00-08:05 UTC. Virtual spans are kept
      // to minutes: every periodic fiber of the stack runs at each of its ticks under TestClock.
      yield* TestClock.setTime(Date.parse("2026-11-20T07:59:00Z"))
      const { connect, all } = yield* scriptedAcceptors
      const events: Array<Dialer.Event> = []
      const rec = makeRecorder()
      const initiator = yield* makeInitiator({
        connect,
        schedule: SessionSchedule.daily({ start: "08:00", end: "08:05", timeZone: "Europe/London" }),
        reconnectInterval: "1 second",
        session: { senderCompId: "TETHER", targetCompId: "QFIX", heartBtInt: 30, observe: rec.observe },
        onDialerEvent: (e) => Effect.sync(() => void events.push(e))
      })
      yield* TestClock.adjust("59999 millis")
      yield* settle
      expect(all).toHaveLength(0) // 07:59:59.999: outside the window, no connect
      expect(events.map((e) => e._tag)).toEqual(["WaitingForWindow"])
      yield* TestClock.adjust("1 millis") // 08:00
      yield* eventually("logged on", () => rec.events.some((e) => e._tag === "LoggedOn"))
      expect(all).toHaveLength(1)
      expect(get(logons(all[0]!)[0]!, Tag.MsgSeqNum)).toBe("1")
      expect(initiator.store.period).toBe("2026-11-20")
      yield* Option.getOrThrow(initiator.session()).send(MsgType.TestRequest, [[Tag.TestReqID, "x"]])
      yield* eventually("answer", () => rec.received(MsgType.Heartbeat).length === 1)

      // 08:05: Logout with the reason, the acceptor answers, then the connection closes
      yield* TestClock.adjust("4 minutes")
      yield* TestClock.adjust("59 seconds")
      yield* settle
      expect(all[0]!.received.filter((m) => m.type === MsgType.Logout)).toEqual([])
      yield* TestClock.adjust("1 second")
      yield* eventually("disconnected", () => events.some((e) => e._tag === "Disconnected"))
      const logout = all[0]!.received.find((m) => m.type === MsgType.Logout)!
      expect(get(logout, Tag.Text)).toBe("session window ended")
      const end = initiator.ends()[0]!
      expect(end.reason._tag).toBe("ScheduleEnd")
      expect(end.logoutReceived).toBe(true)
      expect(all[0]!.peer.finReceived()).toBe(true)
      // heartbeats every 30 s in between; the Logout was the last message of the period
      expect(Number(get(logout, Tag.MsgSeqNum))).toBe(initiator.store.nextOut - 1)
      expect(initiator.store.nextOut).toBeGreaterThan(10)

      // after the window: waiting for tomorrow's (a new period), no connect
      yield* TestClock.adjust("2 minutes")
      yield* settle
      expect(all).toHaveLength(1)
      expect(yield* initiator.dialer.status).toBe("WaitingForWindow")
      const waiting = events.filter((e) => e._tag === "WaitingForWindow").at(-1)
      expect(waiting?._tag === "WaitingForWindow" && new Date(waiting.opensAt).toISOString()).toBe("2026-11-21T08:00:00.000Z")

      // tomorrow 08:00: a new period, numbers from 1 with ResetSeqNumFlag
      yield* TestClock.setTime(Date.parse("2026-11-21T08:00:00Z"))
      yield* eventually("second logon", () => rec.events.filter((e) => e._tag === "LoggedOn").length === 2)
      expect(all).toHaveLength(2)
      const second = logons(all[1]!)[0]!
      expect(get(second, Tag.MsgSeqNum)).toBe("1")
      expect(get(second, Tag.ResetSeqNumFlag)).toBe("Y")
      expect(initiator.store.period).toBe("2026-11-21")
      yield* Effect.fork(initiator.stop("test over"))
      yield* eventually("stopped", () => initiator.dialer.unsafeStats().status === "Stopped")
    }))

  it.scoped("midnight rollover (24 h window in New York): numbers continue across a reconnect, reset at midnight", () =>
    Effect.gen(function*() {
      // 23:58 in New York (UTC-5 in November)
      yield* TestClock.setTime(Date.parse("2026-11-21T04:58:00Z"))
      const { connect, all } = yield* scriptedAcceptors
      const rec = makeRecorder()
      const initiator = yield* makeInitiator({
        connect,
        schedule: SessionSchedule.daily({ start: "00:00", end: "00:00", timeZone: "America/New_York" }),
        reconnectInterval: "1 second",
        session: { senderCompId: "TETHER", targetCompId: "QFIX", heartBtInt: 30, observe: rec.observe }
      })
      yield* eventually("logged on", () => rec.events.some((e) => e._tag === "LoggedOn"))
      expect(initiator.store.period).toBe("2026-11-20")
      // the connection drops at 23:59: reconnect after 1 s, same period, numbers continue
      yield* TestClock.adjust("1 minute")
      yield* eventually("heartbeats", () => rec.sent(MsgType.Heartbeat).length >= 1)
      yield* all[0]!.peer.reset
      yield* eventually("dropped", () => initiator.ends().length === 1)
      expect(initiator.ends()[0]!.reason._tag).toBe("IoError")
      yield* TestClock.adjust("1 second")
      yield* eventually("second logon", () => rec.events.filter((e) => e._tag === "LoggedOn").length === 2)
      const again = logons(all[1]!)[0]!
      expect(Number(get(again, Tag.MsgSeqNum))).toBeGreaterThan(1)
      expect(get(again, Tag.ResetSeqNumFlag)).toBeUndefined()

      // midnight New York time: Logout, disconnect, reconnect at once into the new period from 1
      yield* TestClock.adjust("58 seconds") // 23:59:59
      yield* settle
      expect(all).toHaveLength(2)
      yield* TestClock.adjust("1 second") // 00:00:00
      yield* eventually("third logon", () => rec.events.filter((e) => e._tag === "LoggedOn").length === 3)
      const rolled = initiator.ends()[1]!
      expect(rolled.reason).toEqual(DisconnectReason.ScheduleEnd({ message: "window ended" }))
      expect(get(all[1]!.received.find((m) => m.type === MsgType.Logout)!, Tag.Text)).toBe("session window ended")
      const fresh = logons(all[2]!)[0]!
      expect(get(fresh, Tag.MsgSeqNum)).toBe("1")
      expect(get(fresh, Tag.ResetSeqNumFlag)).toBe("Y")
      expect(initiator.store.period).toBe("2026-11-21")
      yield* Effect.fork(initiator.stop("test over"))
      yield* eventually("stopped", () => initiator.dialer.unsafeStats().status === "Stopped")
    }))
})

// ---------------------------------------------------------------------------
// the bundled acceptor (on tether's Listener)

describe("FIX initiator against the bundled tether acceptor", () => {
  it.live("logon, test request, logout; a reconnect continues the numbers", () =>
    Effect.scoped(Effect.gen(function*() {
      const acceptor = yield* serveAcceptor({ port: 0 })
      const rec = makeRecorder()
      const initiator = yield* makeInitiator({
        port: acceptor.server.address.port,
        reconnectInterval: "50 millis",
        session: { senderCompId: "TETHER", targetCompId: "ACCEPTOR", heartBtInt: 1, observe: rec.observe }
      })
      yield* rec.waitFor("logon", (e) => e._tag === "LoggedOn")
      const session = Option.getOrThrow(initiator.session())
      yield* session.send(MsgType.TestRequest, [[Tag.TestReqID, "T1"]])
      yield* rec.waitFor("answer", (e) => e._tag === "Received" && get(e.message, Tag.TestReqID) === "T1")
      // the acceptor logs the session out: the initiator answers and reconnects
      const conn = Option.getOrThrow(yield* acceptor.server.connection((yield* acceptor.server.sessions)[0]!.id))
      expect(conn.unsafeStats().state).toBe("Active")
      yield* conn.close("test") // an abrupt (FIN, no Logout) end on the acceptor side
      yield* rec.waitFor("second logon", () => rec.events.filter((e) => e._tag === "LoggedOn").length === 2)
      const secondLogon = rec.sent(MsgType.Logon)[1]!
      expect(Number(get(secondLogon, Tag.MsgSeqNum))).toBeGreaterThanOrEqual(3) // Logon, TestRequest, heartbeats
      expect(get(secondLogon, Tag.ResetSeqNumFlag)).toBeUndefined()
      yield* initiator.stop("done")
      expect(initiator.ends().map((e) => e.decision)).toEqual(["Reconnect", "Stop"])
      expect(initiator.ends()[1]!.logoutReceived).toBe(true)
      // the acceptor's session answered our Logout (await its recorded end); both sides agree on the numbers
      yield* Effect.repeat(Effect.sync(() => acceptor.ends().at(-1)?.logoutReceived === true), {
        until: (done) => done,
        schedule: Schedule.spaced("5 millis")
      }).pipe(Effect.timeout("2 seconds"))
      const last = acceptor.ends().at(-1)!
      expect(last.logoutReceived && last.logoutSent).toBe(true)
      expect(last.text).toBe("logout by peer: done")
      expect(acceptor.store.nextIn).toBe(initiator.store.nextOut)
      expect(acceptor.store.nextOut).toBe(initiator.store.nextIn)
    })))

  it.live("closing the initiator's scope (e.g. Ctrl-C in the program) logs out before disconnecting", () =>
    Effect.scoped(Effect.gen(function*() {
      const acceptor = yield* serveAcceptor({ port: 0 })
      const rec = makeRecorder()
      yield* Effect.scoped(Effect.gen(function*() {
        yield* makeInitiator({
          port: acceptor.server.address.port,
          session: { senderCompId: "TETHER", targetCompId: "ACCEPTOR", heartBtInt: 30, observe: rec.observe }
        })
        yield* rec.waitFor("logon", (e) => e._tag === "LoggedOn")
      }))
      const end = rec.events.find((e) => e._tag === "Ended")
      expect(end?._tag === "Ended" && [end.end.logoutSent, end.end.logoutReceived, end.end.text])
        .toEqual([true, true, "initiator shutting down"])
      expect(rec.sent(MsgType.Logout)).toHaveLength(1)
    })))
})
