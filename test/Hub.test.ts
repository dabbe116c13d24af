/**
 * The hub: keyed sends, one shared buffer per broadcast, reconnecting peers'
 * backlogs, inbound peers that go away, and the event stream.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Queue, Schedule, TestClock } from "effect"
import { Connection, Dialer, Framing, Hub, Transport } from "effect-tether"
import * as Util from "node:util"
import { memoryServer, receivedFrames, settle } from "./helpers/dial.js"

const utf8 = Framing.utf8

/** An inbound connection over a memory pair whose `sendEncoded` calls are recorded. */
const inbound = (options?: Connection.Options & { readonly kernelBufferBytes?: number }) =>
  Effect.gen(function*() {
    const [near, far] = yield* Transport.memoryPair({ kernelBufferBytes: options?.kernelBufferBytes ?? 65536 })
    const conn = yield* Connection.make(near, options)
    const encoded: Array<Connection.Encoded> = []
    const spy: Connection.Connection = {
      ...conn,
      sendEncoded: (e) => Effect.zipRight(Effect.sync(() => encoded.push(e)), conn.sendEncoded(e)),
      trySendEncoded: (e) => Effect.zipRight(Effect.sync(() => encoded.push(e)), conn.trySendEncoded(e))
    }
    return { conn: spy, far, encoded }
  })

const tagOf = (e: Hub.Event) => `${e.key}:${e._tag}`

