/**
 * The FIX example (examples/fix): the tag=value codec, and the session state
 * machine against a scripted counterparty on an in-memory transport, in
 * virtual time (heartbeat / test request / peer timeout, logon and logout
 * timeouts, gaps, resend requests, the fatal MsgSeqNum-too-low path).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { Connection, Framing, Transport } from "effect-tether"
import {
  checksum,
  encodeBody,
  fixCodec,
  get,
  isMalformedMarker,
  malformedError,
  type Message,
  MsgType,
  parseBody,
  Tag,
  wire
} from "../examples/fix/codec.js"
import { type SessionConfig, SequenceStore, start } from "../examples/fix/session.js"
import { memoryFixPeer, peerMessage } from "./helpers/fixPeer.js"
import { makeRecorder } from "./helpers/fixRecorder.js"

const bytes = (s: string) => new TextEncoder().encode(s.replaceAll("|", "\x01"))
const decodeChunks = (codec: Framing.Codec, chunks: ReadonlyArray<Uint8Array>) => {
  const decoder = codec.makeDecoder()
  const out: Array<Uint8Array> = []
  let error: Framing.FrameError | undefined
  for (const c of chunks) {
    error = decoder.decode(c, out)
    if (error) break
  }
  return { frames: out.map((f) => Framing.text(f).replaceAll("\x01", "|")), error }
}

describe("FIX codec", () => {
  it("validates a known FIX message (BodyLength 65, CheckSum 062)", () => {
    const msg = "8=FIX.4.2|9=65|35=A|49=SERVER|56=CLIENT|34=177|52=20090107-18:15:16|98=0|108=30|10=062|"
    const r = decodeChunks(fixCodec({ beginString: "FIX.4.2" }), [bytes(msg)])
    expect(r.error).toBeUndefined()
    expect(r.frames).toEqual(["35=A|49=SERVER|56=CLIENT|34=177|52=20090107-18:15:16|98=0|108=30|"])
    expect(checksum(bytes("8=FIX.4.2|9=65|35=A|49=SERVER|56=CLIENT|34=177|52=20090107-18:15:16|98=0|108=30|"))).toBe("062")
  })

  it("round-trips messages split at every byte, several per chunk", () => {
    const codec = fixCodec()
    const a = encodeBody([[35, "0"], [34, "2"]])
    const b = encodeBody([[35, "1"], [34, "3"], [112, "x=y"]])
    const wireBytes = new Uint8Array([...Framing.encode(codec, a), ...Framing.encode(codec, b), ...Framing.encode(codec, a)])
    expect(Framing.text(Framing.encode(codec, a)).replaceAll("\x01", "|")).toBe("8=FIX.4.4|9=10|35=0|34=2|10=166|")
    const oneByOne = decodeChunks(codec, Array.from(wireBytes, (x) => new Uint8Array([x])))
    expect(oneByOne.error).toBeUndefined()
    expect(oneByOne.frames).toEqual(["35=0|34=2|", "35=1|34=3|112=x=y|", "35=0|34=2|"])
    expect(decodeChunks(codec, [wireBytes]).frames).toHaveLength(3)
    expect(parseBody(b).fields).toEqual([[35, "1"], [34, "3"], [112, "x=y"]])
  })

  it("rejects a wrong CheckSum, BeginString, BodyLength or leading garbage as MalformedFrame", () => {
    const good = Framing.text(wire([[35, "0"], [34, "2"]]))
    const cases: Array<[string, string, RegExp]> = [
      ["checksum", good.replace(/10=\d{3}/, "10=000"), /CheckSum \(10\) mismatch/],
      ["begin string", good.replace("FIX.4.4", "FIX.4.2"), /BeginString FIX\.4\.4/],
      ["body length not a number", good.replace("9=10", "9=1x"), /BodyLength \(9\) is not a number/],
      ["body length too short", good.replace("9=10", "9=8"), /does not end where CheckSum/],
      ["garbage before the message", `xx${good}`, /BeginString/],
      ["no BodyLength", good.replace("\x019=10", "\x0135=10"), /BodyLength \(9\)/]
    ]
    for (const [name, text, pattern] of cases) {
      const r = decodeChunks(fixCodec(), [new TextEncoder().encode(text)])
      expect(r.error?.reason, name).toBe("MalformedFrame")
      expect(r.error?.message, name).toMatch(pattern)
      expect(r.frames, name).toEqual([])
    }
  })

  it("detects a too large message from BodyLength, before the body arrives", () => {
    const r = decodeChunks(fixCodec({ maxFrameBytes: 100 }), [bytes("8=FIX.4.4|9=500|35=0|")])
    expect(r.error?.reason).toBe("FrameTooLarge")
    expect(r.error?.size).toBe(500 + 16 + 7)
    const codec = fixCodec({ maxFrameBytes: 40 })
    expect(codec.check(encodeBody([[35, "0"], [58, "x".repeat(40)]]))?.reason).toBe("FrameTooLarge")
    expect(codec.check(bytes("34=1|"))?.reason).toBe("MalformedFrame")
    expect(codec.check(bytes("35=0"))?.reason).toBe("MalformedFrame")
  })

  it("malformed: \"deliver\" hands over one marker frame, then ignores the rest", () => {
    const codec = fixCodec({ malformed: "deliver" })
    const decoder = codec.makeDecoder()
    const out: Array<Uint8Array> = []
    const good = wire([[35, "0"], [34, "2"]])
    const bad = Framing.text(good).replace(/10=\d{3}/, "10=999")
    expect(decoder.decode(new Uint8Array([...good, ...new TextEncoder().encode(bad), ...good]), out)).toBeUndefined()
    expect(out).toHaveLength(2)
    expect(isMalformedMarker(out[0]!)).toBe(false)
    expect(isMalformedMarker(out[1]!)).toBe(true)
    const err = malformedError(out[1]!)
    expect(err.reason).toBe("MalformedFrame")
    expect(err.message).toMatch(/CheckSum \(10\) mismatch: got 999/)
    expect(decoder.decode(good, out)).toBeUndefined()
    expect(out).toHaveLength(2)
  })

  it.scoped("a connection with the strict codec ends with MalformedFrame on a bad CheckSum", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, { codec: fixCodec() })
      const good = wire([[35, "0"], [34, "2"]])
      yield* peer.write(bytes(Framing.text(good).replace(/10=\d{3}/, "10=000")))
      const reason = yield* conn.closed
      expect(reason._tag).toBe("MalformedFrame")
    }))
})

// ---------------------------------------------------------------------------
// the session, in virtual time

const setup = (config?: Partial<SessionConfig>, store = new SequenceStore()) =>
  Effect.gen(function*() {
    const [t, p] = yield* Transport.memoryPair()
    const conn = yield* Connection.make(t, {
      codec: fixCodec({ malformed: "deliver" }),
      lingerTimeout: "2 seconds",
      drainTimeout: "2 seconds"
    })
    const rec = makeRecorder()
    const session = yield* start(conn, {
      senderCompId: "TETHER",
      targetCompId: "QFIX",
      heartBtInt: 30,
      observe: rec.observe,
      ...config
    }, store)
    const peer = memoryFixPeer(p)
    return { conn, session, peer, store, rec }
  })

type Setup = Effect.Effect.Success<ReturnType<typeof setup>>

/** The peer answers our Logon with its own (MsgSeqNum 1). */
const logon = ({ peer, session }: Setup, heartBtInt = 30) =>
  Effect.gen(function*() {
    yield* peer.until("our Logon", (ms) => ms.some((m) => m.type === MsgType.Logon))
    yield* peer.send(MsgType.Logon, 1, [[98, "0"], [108, String(heartBtInt)]])
    yield* session.loggedOn
  })

