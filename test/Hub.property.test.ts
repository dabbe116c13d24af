/**
 * Property: over random interleavings of send, broadcast, disconnect and
 * reconnect for several peers, every peer receives every frame it accepted
 * exactly once and in order, and accepted = delivered + handed back (+ evicted,
 * under dropOldest with a small backlog: each evicted frame in exactly one
 * BacklogOverflow event, and never also delivered or handed back).
 *
 * The peers are dialers in a hub over in-memory transports whose far ends read
 * everything (so "handed to the kernel" = received). Reconnects are immediate
 * (no backoff delay) and the writer takes one frame per batch, so the only
 * thing that orders events is fiber scheduling (microtask yields, and event-loop
 * turns that let the connections' writers run): resets land while frames sit in
 * the connection queues, in the middle of replays, and under sends and
 * broadcasts blocked on a full queue (capacity 1 or 2). No virtual time is
 * needed, which keeps a run to a few milliseconds.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, FastCheck as fc, Schedule, Scheduler } from "effect"
import { Connection, Dialer, Framing, Hub, type Transport } from "effect-tether"
import { decodeFrames, macrotask, memoryServer } from "./helpers/dial.js"

const KEYS = ["p0", "p1", "p2"] as const

type Op =
  | { readonly _tag: "send"; readonly peer: number }
  | { readonly _tag: "broadcast" }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 2 }).map((peer): Op => ({ _tag: "send", peer })) },
  { weight: 2, arbitrary: fc.constant<Op>({ _tag: "broadcast" }) }
)

const chaosArb = fc.record({
  step: fc.integer({ min: 0, max: 12 }),
  peer: fc.integer({ min: 0, max: 2 })
})

// the writers resume on a macrotask after every batch, so frames sit in the connection queues
// between event-loop turns (and resets land on them); the default writer drains on microtasks
const macrotaskWriters = Scheduler.makeBatched((run) => setImmediate(run))

const stats = { runs: 0, resets: 0, handedBack: 0, requeued: 0, evicted: 0 }

// the property is not vacuous: plugs were pulled, and accepted frames came back from closing connections
afterAll(() => {
  expect(stats.runs).toBeGreaterThanOrEqual(80)
  expect(stats.resets).toBeGreaterThan(80)
  expect(stats.requeued).toBeGreaterThan(0)
  expect(stats.evicted).toBeGreaterThan(0)
})

describe("Hub (property)", () => {
  it.scoped.prop(
    "each peer gets each accepted frame exactly once, in order; accepted = delivered + handed back + evicted",
    {
      ops: fc.array(opArb, { minLength: 1, maxLength: 40 }),
      chaos: fc.array(chaosArb, { maxLength: 8 }),
      yieldsPerStep: fc.integer({ min: 0, max: 4 }),
      macrotaskSteps: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
      queueCapacity: fc.constantFrom(1, 2, 8, 64),
      readyOnSession: fc.boolean(),
      // rejectNew with the default bounds (nothing refused), or dropOldest with a backlog of 1..4 frames
      dropOldest: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined })
    },
    ({ chaos, dropOldest, macrotaskSteps, ops, queueCapacity, readyOnSession, yieldsPerStep }) =>
      Effect.gen(function*() {
        const evicted: Array<Array<string>> = KEYS.map(() => [])
        const hub = yield* Hub.make({
          onEvent: (e) =>
            Effect.sync(() => {
              if (e._tag === "Disconnected") stats.requeued += e.requeued
              if (e._tag === "BacklogOverflow") {
                expect(e.reason).toBe("evicted")
                evicted[KEYS.indexOf(e.key as typeof KEYS[number])]!.push(...e.frames.map(Framing.text))
              }
            })
        })
        const farEnds: Array<Array<Transport.MemoryPeer>> = KEYS.map(() => [])
        const dialers: Array<Dialer.Dialer> = []
        for (let k = 0; k < KEYS.length; k++) {
          const server = yield* memoryServer()
          server.setup.current = (peer) => {
            farEnds[k]!.push(peer)
          }
          dialers.push(
            yield* hub.addDialer(KEYS[k]!, {
              connect: server.connect,
              backoff: Schedule.forever, // reconnect at once
              connection: { sendQueueCapacity: queueCapacity, maxBatchFrames: 1 },
              backlog: dropOldest === undefined
                ? { maxAge: Duration.infinity }
                : { maxAge: Duration.infinity, maxMessages: dropOldest, policy: "dropOldest" },
              ...(readyOnSession
                ? {
                  readyOn: "session" as const,
                  session: (conn, control) =>
                    Effect.zipRight(Effect.zipRight(Effect.yieldNow(), control.ready), conn.closed).pipe(
                      Effect.as(Dialer.Decision.Reconnect())
                    )
                }
                : {})
            })
          )
        }
        const accepted: Array<Array<string>> = KEYS.map(() => [])
        // one sender fiber: sequential, so each peer's expected order is its acceptance order
        const sender = yield* Effect.fork(Effect.forEach(ops, (op, i) => {
          const label = `m${i}`
          if (op._tag === "send") {
            return Effect.map(Effect.either(hub.send(KEYS[op.peer]!, Framing.utf8(label))), (r) => {
              if (r._tag === "Right") accepted[op.peer]!.push(label)
            })
          }
          return Effect.map(hub.broadcast(Framing.utf8(label)), (r) => {
            for (const key of r.accepted) accepted[KEYS.indexOf(key as typeof KEYS[number])]!.push(label)
          })
        }, { discard: true }))
        // the test fiber pulls plugs while the sender runs
        for (let step = 0; step <= 40; step++) {
          for (const c of chaos) {
            if (c.step !== step) continue
            const cur = farEnds[c.peer]!.at(-1)
            if (cur !== undefined && !cur.destroyed()) {
              yield* cur.reset
              stats.resets++
            }
          }
          yield* Effect.repeatN(Effect.yieldNow(), yieldsPerStep)
          if (macrotaskSteps[step % macrotaskSteps.length]!) yield* macrotask
        }
        yield* Fiber.join(sender)
        const handedBack = yield* Effect.forEach(KEYS, (k) => hub.remove(k))
        for (let k = 0; k < KEYS.length; k++) {
          const received = farEnds[k]!.flatMap((p) => decodeFrames(p.received()))
          const back = handedBack[k]!.map(Framing.text)
          // every evicted frame was accepted and is reported once; the others arrive or come back, in order
          const gone = new Set(evicted[k])
          expect(gone.size).toBe(evicted[k]!.length)
          for (const label of gone) expect(accepted[k]).toContain(label)
          expect([...received, ...back]).toEqual(accepted[k]!.filter((label) => !gone.has(label)))
          if (dropOldest === undefined) expect(evicted[k]).toEqual([])
          stats.evicted += gone.size
        }
        expect(dialers.every((d) => d.unsafeStats().status === "Stopped")).toBe(true)
        stats.runs++
        stats.handedBack += handedBack.reduce((n, b) => n + b.length, 0)
      }).pipe(Effect.locally(Connection.currentWriterScheduler, macrotaskWriters)),
    // 80 runs take ~4 s alone; a loaded 2-core machine (the whole suite, other work) can take 5× that
    { fastCheck: { numRuns: 80 }, timeout: 60_000 }
  )
})
