/**
 * The backlog's bounds and policies, in virtual time.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { Backlog, Connection, Framing } from "effect-tether"

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
      expect(events).toEqual(["Evicted:a", "Evicted:b"])
      expect(texts(yield* backlog.takeAll)).toEqual(["c", "d", "e"])
    }))

  it.scoped("dropOldest by bytes; a frame larger than maxBytes alone is refused", () =>
    Effect.gen(function*() {
      const { backlog, events } = yield* withEvents({ maxBytes: 4, policy: "dropOldest" })
      yield* backlog.offer(f("aa"))
      yield* backlog.offer(f("bb"))
      yield* backlog.offer(f("ccc"))
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
})