const types = (ms: ReadonlyArray<Message>) => ms.map((m) => m.type)
const seqs = (ms: ReadonlyArray<Message>) => ms.map((m) => Number(get(m, Tag.MsgSeqNum)))

describe("FIX session (TestClock)", () => {
  it.scoped("Logon carries HeartBtInt, MsgSeqNum 1 and ResetSeqNumFlag on a fresh store", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* logon(s)
      const ours = s.peer.inbound()[0]!
      expect(ours.type).toBe(MsgType.Logon)
      expect(get(ours, Tag.HeartBtInt)).toBe("30")
      expect(get(ours, Tag.MsgSeqNum)).toBe("1")
      expect(get(ours, Tag.ResetSeqNumFlag)).toBe("Y")
      expect(get(ours, Tag.SenderCompID)).toBe("TETHER")
      expect(get(ours, Tag.TargetCompID)).toBe("QFIX")
      expect(get(ours, Tag.SendingTime)).toBe("19700101-00:00:00.000")
      expect(s.session.phase()).toBe("LoggedOn")
      expect(s.store.nextIn).toBe(2)
      yield* s.conn.abort()
    }))

  it.scoped("a silent peer: Heartbeat at 30 s, TestRequest at 36 s, PeerTimeout at 72 s", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* logon(s)
      yield* TestClock.adjust("29999 millis")
      yield* s.peer.settle
      expect(types(s.peer.inbound())).toEqual(["A"])
      yield* TestClock.adjust("1 millis")
      yield* s.peer.until("a Heartbeat at 30 s", (ms) => types(ms).join() === "A,0")
      yield* TestClock.adjust("5999 millis")
      yield* s.peer.settle
      expect(types(s.peer.inbound())).toEqual(["A", "0"])
      yield* TestClock.adjust("1 millis")
      yield* s.peer.until("a TestRequest at 36 s", (ms) => types(ms).join() === "A,0,1")
      const tr = s.peer.inbound()[2]!
      expect(get(tr, Tag.TestReqID)).toBe("TEST-1")
      expect(seqs(s.peer.inbound())).toEqual([1, 2, 3])
      // the TestRequest was outbound traffic: the next Heartbeat is due at 66 s
      yield* TestClock.adjust("29999 millis")
      yield* s.peer.settle
      expect(types(s.peer.inbound())).toEqual(["A", "0", "1"])
      yield* TestClock.adjust("1 millis")
      yield* s.peer.until("a Heartbeat at 66 s", (ms) => types(ms).join() === "A,0,1,0")
      yield* TestClock.adjust("5999 millis") // 71.999 s
      yield* s.peer.settle
      expect(yield* s.conn.state).toBe("Active")
      expect(types(s.peer.inbound())).toEqual(["A", "0", "1", "0"])
      yield* TestClock.adjust("1 millis") // 72 s: the next expiry after the TestRequest
      const end = yield* s.session.end
      expect(end.reason._tag).toBe("PeerTimeout")
      expect(end.decision).toBe("Reconnect")
      expect(end.logoutSent).toBe(false)
      expect(s.peer.peer.finReceived()).toBe(true)
      expect(end.outcome.closeMillis).toBe(0) // the peer answered our FIN
    }))

  it.scoped("a peer that answers the TestRequest keeps the session up", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* logon(s)
      yield* TestClock.adjust("36 seconds")
      yield* s.peer.until("a TestRequest", (ms) => ms.some((m) => m.type === MsgType.TestRequest))
      yield* s.peer.send(MsgType.Heartbeat, 2, [[Tag.TestReqID, "TEST-1"]])
      yield* TestClock.adjust("36 seconds") // 72 s
      yield* s.peer.settle
      expect(yield* s.conn.state).toBe("Active")
      expect(s.session.phase()).toBe("LoggedOn")
      expect(s.store.nextIn).toBe(3)
      yield* s.conn.abort()
    }))

  it.scoped("an inbound TestRequest is answered with a Heartbeat carrying its TestReqID", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* logon(s)
      yield* s.peer.send(MsgType.TestRequest, 2, [[Tag.TestReqID, "PING-7"]])
      yield* s.peer.until("the answer", (ms) => ms.some((m) => m.type === MsgType.Heartbeat))
      const hb = s.peer.inbound()[1]!
      expect(get(hb, Tag.TestReqID)).toBe("PING-7")
      expect(get(hb, Tag.MsgSeqNum)).toBe("2")
      yield* s.conn.abort()
    }))

  it.scoped("send refuses a value containing SOH without using a MsgSeqNum", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* logon(s)
      const err = yield* Effect.flip(s.session.send("B", [[148, "a\x01b"]]))
      expect(err._tag).toBe("FrameError")
      expect(err.reason).toBe("MalformedFrame")
      expect(yield* s.session.send("B", [[148, "ok"]])).toBe(2)
      yield* s.conn.abort()
    }))

  it.scoped("Logon timeout: no answer within 10 s ends with HandshakeTimeout and Reconnect, without Logout", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* s.peer.until("our Logon", (ms) => ms.length === 1)
      yield* TestClock.adjust("9999 millis")
      yield* s.peer.settle
      expect(s.session.phase()).toBe("LoggingOn")
      yield* TestClock.adjust("1 millis")
      const end = yield* s.session.end
      expect(end.reason._tag).toBe("HandshakeTimeout")
      expect(end.decision).toBe("Reconnect")
      expect(end.loggedOn).toBe(false)
      expect(types(s.peer.inbound())).toEqual(["A"])
    }))

  it.scoped("our Logout: answered at once ends at once; unanswered waits logoutTimeout (2 s), then the linger", () =>
    Effect.gen(function*() {
      const answered = yield* setup()
      yield* logon(answered)
      const f1 = yield* Effect.fork(answered.session.logout("bye"))
      yield* answered.peer.until("our Logout", (ms) => ms.some((m) => m.type === MsgType.Logout))
      yield* answered.peer.send(MsgType.Logout, 2)
      const end1 = yield* Fiber.join(f1)
      expect(get(answered.peer.inbound()[1]!, Tag.Text)).toBe("bye")
      expect(end1.logoutReceived).toBe(true)
      expect(end1.decision).toBe("Stop")
      expect(end1.outcome.closeMillis).toBe(0)

      const silent = yield* setup()
      yield* logon(silent)
      silent.peer.peer.setIgnoreFin(true) // nor does it ever close its side
      const f2 = yield* Effect.fork(silent.session.logout("bye"))
      yield* silent.peer.until("our Logout", (ms) => ms.some((m) => m.type === MsgType.Logout))
      yield* TestClock.adjust("1999 millis")
      yield* silent.peer.settle
      expect(yield* silent.conn.state).toBe("Active")
      expect(silent.peer.peer.finReceived()).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* silent.peer.until("FIN", () => silent.peer.peer.finReceived())
      yield* TestClock.adjust("2 seconds") // the linger
      const end2 = yield* Fiber.join(f2)
      expect(end2.logoutReceived).toBe(false)
      expect(end2.outcome.lingerExpired).toBe(true)
      expect(end2.outcome.closeMillis).toBe(2000)
      expect(silent.peer.peer.destroyed()).toBe(true)
    }))

  it.scoped("the peer's Logout is answered, then the connection closes; decision Reconnect", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* logon(s)
      yield* s.peer.send(MsgType.Logout, 2, [[Tag.Text, "maintenance"]])
      const end = yield* s.session.end
      expect(types(s.peer.inbound())).toEqual(["A", "5"])
      expect(end.text).toBe("logout by peer: maintenance")
      expect(end.decision).toBe("Reconnect")
      expect(end.logoutSent && end.logoutReceived).toBe(true)
    }))

  it.scoped("a gap: one ResendRequest, closed by a SequenceReset-GapFill", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* logon(s)
      yield* s.peer.send(MsgType.Heartbeat, 5)
      yield* s.peer.until("a ResendRequest", (ms) => ms.some((m) => m.type === MsgType.ResendRequest))
      const rr = s.peer.inbound()[1]!
      expect([get(rr, Tag.BeginSeqNo), get(rr, Tag.EndSeqNo)]).toEqual(["2", "0"])
      yield* s.peer.send(MsgType.Heartbeat, 6) // still in the gap: no second request
      yield* s.peer.settle
      yield* s.peer.send(MsgType.SequenceReset, 2, [[Tag.PossDupFlag, "Y"], [Tag.GapFillFlag, "Y"], [Tag.NewSeqNo, "7"]])
      yield* s.peer.send(MsgType.TestRequest, 7, [[Tag.TestReqID, "after-gap"]])
      yield* s.peer.until("the answer after the gap", (ms) => ms.some((m) => get(m, Tag.TestReqID) === "after-gap"))
      expect(types(s.peer.inbound())).toEqual(["A", "2", "0"])
      expect(s.store.nextIn).toBe(8)
      expect(s.rec.events.filter((e) => e._tag === "Gap").map((e) => e._tag === "Gap" && [e.expected, e.received]))
        .toEqual([[2, 5], [2, 6]])
      yield* s.conn.abort()
    }))

  it.scoped("the peer's ResendRequest is answered with a GapFill up to our next MsgSeqNum", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* logon(s)
      yield* s.session.send("B", [[148, "news"]]) // 34=2
      yield* s.peer.send(MsgType.ResendRequest, 2, [[Tag.BeginSeqNo, "1"], [Tag.EndSeqNo, "0"]])
      yield* s.peer.until("a GapFill", (ms) => ms.some((m) => m.type === MsgType.SequenceReset))
      const gf = s.peer.inbound()[2]!
      expect(get(gf, Tag.MsgSeqNum)).toBe("1")
      expect(get(gf, Tag.GapFillFlag)).toBe("Y")
      expect(get(gf, Tag.PossDupFlag)).toBe("Y")
      expect(get(gf, Tag.NewSeqNo)).toBe("3")
      expect(s.store.nextOut).toBe(3)
      yield* s.conn.abort()
    }))

  it.scoped("MsgSeqNum too low: ignored with PossDupFlag; without it, Logout with the reason and Stop within the linger", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* logon(s)
      s.peer.peer.setIgnoreFin(true) // the acceptor never closes its socket
      yield* s.peer.send(MsgType.Heartbeat, 1, [[Tag.PossDupFlag, "Y"]])
      yield* s.peer.send(MsgType.Heartbeat, 2)
      yield* s.peer.send(MsgType.Heartbeat, 2) // too low, no PossDupFlag
      yield* s.peer.until("our Logout", (ms) => ms.some((m) => m.type === MsgType.Logout))
      const logout = s.peer.inbound()[1]!
      expect(get(logout, Tag.Text)).toBe("MsgSeqNum too low, expecting 3 but received 2")
      yield* TestClock.adjust("1999 millis")
      yield* s.peer.settle
      expect(yield* s.conn.state).toBe("Closing")
      expect(s.peer.peer.destroyed()).toBe(false)
      yield* TestClock.adjust("1 millis")
      const end = yield* s.session.end
      expect(end.decision).toBe("Stop")
      expect(end.reason._tag).toBe("LocalClose")
      expect(end.outcome.lingerExpired).toBe(true)
      expect(end.outcome.closeMillis).toBe(2000)
      expect(s.peer.peer.destroyed()).toBe(true)
    }))

  it.scoped("a garbled message ends the session with a Logout and MalformedFrame", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* logon(s)
      const bad = Framing.text(peerMessage(MsgType.Heartbeat, 2)).replace(/10=\d{3}/, "10=000")
      yield* s.peer.peer.write(new TextEncoder().encode(bad))
      const end = yield* s.session.end
      expect(end.reason._tag).toBe("MalformedFrame")
      const logout = s.peer.inbound()[1]!
      expect(logout.type).toBe(MsgType.Logout)
      expect(get(logout, Tag.Text)).toMatch(/^garbled message: CheckSum \(10\) mismatch/)
    }))

  it.scoped("a wrong CompID or a first message other than Logon is fatal (Logout, Stop)", () =>
    Effect.gen(function*() {
      const s = yield* setup()
      yield* s.peer.until("our Logon", (ms) => ms.length === 1)
      yield* s.peer.send(MsgType.Heartbeat, 1)
      const end = yield* s.session.end
      expect(end.decision).toBe("Stop")
      expect(end.text).toBe("expected Logon, got MsgType 0")

      const t = yield* setup()
      yield* t.peer.until("our Logon", (ms) => ms.length === 1)
      yield* t.peer.peer.write(peerMessage(MsgType.Logon, 1, [[108, "30"]], { sender: "OTHER" }))
      const end2 = yield* t.session.end
      expect(end2.decision).toBe("Stop")
      expect(end2.text).toMatch(/CompID problem/)
    }))

  it.scoped("sequence numbers carry over to the next connection of the period, and reset with a new period", () =>
    Effect.gen(function*() {
      const store = new SequenceStore()
      store.enterPeriod("2026-11-20")
      const first = yield* setup({}, store)
      yield* logon(first)
      yield* first.peer.send(MsgType.Heartbeat, 2)
      yield* first.peer.until("read", () => store.nextIn === 3)
      yield* first.conn.abort()
      yield* first.session.end
      expect([store.nextOut, store.nextIn]).toEqual([2, 3])

      const second = yield* setup({}, store)
      yield* second.peer.until("our Logon", (ms) => ms.length === 1)
      const again = second.peer.inbound()[0]!
      expect(get(again, Tag.MsgSeqNum)).toBe("2")
      expect(get(again, Tag.ResetSeqNumFlag)).toBeUndefined()
      yield* second.peer.send(MsgType.Logon, 3, [[108, "30"]])
      yield* second.session.loggedOn
      yield* second.conn.abort()

      expect(store.enterPeriod("2026-11-20")).toBe(false)
      expect(store.enterPeriod("2026-11-21")).toBe(true)
      const third = yield* setup({}, store)
      yield* third.peer.until("our Logon", (ms) => ms.length === 1)
      expect(get(third.peer.inbound()[0]!, Tag.MsgSeqNum)).toBe("1")
      expect(get(third.peer.inbound()[0]!, Tag.ResetSeqNumFlag)).toBe("Y")
      yield* third.conn.abort()
    }))
})
