/**
 * NatsEngine against a real nats-server (JetStream, a free loopback port, a temporary store): the engine
 * contract (idempotent appends, rejectNew, ack = purge, a new holder's consumer flags what the previous one
 * delivered, leases with CAS and TTL, registry entries that die with their node, node requests, listings that
 * name each key once and end while keys are written) and two FleetHub nodes over it with real TCP venues.
 * Under CI=true a missing nats-server fails; otherwise the suite skips saying why.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Option, Schedule, Schema, Scope } from "effect"
import { Engine, FleetHub, Framing, PeerKind } from "effect-tether"
import * as NatsEngine from "effect-tether/NatsEngine"
import * as Testing from "effect-tether/testing"
import { natsServer, skipWithoutNats } from "./helpers/nats.js"

const utf8 = Framing.utf8
const text = (u: Uint8Array) => new TextDecoder().decode(u)

/** A TCP venue recording the length-prefixed frames it receives, over all its connections. */
const venue = Effect.gen(function*() {
  const frames: Array<string> = []
  const peer = yield* Testing.peer({
    onSocket: (socket) => {
      let buf = Buffer.alloc(0)
      socket.on("data", (d: Buffer) => {
        buf = Buffer.concat([buf, d])
        while (buf.length >= 4) {
          const n = buf.readUInt32BE(0)
          if (buf.length < 4 + n) break
          frames.push(buf.subarray(4, 4 + n).toString("utf8"))
          buf = buf.subarray(4 + n)
        }
      })
    }
  })
  return { port: peer.port, frames }
})

const waitFor = (what: string, cond: () => boolean, timeout = "10 seconds" as const) =>
  Effect.suspend(() => (cond() ? Effect.void : Effect.fail(new Error(what)))).pipe(
    Effect.retry(Schedule.spaced("25 millis")),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error(`timed out: ${what}`) })
  )

const waitForEffect = (what: string, cond: Effect.Effect<boolean>) =>
  Effect.flatMap(cond, (ok) => (ok ? Effect.void : Effect.fail(new Error(what)))).pipe(
    Effect.retry(Schedule.spaced("25 millis")),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error(`timed out: ${what}`) })
  )

const bounds: Engine.Bounds = { maxMessages: 3, maxBytes: 1 << 20, maxAgeMillis: 60_000, policy: "rejectNew" }

