/**
 * examples/hub end to end: a publisher's Hub dials three subscriber servers
 * over loopback TCP and broadcasts ticks; subscriber b restarts mid-stream.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { run } from "../examples/hub/main.js"

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

describe("examples/hub", () => {
  it.live("a subscriber restarts mid-stream: it still receives every tick exactly once, in order", () =>
    Effect.gen(function*() {
      const r = yield* run({ basePort: 0, ticks: 40, interval: "20 millis", restartAt: 10, downFor: "250 millis" })
      expect(r.ticks).toBe(40)
      expect(r.settled).toBe(true)
      for (const s of r.subscribers) {
        expect(s.received).toEqual(range(40)) // exactly once, in order
        expect(s.gaveUp).toEqual([])
      }
      const sessions = Object.fromEntries(r.subscribers.map((s) => [s.name, s.sessions]))
      expect(sessions).toEqual({ a: 1, b: 2, c: 1 })
      // b went down and came back: its ticks waited in its backlog and were replayed on the new connection
      const b = r.events.filter((e) => e.key === "b").map((e) => e._tag)
      expect(b.slice(0, 3)).toEqual(["Connected", "Disconnected", "Reconnected"])
      expect(r.events.filter((e) => e.key !== "b" && e._tag === "Reconnected")).toEqual([])
    }))

  it.live("a backlog too small for the outage: the ticks it refuses are reported, every other one arrives once", () =>
    Effect.gen(function*() {
      const r = yield* run({
        basePort: 0,
        ticks: 40,
        interval: "20 millis",
        restartAt: 10,
        downFor: "250 millis",
        backlog: { maxMessages: 3, policy: "rejectNew" }
      })
      const b = r.subscribers.find((s) => s.name === "b")!
      expect(b.gaveUp.length).toBeGreaterThan(0)
      expect(b.duplicates).toBe(0)
      expect(b.missing).toEqual([]) // every tick is received or reported
      expect(b.inOrder).toBe(true)
      expect([...b.received, ...b.gaveUp].sort((x, y) => x - y)).toEqual(range(40))
      // the three oldest ticks of the outage were kept and replayed: the refusals came after them
      const firstRefused = Math.min(...b.gaveUp)
      expect(b.received).toContain(firstRefused - 1)
      expect(r.events.some((e) => e._tag === "BacklogOverflow" && e.key === "b")).toBe(true)
      for (const s of r.subscribers.filter((s) => s.name !== "b")) expect(s.received).toEqual(range(40))
    }))
})
