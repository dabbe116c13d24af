/**
 * FleetHub on MemoryEngine under TestClock: several nodes in one process, venues on memory transports.
 * Routing, lease loss (stop writing), replay in order after a move with every possible duplicate flagged and
 * bounded to the un-acked window, inbound routing and UnknownPeer after a node's death, broadcast to every
 * node, and the bounds reported (BacklogFull, Expired with payloads, Lost for what the engine dropped, the
 * in-memory backlog while the engine is unreachable).
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Metric, Option, Queue, Schedule, Schema, Scope, TestClock } from "effect"
import { Connection, Engine, FleetHub, Framing, Hub, MemoryEngine, PeerKind, Settings, Transport } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { settle } from "./helpers/dial.js"

const utf8 = Framing.utf8
const text = (u: Uint8Array) => new TextDecoder().decode(u)

/** Venues by name: memory servers whose every accepted connection is kept, in order. */
const venues = () => {
  const servers = new Map<string, Testing.MemoryServer>()
  const conns = new Map<string, Array<Testing.MemoryPeer>>()
  const add = (name: string) =>
    Effect.gen(function*() {
      const s = yield* Testing.memoryServer()
      servers.set(name, s)
      conns.set(name, [])
      return s
    })
  /** Every frame the venue received, over all its connections, in order. */
  const received = (name: string) =>
    Effect.gen(function*() {
      const s = servers.get(name)!
      const list = conns.get(name)!
      const more = yield* Queue.takeAll(s.peers)
      list.push(...Chunk.toReadonlyArray(more))
      return list.flatMap((p) => Testing.receivedFrames(p))
    })
  return { servers, add, received, connections: (name: string) => conns.get(name)!.length }
}

const Spec = Schema.Struct({ venue: Schema.String })

const kindFor = (v: ReturnType<typeof venues>, backlog?: PeerKind.PeerKind<unknown>["backlog"]) =>
  PeerKind.make("venue", {
    spec: Spec,
    dialer: (_key, spec) => ({
      connect: v.servers.get(spec.venue)!.connect,
      backoff: Schedule.spaced("100 millis")
    }),
    backlog,
    markDuplicate: (frame) => utf8(`${text(frame)}!`)
  })

/** Advances the TestClock in steps, letting fibers and memory transports run between them. */
const advance = (millis: number, step = 50) =>
  Effect.gen(function*() {
    for (let t = 0; t < millis; t += step) {
      yield* TestClock.adjust(step)
      yield* settle
    }
  })

const node = (cluster: MemoryEngine.Cluster, id: string, options: FleetHub.Options) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const fleet = yield* FleetHub.make(options).pipe(
      Effect.provide(cluster.layer(id)),
      Scope.extend(scope)
    )
    const events: Array<FleetHub.Event> = []
    const q = yield* fleet.subscribeFleet.pipe(Scope.extend(scope))
    const drain = Effect.map(Queue.takeAll(q), (c) => {
      events.push(...Chunk.toReadonlyArray(c))
      return events
    })
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void).pipe(Effect.ignore))
    return { fleet, scope, drain }
  })

