/**
 * The backlog's bounds and policies, in virtual time.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope, TestClock } from "effect"
import { Backlog, Connection, Framing } from "effect-tether"
import { captureLogs } from "./helpers/logs.js"

const f = (s: string) => Framing.utf8(s)
const texts = (items: ReadonlyArray<Backlog.Item>) => items.map((i) => Framing.text(Backlog.payload(i)))

const withEvents = (options: Backlog.Options) =>
  Effect.gen(function*() {
    const events: Array<string> = []
    const backlog = yield* Backlog.make({
      ...options,
      onEvent: (e) => Effect.sync(() => events.push(`${e._tag}:${e.frames.map(Framing.text).join(",")}`))
    })
    return { backlog, events }
  })

describe("Backlog", () => {
  it.scoped("rejectNew at maxMessages: the offer fails with BacklogFull, the held frames stay", () =>
    Effect.gen(function*() {
      const { backlog, events } = yield* withEvents({ maxMessages: 2, policy: "rejectNew" })
      yield* backlog.offer(f("a"))
      yield* backlog.offer(f("b"))
      const err = yield* Effect.flip(backlog.offer(f("c")))
      expect(err).toMatchObject({ _tag: "BacklogFull", reason: "maxMessages", messages: 2 })
      expect(events).toEqual(["Rejected:c"])
      expect(texts(yield* backlog.takeAll)).toEqual(["a", "b"])
    }))

  it.scoped("rejectNew at maxBytes", () =>
    Effect.gen(function*() {
      const { backlog } = yield* withEvents({ maxBytes: 5, policy: "rejectNew" })
      yield* backlog.offer(f("abc"))
      const err = yield* Effect.flip(backlog.offer(f("def")))
      expect(err).toMatchObject({ reason: "maxBytes", bytes: 3 })
      yield* backlog.offer(f("de"))
      expect(backlog.bytes()).toBe(5)
    }))

  it.scoped("dropOldest evicts (and reports) the oldest frames to make room", () =>
    Effect.gen(function*() {
      const { backlog, events } = yield* withEvents({ maxMessages: 3, maxBytes: 100, policy: "dropOldest" })
      for (const s of ["a", "b", "c", "d", "e"]) yield* backlog.offer(f(s))
      yield* Effect.yieldNow() // an eviction burst is reported once the evicting fiber yields
      expect(events).toEqual(["Evicted:a,b"])
      expect(texts(yield* backlog.takeAll)).toEqual(["c", "d", "e"])
    }))

  it.scoped("dropOldest by bytes; a frame larger than maxBytes alone is refused", () =>
    Effect.gen(function*() {
      const { backlog, events } = yield* withEvents({ maxBytes: 4, policy: "dropOldest" })
      yield* backlog.offer(f("aa"))
      yield* backlog.offer(f("bb"))
      yield* backlog.offer(f("ccc"))
      yield* Effect.yieldNow()
      expect(events).toEqual(["Evicted:aa,bb"])
      const err = yield* Effect.flip(backlog.offer(f("ddddd")))
      expect(err.reason).toBe("maxBytes")
      expect(texts(yield* backlog.takeAll)).toEqual(["ccc"])
    }))

  it.scoped("maxAge: frames expire when their age reaches maxAge, reported by the expiry fiber", () =>
    Effect.gen(function*() {
      const { backlog, events } = yield* withEvents({ maxAge: "10 seconds" })
      yield* backlog.offer(f("old"))
      yield* TestClock.adjust("4 seconds")
      yield* backlog.offer(f("young"))
      yield* TestClock.adjust("5999 millis")
      expect(events).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(events).toEqual(["Expired:old"])
      expect(backlog.size()).toBe(1)
      yield* TestClock.adjust("4 seconds")
      expect(events).toEqual(["Expired:old", "Expired:young"])
      expect(backlog.size()).toBe(0)
    }))

  it.scoped("prepend puts accepted frames back in front, in order; dropOldest restores the bounds", () =>
    Effect.gen(function*() {
      const { backlog, events } = yield* withEvents({ maxMessages: 4, policy: "dropOldest" })
      yield* backlog.offer(f("c"))
      yield* backlog.offer(f("d"))
      yield* backlog.prepend([f("a"), f("b")])
      expect(texts(yield* backlog.takeAll)).toEqual(["a", "b", "c", "d"])
      yield* backlog.offer(f("x"))
      yield* backlog.offer(f("y"))
      yield* backlog.offer(f("z"))
      yield* backlog.prepend([f("v"), f("w")])
      expect(events).toEqual(["Evicted:v"])
      expect(texts(yield* backlog.takeAll)).toEqual(["w", "x", "y", "z"])
    }))

  it.scoped("rejectNew never refuses a prepend: it may stay over its bound until drained", () =>
    Effect.gen(function*() {
      const { backlog } = yield* withEvents({ maxMessages: 2 })
      yield* backlog.offer(f("c"))
      yield* backlog.offer(f("d"))
      yield* backlog.prepend([f("a"), f("b")])
      expect(backlog.size()).toBe(4)
      expect((yield* Effect.flip(backlog.offer(f("e")))).reason).toBe("maxMessages")
      expect(texts(yield* backlog.drainAll)).toEqual(["a", "b", "c", "d"])
    }))

  it.scoped("pre-encoded items are kept as they are and weighed by their payload", () =>
    Effect.gen(function*() {
      const { backlog } = yield* withEvents({})
      const payload = f("tick")
      const enc = new Connection.Encoded(Framing.encode(Framing.lengthPrefixed(), payload), payload)
      yield* backlog.offer(enc)
      expect(backlog.bytes()).toBe(4)
      const [item] = yield* backlog.takeAll
      expect(item).toBe(enc)
    }))

  it.scoped("discardAll reports every frame", () =>
    Effect.gen(function*() {
      const { backlog, events } = yield* withEvents({})
      yield* backlog.offer(f("a"))
      yield* backlog.offer(f("b"))
      const gone = yield* backlog.discardAll("new period")
      expect(gone.map(Framing.text)).toEqual(["a", "b"])
      expect(events).toEqual(["Discarded:a,b"])
    }))

  it.scoped("expiry at depth: 100 000 frames stamped over 100 s expire exactly when due, oldest first", () =>
    Effect.gen(function*() {
      // O(n) offers would make this quadratic (10^10 steps); O(1) amortized keeps it to a fraction of a second
      let expired = 0
      let lastExpired = -1
      let inOrder = true
      const backlog = yield* Backlog.make({
        maxMessages: 200_000,
        maxAge: "5 minutes",
        onEvent: (e) =>
          Effect.sync(() => {
            if (e._tag !== "Expired") return
            for (const frame of e.frames) {
              const n = Number(Framing.text(frame))
              if (n !== lastExpired + 1) inOrder = false
              lastExpired = n
              expired++
            }
          })
      })
      for (let i = 0; i < 100_000; i++) {
        if (i > 0 && i % 1000 === 0) yield* TestClock.adjust("1 second") // 1 000 frames per second
        yield* backlog.offer(f(String(i)))
      }
      expect(backlog.size()).toBe(100_000)
      // 5 minutes after the first second's frames were stamped: exactly those are due
      yield* TestClock.adjust("201 seconds") // now = 99 s + 201 s = 300 s
      expect(expired).toBe(1000)
      yield* TestClock.adjust("49 seconds") // 349 s: the frames stamped at 0..49 s
      expect(expired).toBe(50_000)
      expect(backlog.size()).toBe(50_000)
      yield* TestClock.adjust("50 seconds")
      expect(expired).toBe(100_000)
      expect(inOrder).toBe(true)
      expect(backlog.size()).toBe(0)
      expect(backlog.bytes()).toBe(0)
    }), 20_000)

  it.scoped("frames put back in front expire by their own stamp; the expiry fiber follows the oldest", () =>
    Effect.gen(function*() {
      const { backlog, events } = yield* withEvents({ maxAge: "10 seconds" })
      yield* backlog.offer(f("a")) // t=0
      yield* TestClock.adjust("4 seconds")
      yield* backlog.prepend([f("p"), f("q")]) // t=4, in front of a
      yield* TestClock.adjust("2 seconds")
      yield* backlog.offer(f("b")) // t=6
      yield* TestClock.adjust("4 seconds") // t=10: a is due, though behind p and q
      expect(events).toEqual(["Expired:a"])
      yield* TestClock.adjust("4 seconds") // t=14: p, q
      expect(events).toEqual(["Expired:a", "Expired:p,q"])
      expect(texts(yield* backlog.takeAll)).toEqual(["b"])
    }))

  it.scoped("dropOldest at depth: 100 000 held, 100 000 more offers each evict exactly the oldest", () =>
    Effect.gen(function*() {
      let evicted = 0
      let next = 0
      let inOrder = true
      const backlog = yield* Backlog.make({
        maxMessages: 100_000,
        policy: "dropOldest",
        onEvent: (e) =>
          Effect.sync(() => {
            for (const frame of e.frames) if (Number(Framing.text(frame)) !== next++) inOrder = false
            evicted += e.frames.length
          })
      })
      for (let i = 0; i < 200_000; i++) yield* backlog.offer(f(String(i)))
      const held = yield* backlog.takeAll // reports the last burst first
      expect(evicted).toBe(100_000)
      expect(inOrder).toBe(true)
      expect(held.length).toBe(100_000)
      expect(Framing.text(Backlog.payload(held[0]!))).toBe("100000")
      expect(Framing.text(Backlog.payload(held[99_999]!))).toBe("199999")
    }), 20_000)

  it.scoped("an eviction burst: consecutive evictions are one event, ended early by anything else (order kept)", () =>
    Effect.gen(function*() {
      const { backlog, events } = yield* withEvents({ maxMessages: 2, maxAge: "10 seconds", policy: "dropOldest" })
      for (const s of ["a", "b", "c", "d", "e"]) yield* backlog.offer(f(s)) // c, d, e evict a, b, c
      expect(events).toEqual([]) // still open: the offering fiber has not yielded
      yield* TestClock.adjust("10 seconds") // yields: the burst is reported, then d and e expire
      expect(events).toEqual(["Evicted:a,b,c", "Expired:d,e"])
      yield* backlog.offer(f("g"))
      yield* backlog.offer(f("h"))
      yield* backlog.offer(f("i")) // evicts g: a new burst
      const drained = yield* backlog.drainAll // reported before the frames are handed back
      expect(drained.map(Framing.text)).toEqual(["h", "i"])
      expect(events).toEqual(["Evicted:a,b,c", "Expired:d,e", "Evicted:g"])
    }))

  it.effect("an eviction burst still open when the backlog's scope closes is reported", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { backlog, events } = yield* Scope.extend(withEvents({ maxMessages: 1, policy: "dropOldest" }), scope)
      yield* backlog.offer(f("a"))
      yield* backlog.offer(f("b"))
      yield* Scope.close(scope, Exit.void)
      expect(events).toEqual(["Evicted:a"])
    }))

  it.scoped("overflow is logged at warning once per burst (dropOldest) and once per run of refusals (rejectNew)", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const drop = yield* Backlog.make({ maxMessages: 1, policy: "dropOldest", labels: { endpoint: "d" } })
      for (const s of ["a", "b", "c"]) yield* drop.offer(f(s))
      yield* Effect.yieldNow()
      const reject = yield* Backlog.make({ maxMessages: 1, labels: { endpoint: "r" } })
      yield* reject.offer(f("a"))
      for (const s of ["b", "c", "d"]) yield* Effect.flip(reject.offer(f(s)))
      yield* reject.takeAll
      yield* reject.offer(f("e"))
      yield* Effect.flip(reject.offer(f("f")))
      const warnings = logs.lines.filter((l) => l.level === "WARN").map((l) => `${l.annotations.backlog}: ${l.message}`)
      expect(warnings).toEqual([
        "d: backlog overflow (dropOldest): 2 oldest frames (2 bytes) evicted; 1 held",
        "r: backlog overflow (rejectNew): full (maxMessages, 1 frames, 1 bytes held); refusing new frames",
        "r: backlog overflow (rejectNew): full (maxMessages, 1 frames, 1 bytes held); refusing new frames"
      ])
    }).pipe(Effect.provide(logs.layer))
  })
})