describe.skipIf(skipWithoutNats("NatsEngine tests"))("NatsEngine (nats-server)", () => {
  it.live("the engine contract on JetStream", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* natsServer
      const a = yield* NatsEngine.make({ servers: [server.url], node: "a", leaseTtl: 1500 })
      const b = yield* NatsEngine.make({ servers: [server.url], node: "b", leaseTtl: 1500 })
      yield* a.declare({ key: "p 1", kind: "venue", spec: { port: 1 } }, bounds)
      expect(yield* Effect.flip(b.declare({ key: "p 1", kind: "venue", spec: {} }, bounds))).toMatchObject({
        _tag: "PeerExists"
      })
      expect(Option.map(yield* b.peer("p 1"), (r) => r.spec)).toEqual(Option.some({ port: 1 }))
      expect((yield* b.peers).map((r) => r.key)).toEqual(["p 1"])
      // idempotent appends, then rejectNew at maxMessages
      expect(yield* a.append("p 1", "id-1", utf8("f1"))).toMatchObject({ _tag: "Appended", seq: 1 })
      expect(yield* b.append("p 1", "id-1", utf8("f1"))).toMatchObject({ _tag: "Duplicate", seq: 1 })
      yield* a.append("p 1", "id-2", utf8("f2"))
      yield* a.append("p 1", "id-3", utf8("f3"))
      expect(yield* a.append("p 1", "id-4", utf8("f4"))).toEqual({ _tag: "Full", reason: "maxMessages" })
      // a holder: lease, consume, ack the first (the stream drops it: room again)
      const la = Option.getOrThrow(yield* a.acquire("out.p 1", 1500))
      expect(Option.isNone(yield* b.acquire("out.p 1", 1500))).toBe(true)
      const scopeA = yield* Scope.make()
      const ca = yield* a.consume("p 1", la).pipe(Scope.extend(scopeA))
      expect(ca.start).toBe(1)
      const first = yield* ca.fetch(2, 1000)
      expect(first.map((e) => [e.seq, text(e.frame), e.redelivered])).toEqual([[1, "f1", false], [2, "f2", false]])
      yield* ca.ack(1)
      expect(yield* a.append("p 1", "id-4", utf8("f4"))).toMatchObject({ _tag: "Appended", seq: 4 })
      // a dies without acking 2: b takes the lease after the TTL, its consumer starts at 2 and flags 2
      yield* Effect.sleep("1700 millis")
      const lb = Option.getOrThrow(yield* b.acquire("out.p 1", 1500))
      expect(lb.revision).toBeGreaterThan(la.revision)
      expect(Option.isNone(yield* a.refresh(la, 1500))).toBe(true)
      const cb = yield* b.consume("p 1", lb)
      expect(cb.start).toBe(2)
      const again = yield* cb.fetch(10, 1000)
      // 2 was taken by a's holder; 3 and 4 sat in a's client buffer (delivered by the server): all possible duplicates
      expect(again.map((e) => [e.seq, text(e.frame), e.redelivered])).toEqual([
        [2, "f2", true],
        [3, "f3", true],
        [4, "f4", true]
      ])
      // the superseded consumer is gone: once its client buffer is empty, its holder cannot read on
      yield* ca.fetch(10, 1000)
      const stale = yield* Effect.flip(ca.fetch(1, 1000))
      expect(stale).toMatchObject({ reason: "Fenced" })
      expect(again.map((e) => e.retried)).toEqual([false, false, false])
      yield* cb.ack(4)
      // a retry of an append whose outcome was unknown carries the Tether-Retry header: its entry comes marked
      expect(yield* a.append("p 1", "id-5", utf8("f5"), true)).toMatchObject({ _tag: "Appended", seq: 5 })
      expect((yield* cb.fetch(10, 1000)).map((e) => [e.seq, e.id, text(e.frame), e.retried])).toEqual([
        [5, "id-5", "f5", true]
      ])
      yield* cb.ack(5)
      expect(yield* a.undeclare("p 1")).toEqual([])
      // node leases and the registry: no ghost after the node's lease expired
      const na = Option.getOrThrow(yield* a.acquire("node.a", 1500))
      yield* b.acquire("node.b", 1500)
      yield* a.register("client-1")
      expect(yield* b.locate("client-1")).toEqual(Option.some("a"))
      expect(yield* b.nodes).toEqual(["a", "b"])
      yield* a.serve((m) => Effect.succeed(utf8(`re:${text(m)}`)))
      expect(text(yield* b.request("a", utf8("hi"), 1000))).toBe("re:hi")
      expect(yield* Effect.flip(b.request("c", utf8("hi"), 500))).toMatchObject({ _tag: "NoResponder" })
      yield* Effect.sleep("1700 millis")
      expect(Option.isNone(yield* b.locate("client-1"))).toBe(true)
      expect(Option.isSome(na.previous)).toBe(false)
    })), { timeout: 30_000 })

  it.live("a listing names each key once and ends, while a listed key is updated without pause", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* natsServer
      const make = (node: string) => NatsEngine.make({ servers: [server.url], node, leaseTtl: 30_000 })
      const a = yield* make("a")
      const b = yield* make("b")
      const c = yield* make("c")
      // a listing long enough to be written to while it runs: 200 more node leases, all held by c
      const pads = 200
      for (let i = 0; i < pads; i++) Option.getOrThrow(yield* c.acquire(`node.pad-${i}`, 30_000))
      Option.getOrThrow(yield* a.acquire("node.a", 30_000))
      let lb = Option.getOrThrow(yield* b.acquire("node.b", 30_000))
      // b refreshes its lease without pause (each refresh is a KV update of node.b) while a lists the nodes
      let refreshes = 0
      yield* Effect.gen(function*() {
        lb = Option.getOrThrow(yield* b.refresh(lb, 30_000))
        refreshes++
      }).pipe(Effect.forever, Effect.forkScoped)
      const expected = ["a", "b", ...Array.from({ length: pads }, () => "c")]
      // (a listing that reads a consumer of the bucket sees node.b again with every update it makes while the
      // listing runs, and one updated faster than the listing reads keeps it from ever ending)
      const listed = a.nodes.pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the listing did not end") })
      )
      for (let i = 0; i < 5; i++) expect(yield* listed).toEqual(expected)
      expect(refreshes).toBeGreaterThan(5)
    })), { timeout: 30_000 })

  it.live("two FleetHub nodes over NATS: sends from both reach a TCP venue in order; a node leaving hands its peer over", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* natsServer
      const v = yield* venue
      const Venue = PeerKind.make("venue", {
        spec: Schema.Struct({ port: Schema.Number }),
        dialer: (_key, spec) => ({ host: "127.0.0.1", port: spec.port, backoff: Schedule.spaced("100 millis") }),
        markDuplicate: (f) => utf8(`${text(f)}!`)
      })
      const options: FleetHub.Options = { kinds: [Venue], leaseTtl: "1500 millis" }
      const scopeA = yield* Scope.make()
      const engineA = yield* NatsEngine.make({ servers: [server.url], node: "a", leaseTtl: 1500 }).pipe(Scope.extend(scopeA))
      const a = yield* FleetHub.make(options).pipe(Effect.provideService(Engine.Engine, engineA), Scope.extend(scopeA))
      yield* a.addPeer("venue-1", Venue, { port: v.port })
      const t0 = Date.now()
      yield* waitForEffect("a holds venue-1", Effect.map(a.held, (h) => h.length === 1))
      const engineB = yield* NatsEngine.make({ servers: [server.url], node: "b", leaseTtl: 1500 })
      const b = yield* FleetHub.make(options).pipe(Effect.provideService(Engine.Engine, engineB))
      for (let i = 0; i < 200; i++) yield* (i % 2 === 0 ? a : b).send("venue-1", utf8(`m${i}`))
      yield* waitFor("200 frames", () => v.frames.length >= 200)
      expect(v.frames).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`))
      // the holder leaves (gracefully: its lease is released, what it wrote is acked), the other takes over
      yield* Scope.close(scopeA, Exit.void)
      for (let i = 200; i < 300; i++) yield* b.send("venue-1", utf8(`m${i}`))
      yield* waitFor("300 frames", () => v.frames.length >= 300)
      expect(v.frames).toEqual(Array.from({ length: 300 }, (_, i) => `m${i}`))
      expect(yield* b.held).toEqual(["venue-1"])
      expect(Date.now() - t0).toBeLessThan(20_000)
    })), { timeout: 30_000 })
})