describe("FleetHub (MemoryEngine, TestClock)", () => {
  it.scoped("outbound peers are spread over the nodes, and a send from any node reaches the venue in order", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      for (const n of ["v1", "v2", "v3", "v4"]) yield* v.add(n)
      const kind = kindFor(v)
      const a = yield* node(cluster, "a", { kinds: [kind], leaseTtl: "3 seconds" })
      const b = yield* node(cluster, "b", { kinds: [kind], leaseTtl: "3 seconds" })
      for (const n of ["v1", "v2", "v3", "v4"]) yield* a.fleet.addPeer(n, kind, { venue: n })
      const dup = yield* Effect.flip(b.fleet.addPeer("v1", kind, { venue: "v1" }))
      expect(dup).toMatchObject({ _tag: "DuplicatePeer", reason: "AlreadyRegistered" })
      yield* advance(2000)
      const heldA = yield* a.fleet.held
      const heldB = yield* b.fleet.held
      expect(heldA.length).toBe(2)
      expect(heldB.length).toBe(2)
      expect([...heldA, ...heldB].sort()).toEqual(["v1", "v2", "v3", "v4"])
      for (let i = 0; i < 20; i++) {
        for (const n of ["v1", "v2", "v3", "v4"]) yield* (i % 2 === 0 ? a : b).fleet.send(n, utf8(`${n}-${i}`))
      }
      yield* advance(1000)
      for (const n of ["v1", "v2", "v3", "v4"]) {
        expect(yield* v.received(n)).toEqual(Array.from({ length: 20 }, (_, i) => `${n}-${i}`))
      }
      // acked = written: the logs are empty
      for (const n of ["v1", "v2", "v3", "v4"]) expect(cluster.logSize(n)).toBe(0)
      expect(yield* Effect.flip(a.fleet.send("nobody", utf8("x")))).toMatchObject({ _tag: "UnknownPeer" })
      const moved = (yield* a.drain).filter(FleetHub.FleetEvent.$is("Moved"))
      expect(moved.map((m) => m.key).sort()).toEqual([...heldA].sort())
      expect(moved.every((m) => m.to === "a" && Option.isNone(m.from))).toBe(true)
      // the Hub view
      expect([...(yield* b.fleet.keys)].sort()).toEqual(["v1", "v2", "v3", "v4"])
      const info = yield* b.fleet.peer(heldA[0]!)
      expect(Option.map(info, (p) => [p.kind, Option.isNone(p.dialer)])).toEqual(Option.some(["outbound", true]))
      expect(Hub.isHub(a.fleet)).toBe(true)
    }))

  it.scoped("rebalance: a node joining takes its fair share, handed over gracefully (nothing lost, no duplicate); client-only nodes do not count", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      const names = ["v1", "v2", "v3", "v4", "v5", "v6"]
      for (const n of names) yield* v.add(n)
      const kind = kindFor(v)
      const a = yield* node(cluster, "a", { kinds: [kind], leaseTtl: "3 seconds" })
      // two client-only nodes: without them counted, a's fair share stays all six
      const c1 = yield* node(cluster, "c1", { kinds: [kind], leaseTtl: "3 seconds", hold: false })
      yield* node(cluster, "c2", { kinds: [kind], leaseTtl: "3 seconds", hold: false })
      for (const n of names) yield* c1.fleet.addPeer(n, kind, { venue: n })
      yield* advance(2000)
      expect((yield* a.fleet.held).length).toBe(6)
      let i = 0
      const sendAll = Effect.gen(function*() {
        for (const n of names) yield* c1.fleet.send(n, utf8(`${n}-${i}`))
        i++
      })
      for (let k = 0; k < 10; k++) yield* sendAll
      yield* advance(500)
      const b = yield* node(cluster, "b", { kinds: [kind], leaseTtl: "3 seconds" })
      // sends go on while peers move, one per tick
      for (let t = 0; t < 30; t++) {
        yield* sendAll
        yield* advance(100)
      }
      yield* advance(2000)
      const heldA = yield* a.fleet.held
      const heldB = yield* b.fleet.held
      expect([heldA.length, heldB.length]).toEqual([3, 3])
      expect([...heldA, ...heldB].sort()).toEqual(names)
      for (const n of names) expect(yield* v.received(n)).toEqual(Array.from({ length: i }, (_, k) => `${n}-${k}`))
      const moved = (yield* b.drain).filter(FleetHub.FleetEvent.$is("Moved"))
      expect(moved.map((m) => [m.key, Option.getOrNull(m.from)]).sort()).toEqual(heldB.map((k) => [k, "a"]))
      // and it stays so
      yield* advance(3000)
      expect([(yield* a.fleet.held).length, (yield* b.fleet.held).length]).toEqual([3, 3])
      expect((yield* b.drain).filter(FleetHub.FleetEvent.$is("Moved")).length).toBe(3)
    }))

  it.scoped("a node cut off from the engine stops writing before its lease expires; the next holder replays the un-acked window in order, every replayed frame flagged", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      const venue = yield* v.add("v1")
      const kind = kindFor(v)
      const a = yield* node(cluster, "a", { kinds: [kind], leaseTtl: "3 seconds" })
      yield* a.fleet.addPeer("v1", kind, { venue: "v1" })
      yield* advance(1500)
      expect(yield* a.fleet.held).toEqual(["v1"])
      const b = yield* node(cluster, "b", { kinds: [kind], leaseTtl: "3 seconds" })
      yield* advance(1000)
      for (let i = 0; i < 10; i++) yield* b.fleet.send("v1", utf8(`m${i}`))
      yield* advance(500)
      expect(yield* v.received("v1")).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`))
      expect(cluster.logSize("v1")).toBe(0)
      // a reads and writes these (no virtual time passes: it has not come back to ack them yet), then is cut off
      for (let i = 10; i < 15; i++) yield* b.fleet.send("v1", utf8(`m${i}`))
      yield* settle
      cluster.crash("a")
      yield* advance(200)
      const beforeMove = yield* v.received("v1")
      expect(beforeMove).toEqual(Array.from({ length: 15 }, (_, i) => `m${i}`))
      expect(cluster.logSize("v1")).toBe(5)
      // failover within the lease TTL plus one tick
      yield* advance(4000)
      const aEvents = yield* a.drain
      expect(aEvents.filter(FleetHub.FleetEvent.$is("LeaseLost")).map((e) => e.key)).toEqual(["v1"])
      expect(yield* a.fleet.held).toEqual([])
      expect(yield* b.fleet.held).toEqual(["v1"])
      for (let i = 15; i < 20; i++) yield* b.fleet.send("v1", utf8(`m${i}`))
      yield* advance(1000)
      const all = yield* v.received("v1")
      // first arrivals in order; the duplicates are exactly the un-acked window, all flagged ("!")
      expect(all).toEqual([
        ...Array.from({ length: 15 }, (_, i) => `m${i}`),
        ...Array.from({ length: 5 }, (_, i) => `m${i + 10}!`),
        ...Array.from({ length: 5 }, (_, i) => `m${i + 15}`)
      ])
      const bEvents = yield* b.drain
      const moved = bEvents.filter(FleetHub.FleetEvent.$is("Moved"))
      expect(moved).toMatchObject([{ key: "v1", to: "b", from: Option.some("a") }])
      const dups = bEvents.filter(FleetHub.FleetEvent.$is("PossibleDuplicate")).flatMap((e) => e.frames.map(text))
      expect(dups).toEqual(["m10", "m11", "m12", "m13", "m14"])
      // reported as metrics too (process-wide counters: at least this test's)
      expect((yield* Metric.value(FleetHub.metrics.redelivered)).count).toBeGreaterThanOrEqual(5)
      expect((yield* Metric.value(FleetHub.metrics.moves)).count).toBeGreaterThanOrEqual(1)
      expect(cluster.logSize("v1")).toBe(0)
      expect(venue.attempts.length).toBeGreaterThanOrEqual(2)
    }))

  it.scoped("inbound sends route to the node holding the socket; after that node dies, UnknownPeer once its lease expired", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const a = yield* node(cluster, "a", { kinds: [], leaseTtl: "3 seconds" })
      const b = yield* node(cluster, "b", { kinds: [], leaseTtl: "3 seconds" })
      const [near, far] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(near)
      yield* b.fleet.addInbound("client-1", conn)
      yield* a.fleet.send("client-1", utf8("hello"))
      yield* settle
      expect(Testing.receivedFrames(far)).toEqual(["hello"])
      expect(yield* Effect.flip(b.fleet.addInbound("client-1", conn))).toMatchObject({ _tag: "DuplicatePeer" })
      cluster.crash("b")
      // before the TTL the entry still stands, but nobody answers: UnknownPeer
      expect(yield* Effect.flip(a.fleet.send("client-1", utf8("x")))).toMatchObject({ _tag: "UnknownPeer" })
      yield* advance(3500)
      expect(yield* Effect.flip(a.fleet.send("client-1", utf8("x")))).toMatchObject({ _tag: "UnknownPeer" })
      expect(Option.isNone(yield* cluster.engine("a").locate("client-1"))).toBe(true)
      expect(yield* cluster.engine("a").nodes).toEqual(["a"])
    }))

  it.scoped("a send the engine could not route because it was unreachable fails as that (ConnectionClosed, IoError EngineUnavailable), not UnknownPeer; a key it last said was gone stays UnknownPeer", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const a = yield* node(cluster, "a", { kinds: [], leaseTtl: "3 seconds" })
      const b = yield* node(cluster, "b", { kinds: [], leaseTtl: "3 seconds" })
      const [near, far] = yield* Transport.memoryPair()
      yield* b.fleet.addInbound("client-1", yield* Connection.make(near))
      yield* a.fleet.send("client-1", utf8("one"))
      yield* settle
      const engineDown = { _tag: "ConnectionClosed", reason: { _tag: "IoError", code: "EngineUnavailable" } }
      // the engine is down: a cannot ask where client-1 is (nor whether an unknown key is a peer at all)
      cluster.setUnavailable(true)
      const down = yield* Effect.flip(a.fleet.send("client-1", utf8("lost")))
      expect(down).toMatchObject(engineDown)
      expect(FleetHub.isEngineUnavailable(down)).toBe(true)
      expect(yield* Effect.flip(a.fleet.send("nobody", utf8("x")))).toMatchObject(engineDown)
      cluster.setUnavailable(false)
      // a finds client-1, then loses the engine before its request to b goes out
      cluster.setReplyDelay("a", 500, ["locate"])
      const late = yield* Effect.fork(Effect.flip(a.fleet.send("client-1", utf8("late"))))
      yield* advance(100)
      cluster.crash("a")
      yield* advance(500)
      expect(yield* Fiber.join(late)).toMatchObject(engineDown)
      cluster.revive("a")
      cluster.setReplyDelay("a", 0)
      // the engine is back: delivered, and an unknown key is UnknownPeer again
      yield* a.fleet.send("client-1", utf8("two"))
      yield* settle
      expect(Testing.receivedFrames(far)).toEqual(["one", "two"])
      const unknown = yield* Effect.flip(a.fleet.send("nobody", utf8("x")))
      expect(unknown).toMatchObject({ _tag: "UnknownPeer" })
      expect(FleetHub.isEngineUnavailable(unknown)).toBe(false)
      // what a knew when the engine last answered still stands while it cannot be asked: b died (its lease expired,
      // a's last tick saw it gone), so its client is gone too; a key the engine said was not registered stays so
      cluster.crash("b")
      yield* advance(3500)
      cluster.setUnavailable(true)
      expect(yield* Effect.flip(a.fleet.send("client-1", utf8("x")))).toMatchObject({ _tag: "UnknownPeer" })
      expect(yield* Effect.flip(a.fleet.send("nobody", utf8("x")))).toMatchObject({ _tag: "UnknownPeer" })
      expect(yield* Effect.flip(a.fleet.send("never-asked", utf8("x")))).toMatchObject(engineDown)
    }))

  it.scoped("a node cut off from the engine past its lease TTL: its inbound keys are removed as ghosts, and registered again when it is back", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const a = yield* node(cluster, "a", { kinds: [], leaseTtl: "3 seconds" })
      const b = yield* node(cluster, "b", { kinds: [], leaseTtl: "3 seconds" })
      const [near, far] = yield* Transport.memoryPair()
      yield* b.fleet.addInbound("client-1", yield* Connection.make(near))
      // b cannot reach the engine (its socket stays up): its lease lapses, and a finds no live node for the key
      cluster.crash("b")
      yield* advance(3500)
      expect(yield* Effect.flip(a.fleet.send("client-1", utf8("lost"))).pipe(Effect.map((e) => e._tag))).toBe("UnknownPeer")
      expect(Option.isNone(yield* cluster.engine("a").locate("client-1"))).toBe(true)
      // b is back: it takes a new lease and registers what it still holds
      cluster.revive("b")
      yield* advance(1500)
      expect(yield* cluster.engine("a").locate("client-1")).toEqual(Option.some("b"))
      yield* a.fleet.send("client-1", utf8("again"))
      yield* settle
      expect(Testing.receivedFrames(far)).toEqual(["again"])
    }))

  it.scoped("broadcast reaches every outbound peer and every peer on every node", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      yield* v.add("v1")
      yield* v.add("v2")
      const kind = kindFor(v)
      const a = yield* node(cluster, "a", { kinds: [kind] })
      const b = yield* node(cluster, "b", { kinds: [kind] })
      yield* a.fleet.addPeer("v1", kind, { venue: "v1" })
      yield* a.fleet.addPeer("v2", kind, { venue: "v2" })
      const clients: Array<Testing.MemoryPeer> = []
      for (const [i, f] of [a, b, b].entries()) {
        const [near, far] = yield* Transport.memoryPair()
        yield* f.fleet.addInbound(`c${i}`, yield* Connection.make(near))
        clients.push(far)
      }
      yield* advance(1500)
      const r = yield* a.fleet.broadcast(utf8("tick"))
      expect([...r.accepted].sort()).toEqual(["c0", "c1", "c2", "v1", "v2"])
      expect(r.failed).toEqual([])
      yield* advance(500)
      for (const c of clients) expect(Testing.receivedFrames(c)).toEqual(["tick"])
      expect(yield* v.received("v1")).toEqual(["tick"])
      expect(yield* v.received("v2")).toEqual(["tick"])
    }))

  it.scoped("a broadcast lists the inbound peers of a node it could not ask as not reached: engine down, node gone", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      yield* v.add("v1")
      const kind = kindFor(v)
      const a = yield* node(cluster, "a", { kinds: [kind] })
      const b = yield* node(cluster, "b", { kinds: [kind] })
      yield* a.fleet.addPeer("v1", kind, { venue: "v1" })
      for (const [i, f] of [a, b, b].entries()) {
        const [near] = yield* Transport.memoryPair()
        yield* f.fleet.addInbound(`c${i}`, yield* Connection.make(near))
      }
      yield* advance(1500)
      const all = yield* a.fleet.broadcast(utf8("one"))
      expect([...all.accepted].sort()).toEqual(["c0", "c1", "c2", "v1"])
      // the engine is unreachable: b cannot be asked; its clients are reported with the engine's error, the
      // outbound peer's frame waits in a's in-memory backlog (accepted), a's own client takes it
      cluster.setUnavailable(true)
      const down = yield* a.fleet.broadcast(utf8("two"))
      expect([...down.accepted].sort()).toEqual(["c0", "v1"])
      expect(down.failed.map((f) => [f.key, FleetHub.isEngineUnavailable(f.error)]).sort()).toEqual([["c1", true], ["c2", true]])
      cluster.setUnavailable(false)
      yield* advance(1500)
      expect([...(yield* a.fleet.broadcast(utf8("three"))).accepted].sort()).toEqual(["c0", "c1", "c2", "v1"])
      // b is gone (no responder) before its lease ran out: its clients are reported as unknown, not skipped
      cluster.crash("b")
      const gone = yield* a.fleet.broadcast(utf8("four"))
      expect([...gone.accepted].sort()).toEqual(["c0", "v1"])
      expect(gone.failed.map((f) => [f.key, f.error._tag]).sort()).toEqual([["c1", "UnknownPeer"], ["c2", "UnknownPeer"]])
    }))

  it.scoped("remove: an unreachable engine fails typed and the peer stays declared; frames waiting for the engine are handed back", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      yield* v.add("v1")
      const kind = kindFor(v)
      const a = yield* node(cluster, "a", { kinds: [kind], leaseTtl: "3 seconds" })
      yield* a.fleet.addPeer("v1", kind, { venue: "v1" })
      yield* advance(1500)
      yield* a.fleet.send("v1", utf8("f0"))
      yield* advance(500)
      expect(yield* v.received("v1")).toEqual(["f0"])
      // the engine is unreachable: the sends wait in front of the log, the remove fails with the engine's error
      cluster.setUnavailable(true)
      yield* a.fleet.send("v1", utf8("w1"))
      yield* a.fleet.send("v1", utf8("w2"))
      const err = yield* Effect.flip(a.fleet.remove("v1"))
      expect(err._tag === "ConnectionClosed" && FleetHub.isEngineUnavailable(err)).toBe(true)
      // and the peer was not removed: it is held again and gets what waited
      cluster.setUnavailable(false)
      yield* advance(6000)
      expect(yield* v.received("v1")).toEqual(["f0", "w1", "w2"])
      // frames still waiting for the engine when the remove succeeds are handed back, after the log's
      cluster.setUnavailable(true)
      yield* a.fleet.send("v1", utf8("w3"))
      cluster.setUnavailable(false)
      const back = yield* a.fleet.remove("v1")
      expect(back.map(text)).toEqual(["w3"])
      expect((yield* Effect.flip(a.fleet.send("v1", utf8("late"))))._tag).toBe("UnknownPeer")
      expect((yield* Effect.flip(a.fleet.remove("v1")))._tag).toBe("UnknownPeer")
      yield* advance(2000)
      expect(yield* v.received("v1")).toEqual(["f0", "w1", "w2"])
      const removed = (yield* a.drain).filter(Hub.Event.$is("Removed"))
      expect(removed.map((e) => e.undelivered.map(text))).toEqual([["w3"]])
    }))

  it.scoped("remove while the flusher is appending what it took from the in-memory backlog: every frame reported once", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      yield* v.add("v1")
      const kind = kindFor(v)
      const a = yield* node(cluster, "a", { kinds: [kind], leaseTtl: "3 seconds" })
      yield* a.fleet.addPeer("v1", kind, { venue: "v1" })
      yield* advance(1500)
      cluster.setUnavailable(true)
      const sent = ["w1", "w2", "w3"]
      for (const t of sent) yield* a.fleet.send("v1", utf8(t))
      // the engine is back, its append replies late: the flusher takes all three and is inside the first append
      cluster.setUnavailable(false)
      cluster.setReplyDelay("a", 1000, ["append"])
      yield* advance(300)
      const removing = yield* Effect.fork(a.fleet.remove("v1"))
      yield* advance(5000)
      const back = (yield* Fiber.join(removing)).map(text)
      const events = yield* a.drain
      const discarded = events.filter(Hub.Event.$is("Discarded")).flatMap((e) => e.frames.map(text))
      const delivered = yield* v.received("v1")
      // each frame exactly once: handed back by the remove, reported discarded, or delivered
      expect([...back, ...discarded, ...delivered].sort()).toEqual(sent)
    }))

  it.scoped("bounds: the durable log refuses (BacklogFull), the holder expires old frames with their payloads, drop-oldest gaps are reported as Lost", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      const venue = yield* v.add("v1")
      yield* v.add("v2")
      venue.setRefusing(true)
      const strict = kindFor(v, { maxMessages: 3, maxAge: "10 seconds" })
      const a = yield* node(cluster, "a", { kinds: [strict] })
      yield* a.fleet.addPeer("v1", strict, { venue: "v1" })
      yield* advance(1500)
      for (let i = 0; i < 3; i++) yield* a.fleet.send("v1", utf8(`f${i}`))
      const err = yield* Effect.flip(a.fleet.send("v1", utf8("f3")))
      expect(err).toMatchObject({ _tag: "BacklogFull", reason: "maxMessages" })
      yield* advance(10_500)
      venue.setRefusing(false)
      yield* advance(1000)
      const events = yield* a.drain
      const expired = events.filter(Hub.Event.$is("Expired")).flatMap((e) => e.frames.map(text))
      expect(expired).toEqual(["f0", "f1", "f2"])
      expect(yield* v.received("v1")).toEqual([])
      expect(cluster.logSize("v1")).toBe(0)

      // drop-oldest in the engine is silent: the holder sees the gap and reports its size
      const dropping = PeerKind.make("dropping", {
        spec: Spec,
        dialer: (_key, spec) => ({ connect: v.servers.get(spec.venue)!.connect, backoff: Schedule.spaced("100 millis") }),
        backlog: { maxMessages: 2, policy: "dropOldest" }
      })
      const b = yield* node(cluster, "b", { kinds: [dropping, strict] })
      v.servers.get("v2")!.setRefusing(true)
      yield* b.fleet.addPeer("v2", dropping, { venue: "v2" })
      for (let i = 0; i < 5; i++) yield* b.fleet.send("v2", utf8(`g${i}`))
      v.servers.get("v2")!.setRefusing(false)
      yield* advance(2000)
      expect(yield* v.received("v2")).toEqual(["g3", "g4"])
      const holderEvents = [...(yield* a.drain), ...(yield* b.drain)]
      const lost = holderEvents.filter(FleetHub.FleetEvent.$is("Lost"))
      expect(lost).toMatchObject([{ key: "v2", fromSeq: 1, count: 3 }])
    }))

  it.scoped("while the engine is unreachable sends wait in the sender's bounded backlog and are flushed in order, once", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      yield* v.add("v1")
      const kind = kindFor(v, { maxMessages: 4 })
      const a = yield* node(cluster, "a", { kinds: [kind] })
      yield* a.fleet.addPeer("v1", kind, { venue: "v1" })
      yield* advance(1500)
      yield* a.fleet.send("v1", utf8("before"))
      yield* advance(200)
      cluster.setUnavailable(true)
      for (let i = 0; i < 4; i++) yield* a.fleet.send("v1", utf8(`d${i}`))
      const err = yield* Effect.flip(a.fleet.send("v1", utf8("d4")))
      expect(err).toMatchObject({ _tag: "BacklogFull" })
      yield* advance(400)
      cluster.setUnavailable(false)
      yield* advance(400)
      yield* a.fleet.send("v1", utf8("after"))
      yield* advance(3000)
      expect(yield* v.received("v1")).toEqual(["before", "d0", "d1", "d2", "d3", "after"])
      const overflow = (yield* a.drain).filter(Hub.Event.$is("BacklogOverflow")).flatMap((e) => e.frames.map(text))
      expect(overflow).toEqual(["d4"])
    }))

  it.scoped("a frame stored twice (its append's reply lost, the retry not deduplicated) reaches the venue once", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      yield* v.add("v1")
      const kind = kindFor(v)
      const a = yield* node(cluster, "a", { kinds: [kind] })
      yield* a.fleet.addPeer("v1", kind, { venue: "v1" })
      yield* advance(1500)
      expect(yield* a.fleet.held).toEqual(["v1"])
      // m1 is stored but its sender hears `Unavailable`: it keeps m1 and retries it; the engine has forgotten the
      // id by then (a restarted server), so the retry is stored again, marked retried
      cluster.loseAppendReply("v1")
      yield* a.fleet.send("v1", utf8("m1"))
      cluster.forgetAppendIds()
      yield* advance(1000)
      yield* a.fleet.send("v1", utf8("m2"))
      yield* advance(500)
      // the holder handed m1's id to its dialer already: the second copy is skipped, not written (nor flagged)
      expect(yield* v.received("v1")).toEqual(["m1", "m2"])
      expect((yield* a.drain).filter(FleetHub.FleetEvent.$is("PossibleDuplicate"))).toEqual([])
      // and acked with the rest
      expect(cluster.logSize("v1")).toBe(0)
    }))

  it.scoped("a retried append that reaches another holder than the first copy is written flagged (PossibleDuplicate)", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      yield* v.add("v1")
      const kind = kindFor(v)
      const a = yield* node(cluster, "a", { kinds: [kind] })
      const c = yield* node(cluster, "c", { kinds: [kind], hold: false })
      yield* c.fleet.addPeer("v1", kind, { venue: "v1" })
      yield* advance(1500)
      expect(yield* a.fleet.held).toEqual(["v1"])
      const b = yield* node(cluster, "b", { kinds: [kind] })
      // c's append of m1 is stored, its reply lost; c is cut off before it can retry
      cluster.loseAppendReply("v1")
      yield* c.fleet.send("v1", utf8("m1"))
      cluster.crash("c")
      yield* advance(500)
      expect(yield* v.received("v1")).toEqual(["m1"])
      // a leaves (what it wrote is acked), b takes v1; the engine forgets the append ids (a restart)
      yield* Scope.close(a.scope, Exit.void)
      yield* advance(1200)
      expect(yield* b.fleet.held).toEqual(["v1"])
      cluster.forgetAppendIds()
      // c is back and retries m1: stored again, and b cannot tell it was written, so it flags it
      cluster.revive("c")
      yield* advance(1000)
      expect(yield* v.received("v1")).toEqual(["m1", "m1!"])
      const dups = (yield* b.drain).filter(FleetHub.FleetEvent.$is("PossibleDuplicate")).flatMap((e) => e.frames.map(text))
      expect(dups).toEqual(["m1"])
      expect(cluster.logSize("v1")).toBe(0)
    }))

  it.scoped("a held lease is valid from the acquire request: a holder whose grant came late stops when the lease expires, before another node takes the peer", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      yield* v.add("v1")
      const kind = kindFor(v)
      const a = yield* node(cluster, "a", { kinds: [kind], leaseTtl: "3 seconds" })
      // a's lease grants reach it 2.5 s after the engine gave them (a 3 s lease: 0.5 s of it left on arrival)
      cluster.setReplyDelay("a", 2500, ["acquire"])
      yield* a.fleet.addPeer("v1", kind, { venue: "v1" })
      let waited = 0
      while (!(yield* a.fleet.held).includes("v1")) {
        expect(waited).toBeLessThan(10_000)
        yield* advance(50)
        waited += 50
      }
      // a is cut off from the engine as the grant arrives: it cannot renew the lease, and b will take the peer
      // once the engine's lease expired
      cluster.crash("a")
      const b = yield* node(cluster, "b", { kinds: [kind], leaseTtl: "3 seconds" })
      let stoppedAfter: number | undefined = undefined
      for (let t = 50; t <= 5000; t += 50) {
        yield* advance(50)
        const aHolds = (yield* a.fleet.held).includes("v1")
        if (!aHolds && stoppedAfter === undefined) stoppedAfter = t
        // never two writers
        expect(aHolds && (yield* b.fleet.held).includes("v1")).toBe(false)
      }
      // a stopped within what was left of the lease as the engine counts it (0.5 s; the clock moves in 50 ms
      // steps), not a TTL after the grant reached it
      expect(stoppedAfter).toBeLessThanOrEqual(550)
      expect((yield* a.drain).filter(FleetHub.FleetEvent.$is("LeaseLost")).map((e) => e.key)).toEqual(["v1"])
      expect(yield* b.fleet.held).toEqual(["v1"])
    }))

  it.scoped("the Hub tag works on a FleetHub layer; closing a node hands its peers over at once (lease released)", () =>
    Effect.gen(function*() {
      const cluster = MemoryEngine.makeCluster()
      const v = venues()
      yield* v.add("v1")
      const kind = kindFor(v)
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(
        FleetHub.layer({ kinds: [kind] }).pipe(Layer.provide(cluster.layer("a"))),
        scope
      )
      const hubA = yield* Effect.provide(Hub.Tag, ctx)
      const fa = yield* Effect.provide(FleetHub.Tag, ctx)
      yield* fa.addPeer("v1", kind, { venue: "v1" })
      yield* advance(1500)
      yield* hubA.send("v1", utf8("x"))
      yield* advance(200)
      const b = yield* node(cluster, "b", { kinds: [kind] })
      yield* Scope.close(scope, Exit.void)
      yield* advance(1200)
      expect(yield* b.fleet.held).toEqual(["v1"])
      yield* b.fleet.send("v1", utf8("y"))
      yield* advance(500)
      expect(yield* v.received("v1")).toEqual(["x", "y"])
      expect(yield* Effect.map(cluster.engine("b").peers, (ps) => ps.map((p) => p.key))).toEqual(["v1"])
      expect(Engine.Engine.key).toBe("tether/Engine")
    }))

  it.effect("Settings.fleet reads TETHER_FLEET_* and TETHER_NATS_SERVERS, and names a missing node id", () =>
    Effect.gen(function*() {
      const read = (m: Record<string, string>) =>
        Effect.withConfigProvider(Settings.fleet, ConfigProvider.fromMap(new Map(Object.entries(m))))
      const f = yield* read({
        TETHER_FLEET_NODE: "n1",
        TETHER_NATS_SERVERS: "nats://a:4222, nats://b:4222",
        TETHER_FLEET_LEASE_TTL: "5s",
        TETHER_FLEET_HOLD: "false"
      })
      expect({ ...f, leaseTtl: Duration.toMillis(f.leaseTtl) }).toEqual({
        node: "n1",
        servers: ["nats://a:4222", "nats://b:4222"],
        leaseTtl: 5000,
        fetchBatch: 64,
        hold: false
      })
      const d = yield* read({ TETHER_FLEET_NODE: "n2" })
      expect([d.servers, Duration.toMillis(d.leaseTtl), d.hold]).toEqual([["nats://127.0.0.1:4222"], 3000, true])
      const err = yield* Effect.flip(read({}))
      expect(String(err)).toContain("TETHER_FLEET_NODE")
    }))
})
