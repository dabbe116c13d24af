/**
 * Fairness of the send-to-backlog path: a send to a peer that is down lands in
 * the backlog at once (nothing to wait for), so a storm of sends must still
 * let the event loop turn — live timers (deadlines, watchdogs, backoff) fire
 * on time. The peers are real: a loopback port that refuses connects.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { Dialer, Framing, Hub } from "effect-tether"
import { freePort } from "./helpers/dialTcp.js"
import { captureLogs } from "./helpers/logs.js"

const SENDS = 200_000

/**
 * Runs `send(i)` for i < n on a forked fiber while this fiber sleeps 100 ms on a live timer; returns
 * how late the timer fired and how many sends had completed by then.
 */
const stormWithTimer = <E>(n: number, send: (i: number) => Effect.Effect<unknown, E>) =>
  Effect.gen(function*() {
    let done = 0
    let failed = 0
    const storm = yield* Effect.fork(Effect.gen(function*() {
      for (let i = 0; i < n; i++) {
        const r = yield* Effect.either(send(i))
        if (r._tag === "Left") failed++
        done++
      }
    }))
    const t0 = performance.now()
    yield* Effect.sleep("100 millis") // a live timer, as watchdogs, write deadlines and the backoff use
    const late = performance.now() - t0 - 100
    const doneAtTimer = done
    yield* Fiber.join(storm)
    return { late, doneAtTimer, failed }
  })

describe("Dialer: sends to a peer that is down", () => {
  it.live("200 000 sends to a down peer (default backlog) cannot starve a live timer", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort // nothing listens: every connect is refused
      const dialer = yield* Dialer.make({ host: "127.0.0.1", port })
      const frame = Framing.utf8("storm")
      const r = yield* stormWithTimer(SENDS, () => dialer.send(frame))
      expect(r.late).toBeLessThan(250)
      expect(r.doneAtTimer).toBeGreaterThan(0)
      // every send either went to the backlog (default bound 10 000) or was refused with BacklogFull
      expect(dialer.unsafeStats().backlogMessages).toBe(10_000)
      expect(r.failed).toBe(SENDS - 10_000)
      const outcome = yield* dialer.stop()
      expect(outcome.undelivered.length).toBe(10_000)
      console.log(`late ${r.late.toFixed(1)} ms, ${r.doneAtTimer} sends done at the timer`)
    })), 60_000) // 190 000 refusals (each builds a BacklogFull with its stack trace) take seconds under load

  it.live("a Hub broadcast storm to down peers (dropOldest) cannot starve a live timer; every eviction reported once", () => {
    const logs = captureLogs()
    return Effect.scoped(Effect.gen(function*() {
      const evicted: Record<string, Array<string>> = { p0: [], p1: [] }
      let overflowEvents = 0
      const hub = yield* Hub.make({
        onEvent: (e) =>
          Effect.sync(() => {
            if (e._tag === "BacklogOverflow") {
              overflowEvents++
              for (const f of e.frames) evicted[e.key]!.push(Framing.text(f))
            }
          })
      })
      for (const key of ["p0", "p1"]) {
        yield* hub.addDialer(key, {
          host: "127.0.0.1",
          port: yield* freePort,
          backlog: { maxMessages: 50_000, policy: "dropOldest" }
        })
      }
      // two peers: SENDS / 2 broadcasts are SENDS sends
      const broadcasts = SENDS / 2
      const r = yield* stormWithTimer(broadcasts, (i) => hub.broadcast(Framing.utf8(`m${i}`)))
      expect(r.late).toBeLessThan(250)
      expect(r.doneAtTimer).toBeGreaterThan(0)
      expect(r.failed).toBe(0)
      const handedBack = yield* Effect.forEach(["p0", "p1"], (k) => hub.remove(k))
      const all = Array.from({ length: broadcasts }, (_, i) => `m${i}`)
      for (const [k, key] of ["p0", "p1"].entries()) {
        // the 50 000 oldest evicted (each in exactly one event, in order), the newest 50 000 handed back
        expect(evicted[key]).toEqual(all.slice(0, broadcasts - 50_000))
        expect(handedBack[k]!.map(Framing.text)).toEqual(all.slice(broadcasts - 50_000))
      }
      // evictions are coalesced into bursts, not one event per frame; one warning per burst
      expect(overflowEvents).toBeLessThan((2 * (broadcasts - 50_000)) / 10)
      const warnings = logs.lines.filter((l) => l.level === "WARN" && l.message.startsWith("backlog overflow"))
      expect(warnings.length).toBe(overflowEvents)
      console.log(`late ${r.late.toFixed(1)} ms, ${r.doneAtTimer} broadcasts done at the timer, ${overflowEvents} overflow events`)
    })).pipe(Effect.provide(logs.layer))
  }, 60_000)
})