describe("Hub", () => {
  it.scoped("an unknown key fails with UnknownPeer; a taken key with DuplicatePeer", () =>
    Effect.gen(function*() {
      const hub = yield* Hub.make()
      const err = yield* Effect.flip(hub.send("nobody", utf8("x")))
      expect(err).toEqual(new Hub.UnknownPeer({ key: "nobody", reason: "NotRegistered" }))
      const a = yield* inbound()
      yield* hub.addInbound("a", a.conn)
      const dup = yield* Effect.flip(hub.addInbound("a", a.conn))
      expect(dup).toMatchObject({ _tag: "DuplicatePeer", reason: "AlreadyRegistered" })
      expect(yield* Effect.flip(hub.remove("nobody"))).toMatchObject({ _tag: "UnknownPeer" })
    }))

  it.scoped("broadcast encodes once: every peer gets the same buffer", () =>
    Effect.gen(function*() {
      const hub = yield* Hub.make()
      const peers = yield* Effect.all([inbound(), inbound(), inbound()])
      for (const [i, p] of peers.entries()) yield* hub.addInbound(`in${i}`, p.conn)
      const server = yield* memoryServer()
      yield* hub.addDialer("out", { connect: server.connect })
      const outFar = yield* Queue.take(server.peers)
      yield* settle
      const result = yield* hub.broadcast(utf8("tick"))
      expect([...result.accepted].sort()).toEqual(["in0", "in1", "in2", "out"])
      expect(result.failed).toEqual([])
      const buffers = peers.map((p) => p.encoded[0]!.bytes)
      expect(buffers.every((b) => b === buffers[0])).toBe(true)
      yield* settle
      for (const p of peers) expect(receivedFrames(p.far)).toEqual(["tick"])
      expect(receivedFrames(outFar)).toEqual(["tick"])
    }))

  it.scoped("a reconnecting key keeps its frames in the backlog and gets each exactly once", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const hub = yield* Hub.make({ onEvent: (e) => Effect.sync(() => events.push(tagOf(e))) })
      const server = yield* memoryServer()
      yield* hub.addDialer("venue", { connect: server.connect, backoff: Schedule.spaced("1 second") })
      const first = yield* Queue.take(server.peers)
      yield* settle
      yield* hub.send("venue", utf8("1"))
      yield* settle
      yield* first.reset
      yield* settle
      yield* hub.send("venue", utf8("2"))
      yield* hub.broadcast(utf8("3"))
      yield* TestClock.adjust("1 second")
      const second = yield* Queue.take(server.peers)
      yield* settle
      yield* hub.send("venue", utf8("4"))
      yield* settle
      expect(receivedFrames(first)).toEqual(["1"])
      expect(receivedFrames(second)).toEqual(["2", "3", "4"])
      expect(events).toEqual(["venue:Connected", "venue:Disconnected", "venue:Reconnected"])
    }))

  it.scoped("an inbound peer that disconnects is removed and what it had queued is reported", () =>
    Effect.gen(function*() {
      const reported: Array<Hub.Event> = []
      const hub = yield* Hub.make({ onEvent: (e) => Effect.sync(() => reported.push(e)) })
      const p = yield* inbound({ kernelBufferBytes: 8, maxBatchFrames: 1 })
      p.far.setReading(false)
      yield* hub.addInbound("client", p.conn)
      for (const s of ["a", "b", "c", "d"]) yield* hub.send("client", utf8(s))
      yield* settle
      yield* p.far.reset
      yield* settle
      const down = reported.find((e) => e._tag === "Disconnected")
      expect(down).toMatchObject({ key: "client", kind: "inbound", reason: { _tag: "IoError" } })
      const undelivered = (down as Extract<Hub.Event, { _tag: "Disconnected" }>).undelivered.map(Framing.text)
      // "a" reached the (stalled) kernel; the rest never got out
      expect(undelivered).toEqual(["b", "c", "d"])
      expect(yield* hub.keys).toEqual([])
      expect((yield* Effect.flip(hub.send("client", utf8("e"))))._tag).toBe("UnknownPeer")
    }))

  it.scoped("events: backlog overflow and expiry are reported with the key", () =>
    Effect.gen(function*() {
      const hub = yield* Hub.make()
      const sub = yield* hub.subscribe
      const server = yield* memoryServer()
      server.setRefusing(true)
      yield* hub.addDialer("slow", {
        connect: server.connect,
        backoff: Schedule.spaced("1 hour"),
        backlog: { maxMessages: 2, policy: "dropOldest", maxAge: "10 seconds" }
      })
      yield* settle
      for (const s of ["a", "b", "c"]) yield* hub.send("slow", utf8(s))
      yield* TestClock.adjust("10 seconds")
      const events = Chunk.toArray(yield* Queue.takeAll(sub))
      const summary = events.map((e) =>
        e._tag === "BacklogOverflow" || e._tag === "Expired" ? `${tagOf(e)}:${e.frames.map(Framing.text)}` : tagOf(e)
      )
      expect(summary).toEqual(["slow:BacklogOverflow:a", "slow:Expired:b,c"])
    }))

  it.scoped("remove stops a dialer and hands its backlog back; a Removed event reports it", () =>
    Effect.gen(function*() {
      const events: Array<Hub.Event> = []
      const hub = yield* Hub.make({ onEvent: (e) => Effect.sync(() => events.push(e)) })
      const server = yield* memoryServer()
      server.setRefusing(true)
      yield* hub.addDialer("gone", { connect: server.connect, backoff: Schedule.spaced("1 hour") })
      yield* hub.send("gone", utf8("x"))
      const back = yield* hub.remove("gone")
      expect(back.map(Framing.text)).toEqual(["x"])
      expect(events.map(tagOf)).toEqual(["gone:Removed"])
      expect(yield* hub.keys).toEqual([])
    }))

  it.scoped("a dialer that stops by itself (session decides Stop) leaves the hub, reported as Removed", () =>
    Effect.gen(function*() {
      const events: Array<Hub.Event> = []
      const hub = yield* Hub.make({ onEvent: (e) => Effect.sync(() => events.push(e)) })
      const server = yield* memoryServer()
      yield* hub.addDialer("fatal", {
        connect: server.connect,
        session: () => Effect.succeed(Dialer.Decision.Stop({ reason: "logon rejected" }))
      })
      yield* settle
      expect(events.map(tagOf)).toEqual(["fatal:Connected", "fatal:Disconnected", "fatal:Removed"])
      expect(events.at(-1)).toMatchObject({ reason: "logon rejected", undelivered: [] })
      expect(yield* hub.keys).toEqual([])
      expect((yield* Effect.flip(hub.send("fatal", utf8("x"))))._tag).toBe("UnknownPeer")
    }))

  it.scoped("broadcast: one failing peer does not fail the others", () =>
    Effect.gen(function*() {
      const hub = yield* Hub.make()
      const ok = yield* inbound()
      yield* hub.addInbound("ok", ok.conn)
      const server = yield* memoryServer()
      server.setRefusing(true)
      yield* hub.addDialer("down", {
        connect: server.connect,
        backoff: Schedule.spaced("1 hour"),
        backlog: { maxMessages: 0 } // disconnected, and no room to keep anything
      })
      const r = yield* hub.broadcast(utf8("x"))
      expect(r.accepted).toEqual(["ok"])
      expect(r.failed.map((f) => [f.key, f.error._tag])).toEqual([["down", "BacklogFull"]])
      const tooBig = yield* Effect.flip(hub.broadcast(new Uint8Array(17 * 1024 * 1024)))
      expect(tooBig._tag).toBe("FrameError")
    }))

  it.scoped("broadcast waits for a peer whose queue is full without holding up the others", () =>
    Effect.gen(function*() {
      const hub = yield* Hub.make()
      const slow = yield* inbound({ kernelBufferBytes: 1, sendQueueCapacity: 1, maxBatchFrames: 1 })
      slow.far.setReading(false)
      const fast = yield* inbound()
      yield* hub.addInbound("slow", slow.conn)
      yield* hub.addInbound("fast", fast.conn)
      yield* hub.broadcast(utf8("1")) // slow: written (stuck in its kernel)
      yield* settle
      yield* hub.broadcast(utf8("2")) // slow: queued (queue now full)
      const third = yield* Effect.fork(hub.broadcast(utf8("3")))
      yield* settle
      // the fast peer got "3" although the broadcast is still waiting for the slow one
      expect(receivedFrames(fast.far)).toEqual(["1", "2", "3"])
      expect(third.unsafePoll()).toBeNull()
      slow.far.setReading(true)
      const r = yield* Fiber.join(third)
      expect([...r.accepted].sort()).toEqual(["fast", "slow"])
      yield* settle
      expect(receivedFrames(slow.far)).toEqual(["1", "2", "3"])
    }))

  it.effect("Hub.layer: a hub for the lifetime of the layer", () =>
    Effect.gen(function*() {
      const keys = yield* Effect.gen(function*() {
        const hub = yield* Hub.Tag
        const p = yield* inbound()
        yield* hub.addInbound("x", p.conn)
        return yield* hub.keys
      }).pipe(Effect.scoped, Effect.provide(Hub.layer()))
      expect(keys).toEqual(["x"])
    }))

  it.scoped("a hub is told by Hub.isHub, and shows its wire format and peers (toJSON, toString, inspect)", () =>
    Effect.gen(function*() {
      const hub = yield* Hub.make()
      expect(Hub.isHub(hub)).toBe(true)
      expect(hub[Hub.TypeId]).toBe(Hub.TypeId)
      for (const other of [undefined, null, 0, "hub", {}, { codec: hub.codec }, { ...hub }]) {
        expect(Hub.isHub(other)).toBe(false)
      }
      expect(hub.toJSON()).toEqual({ _id: "Hub", codec: hub.codec.name, peers: [] })
      const a = yield* inbound()
      yield* hub.addInbound("in", a.conn)
      const server = yield* memoryServer()
      const dialer = yield* hub.addDialer("out", { connect: server.connect })
      expect(Dialer.isDialer(dialer)).toBe(true)
      expect(Hub.isHub(dialer)).toBe(false)
      expect(Dialer.isDialer(hub)).toBe(false)
      const json = hub.toJSON()
      expect(json).toEqual({
        _id: "Hub",
        codec: hub.codec.name,
        peers: [{ key: "in", kind: "inbound" }, { key: "out", kind: "outbound" }]
      })
      expect(JSON.parse(JSON.stringify(hub))).toEqual(json)
      expect(JSON.parse(String(hub))).toEqual(json)
      expect(Util.inspect(hub)).toBe(Util.inspect(json))
    }))
})
