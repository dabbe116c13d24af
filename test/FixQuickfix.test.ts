/**
 * Interoperability: tether's FIX initiator (examples/fix) against a real
 * QuickFIX acceptor built from test/quickfix with Debian's libquickfix-dev.
 * Skipped, with the reason printed, where the library cannot be compiled against.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { makeInitiator } from "../examples/fix/client.js"
import { get, MsgType, Tag } from "../examples/fix/codec.js"
import { buildAcceptor, runAcceptor } from "./helpers/fixQuickfix.js"
import { hasField, isReceived, isSent, makeRecorder } from "./helpers/fixRecorder.js"

const build = buildAcceptor()
if (!build.ok) {
  console.warn(`[FixQuickfix] SKIPPED: ${build.reason}`)
} else {
  console.info(
    `[FixQuickfix] QuickFIX ${build.version}; acceptor ${build.compileMillis === 0 ? "reused" : `compiled in ${build.compileMillis} ms`}`
  )
}

describe.skipIf(!build.ok)("FIX initiator against QuickFIX", () => {
  const binary = build.ok ? build.binary : ""

  it.live("logs on, exchanges heartbeats and a test request, and logs out cleanly", () =>
    Effect.scoped(Effect.gen(function*() {
      const qf = yield* runAcceptor(binary)
      const rec = makeRecorder()
      const initiator = yield* makeInitiator({
        port: qf.port,
        reconnectInterval: "200 millis",
        session: { senderCompId: "TETHER", targetCompId: "QFIX", heartBtInt: 1, observe: rec.observe }
      })
      yield* rec.waitFor("Logon answer", (e) => e._tag === "LoggedOn", "5 seconds")
      yield* qf.waitForLine(/^LOGON FIX\.4\.4:QFIX->TETHER/)
      const logon = rec.received(MsgType.Logon)[0]!
      expect(get(logon, Tag.HeartBtInt)).toBe("1")
      expect(get(logon, Tag.MsgSeqNum)).toBe("1")

      // heartbeats both ways, driven by the HeartBtInt of 1 s
      yield* rec.waitFor("a heartbeat from QuickFIX", isReceived(MsgType.Heartbeat, (m) => get(m, Tag.TestReqID) === undefined))
      yield* rec.waitFor("a heartbeat from us", isSent(MsgType.Heartbeat, (m) => get(m, Tag.TestReqID) === undefined))
      yield* qf.waitForLine(/^IN 0 .*\|49=TETHER\|/)

      // our test request, answered with its TestReqID
      const session = Option.getOrThrow(initiator.session())
      yield* session.send(MsgType.TestRequest, [[Tag.TestReqID, "TETHER-TR-1"]])
      yield* rec.waitFor("the answer to our TestRequest", isReceived(MsgType.Heartbeat, hasField(Tag.TestReqID, "TETHER-TR-1")))
      yield* qf.waitForLine(/^OUT 0 .*\|112=TETHER-TR-1\|/)

      // logout both ways, then the connection closes in order (QuickFIX closes its side)
      const outcome = yield* initiator.stop("bye")
      expect(outcome.reason).toBe("bye")
      const end = initiator.ends()[0]!
      expect(end.loggedOn).toBe(true)
      expect(end.logoutSent).toBe(true)
      expect(end.logoutReceived).toBe(true)
      expect(end.outcome.peerEof).toBe(true)
      expect(end.outcome.lingerExpired).toBe(false)
      expect(end.outcome.undelivered).toEqual([])
      yield* qf.waitForLine(/^IN 5 .*\|58=bye\|/)
      yield* qf.waitForLine(/^LOGOUT FIX\.4\.4:QFIX->TETHER/)
      // QuickFIX saw every message in sequence: no ResendRequest, no Reject
      expect(qf.lines().filter((l) => /^(OUT|IN) [23] /.test(l))).toEqual([])
      expect(rec.received(MsgType.Reject)).toEqual([])
      expect(initiator.ends()).toHaveLength(1)
    })))

  it.live("a gap on our side: QuickFIX asks for a resend, our SequenceReset-GapFill satisfies it", () =>
    Effect.scoped(Effect.gen(function*() {
      const qf = yield* runAcceptor(binary)
      const rec = makeRecorder()
      const initiator = yield* makeInitiator({
        port: qf.port,
        reconnectInterval: "200 millis",
        session: { senderCompId: "TETHER", targetCompId: "QFIX", heartBtInt: 1, observe: rec.observe }
      })
      yield* rec.waitFor("Logon answer", (e) => e._tag === "LoggedOn", "5 seconds")
      const session = Option.getOrThrow(initiator.session())
      // skip three numbers: QuickFIX sees MsgSeqNum too high
      const skippedFrom = initiator.store.nextOut
      initiator.store.nextOut += 3
      yield* session.send(MsgType.TestRequest, [[Tag.TestReqID, "AFTER-GAP"]])
      const rr = yield* rec.waitFor("QuickFIX's ResendRequest", isReceived(MsgType.ResendRequest))
      expect(rr._tag === "Received" && get(rr.message, Tag.BeginSeqNo)).toBe(String(skippedFrom))
      const gapFill = yield* rec.waitFor("our GapFill", isSent(MsgType.SequenceReset))
      expect(gapFill._tag === "Sent" && [get(gapFill.message, Tag.MsgSeqNum), get(gapFill.message, Tag.GapFillFlag)])
        .toEqual([String(skippedFrom), "Y"])
      // QuickFIX accepts the fill and is back in sequence: a new TestRequest is answered
      yield* session.send(MsgType.TestRequest, [[Tag.TestReqID, "IN-SEQUENCE"]])
      yield* rec.waitFor("the answer in sequence", isReceived(MsgType.Heartbeat, hasField(Tag.TestReqID, "IN-SEQUENCE")))
      yield* qf.waitForLine(/^IN 4 .*\|123=Y\|/)
      yield* initiator.stop("bye")
      expect(initiator.ends()[0]!.logoutReceived).toBe(true)
      expect(rec.received(MsgType.Reject)).toEqual([])
      expect(qf.lines().filter((l) => /^OUT 5 /.test(l)).join("\n")).not.toMatch(/58=/) // no error Logout
    })))
})
