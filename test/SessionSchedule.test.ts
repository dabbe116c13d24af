/**
 * Session windows: pure window arithmetic in UTC and across DST changes, and
 * the dialer driven through windows and period rollovers by TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, FastCheck as fc, Option, Queue, Schedule, Stream, TestClock } from "effect"
import { Dialer, Framing, SessionSchedule } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { memoryServer, receivedFrames, settle } from "./helpers/dial.js"

const H = 3_600_000
const utc = (y: number, mo: number, d: number, h = 0, mi = 0) => Date.UTC(y, mo - 1, d, h, mi)
const awaitStatus = (dialer: Dialer.Dialer, status: Dialer.Status) =>
  Testing.awaitStatus(dialer, status).pipe(Effect.zipRight(settle))

describe("SessionSchedule (pure)", () => {
  it("daily window in UTC: start inclusive, end exclusive, next open, period key", () => {
    const s = SessionSchedule.daily({ start: "08:00", end: "17:00" })
    expect(SessionSchedule.isInside(s, utc(2026, 1, 5, 7, 59))).toBe(false)
    expect(SessionSchedule.isInside(s, utc(2026, 1, 5, 8))).toBe(true)
    expect(SessionSchedule.isInside(s, utc(2026, 1, 5, 17) - 1)).toBe(true)
    expect(SessionSchedule.isInside(s, utc(2026, 1, 5, 17))).toBe(false)
    expect(SessionSchedule.windowEnd(s, utc(2026, 1, 5, 9))).toEqual(Option.some(utc(2026, 1, 5, 17)))
    expect(SessionSchedule.windowEnd(s, utc(2026, 1, 5, 18))).toEqual(Option.none())
    expect(SessionSchedule.nextOpen(s, utc(2026, 1, 5, 18))).toBe(utc(2026, 1, 6, 8))
    expect(SessionSchedule.nextOpen(s, utc(2026, 1, 5, 9))).toBe(utc(2026, 1, 5, 9))
    expect(SessionSchedule.periodKey(s, utc(2026, 1, 5, 9))).toEqual(Option.some("2026-01-05"))
  })

  it("a window spanning midnight belongs to the day it starts", () => {
    const s = SessionSchedule.daily({ start: "22:00", end: "06:00" })
    expect(SessionSchedule.current(s, utc(2026, 1, 6, 3))).toEqual(
      Option.some({ start: utc(2026, 1, 5, 22), end: utc(2026, 1, 6, 6), period: "2026-01-05" })
    )
    expect(SessionSchedule.isInside(s, utc(2026, 1, 6, 6))).toBe(false)
    expect(SessionSchedule.nextOpen(s, utc(2026, 1, 6, 6))).toBe(utc(2026, 1, 6, 22))
  })

  it("start === end: always inside, rolling over at the start time every day", () => {
    const s = SessionSchedule.daily({ start: "00:00", end: "00:00" })
    expect(SessionSchedule.isInside(s, utc(2026, 1, 5, 23, 59))).toBe(true)
    expect(SessionSchedule.next(s, utc(2026, 1, 5, 12))).toEqual({
      start: utc(2026, 1, 5),
      end: utc(2026, 1, 6),
      period: "2026-01-05"
    })
    expect(SessionSchedule.periodKey(s, utc(2026, 1, 6))).toEqual(Option.some("2026-01-06"))
  })

  it("America/New_York: the midnight-to-midnight period is 23 h on 2026-03-08 and 25 h on 2026-11-01", () => {
    const s = SessionSchedule.daily({ start: "00:00", end: "00:00", timeZone: "America/New_York" })
    const spring = SessionSchedule.next(s, utc(2026, 3, 8, 12))
    expect(spring).toEqual({ start: utc(2026, 3, 8, 5), end: utc(2026, 3, 9, 4), period: "2026-03-08" })
    expect(spring.end - spring.start).toBe(23 * H)
    const fall = SessionSchedule.next(s, utc(2026, 11, 1, 12))
    expect(fall).toEqual({ start: utc(2026, 11, 1, 4), end: utc(2026, 11, 2, 5), period: "2026-11-01" })
    expect(fall.end - fall.start).toBe(25 * H)
  })

  it("America/New_York: a window in the spring gap opens at the transition; an ambiguous time takes the first one", () => {
    const gap = SessionSchedule.daily({ start: "02:30", end: "03:30", timeZone: "America/New_York" })
    // 02:30 does not exist on 2026-03-08: the window opens at 03:00 EDT (07:00Z)
    expect(SessionSchedule.next(gap, utc(2026, 3, 8, 0))).toEqual({
      start: utc(2026, 3, 8, 7),
      end: utc(2026, 3, 8, 7, 30),
      period: "2026-03-08"
    })
    const overlap = SessionSchedule.daily({ start: "01:30", end: "02:00", timeZone: "America/New_York" })
    // 01:30 happens twice on 2026-11-01: the first (EDT, 05:30Z); 02:00 EST is 07:00Z
    expect(SessionSchedule.next(overlap, utc(2026, 11, 1, 0))).toEqual({
      start: utc(2026, 11, 1, 5, 30),
      end: utc(2026, 11, 1, 7),
      period: "2026-11-01"
    })
  })

  it("Europe/London: 08:00–17:00 local moves from 08:00Z to 07:00Z across the 2026-03-29 change", () => {
    const s = SessionSchedule.daily({ start: "08:00", end: "17:00", timeZone: "Europe/London" })
    expect(SessionSchedule.next(s, utc(2026, 3, 28, 12)).start).toBe(utc(2026, 3, 28, 8))
    expect(SessionSchedule.next(s, utc(2026, 3, 28, 18)).start).toBe(utc(2026, 3, 29, 7))
    expect(SessionSchedule.next(s, utc(2026, 10, 25, 6)).start).toBe(utc(2026, 10, 25, 8))
    expect(SessionSchedule.offsetMinutes("Europe/London", utc(2026, 7, 1))).toBe(60)
    expect(SessionSchedule.offsetMinutes("Europe/London", utc(2026, 1, 1))).toBe(0)
  })

  it("weekdays: Friday evening's next window is Monday's", () => {
    const s = SessionSchedule.weekdays({
      days: ["Mon", "Tue", "Wed", "Thu", "Fri"],
      start: "09:00",
      end: "17:00",
      timeZone: "Europe/London"
    })
    // 2026-01-09 is a Friday
    expect(SessionSchedule.isInside(s, utc(2026, 1, 9, 12))).toBe(true)
    expect(SessionSchedule.nextOpen(s, utc(2026, 1, 9, 18))).toBe(utc(2026, 1, 12, 9))
    expect(SessionSchedule.isInside(s, utc(2026, 1, 10, 12))).toBe(false)
  })

  it.prop(
    "UTC: the period of a midnight-to-midnight window is the ISO date of the instant",
    [fc.integer({ min: -2_000_000_000_000, max: 4_102_444_800_000 })],
    ([t]) => {
      const s = SessionSchedule.daily({ start: "00:00", end: "00:00" })
      expect(SessionSchedule.periodKey(s, t)).toEqual(Option.some(new Date(t).toISOString().slice(0, 10)))
    },
    { fastCheck: { numRuns: 500 } }
  )

  it.prop(
    "in any zone, inside a 09:00–17:00 window exactly when the local time (per Intl) is in [09:00, 17:00)",
    [
      fc.integer({ min: utc(2020, 1, 1), max: utc(2035, 1, 1) }),
      fc.constantFrom("America/New_York", "Europe/London", "Asia/Tokyo", "Australia/Sydney", "Asia/Kolkata", "UTC")
    ],
    ([t, timeZone]) => {
      const s = SessionSchedule.daily({ start: "09:00", end: "17:00", timeZone })
      const parts = new Intl.DateTimeFormat("en-GB", { timeZone, hour: "numeric", minute: "numeric", hourCycle: "h23" })
        .formatToParts(t)
      const minutes = Number(parts.find((p) => p.type === "hour")!.value) * 60 +
        Number(parts.find((p) => p.type === "minute")!.value)
      const inside = minutes >= 9 * 60 && minutes < 17 * 60
      expect(SessionSchedule.isInside(s, t)).toBe(inside)
      const w = SessionSchedule.next(s, t)
      expect(w.end).toBeGreaterThan(t)
      expect(w.end - w.start).toBe(8 * H)
      if (!inside) expect(w.start).toBeGreaterThan(t)
    },
    { fastCheck: { numRuns: 500 } }
  )

  it("rejects malformed times, unknown zones and empty day lists", () => {
    expect(() => SessionSchedule.daily({ start: "8am", end: "17:00" })).toThrow(RangeError)
    expect(() => SessionSchedule.daily({ start: "08:00", end: "17:60" })).toThrow(RangeError)
    expect(() => SessionSchedule.daily({ start: "08:00", end: "17:00", timeZone: "Mars/Olympus" })).toThrow(RangeError)
    expect(() => SessionSchedule.weekdays({ days: [], start: "08:00", end: "17:00" })).toThrow(RangeError)
  })
})

describe("SessionSchedule with a Dialer (TestClock)", () => {
  it.scoped("no connection outside the window; at its end the hook runs, then a graceful close", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(utc(2026, 1, 5, 6))
      const server = yield* memoryServer()
      const dialer = yield* Dialer.make({
        connect: server.connect,
        schedule: SessionSchedule.daily({ start: "08:00", end: "17:00" }),
        onWindowEnd: (conn) => conn.send(Framing.utf8("LOGOUT"))
      })
      yield* awaitStatus(dialer, "WaitingForWindow")
      yield* TestClock.adjust(2 * H - 1)
      expect(server.attempts).toEqual([])
      yield* TestClock.adjust(1)
      const peer = yield* Queue.take(server.peers)
      expect(server.attempts).toEqual([utc(2026, 1, 5, 8)])
      yield* awaitStatus(dialer, "Connected")
      yield* TestClock.adjust(9 * H)
      yield* awaitStatus(dialer, "WaitingForWindow")
      expect(receivedFrames(peer)).toEqual(["LOGOUT"])
      expect(peer.finReceived()).toBe(true)
      expect(peer.destroyed()).toBe(true)
      // sends while closed are held for the next window
      yield* dialer.send(Framing.utf8("tomorrow"))
      expect(dialer.unsafeStats().backlogMessages).toBe(1)
      yield* dialer.stop()
    }))

  const rollover = (timeZone: string, firstMidnight: number, periodHours: number, days: [string, string, string]) =>
    Effect.gen(function*() {
      yield* TestClock.setTime(firstMidnight - H)
      const server = yield* memoryServer()
      const log: Array<string> = []
      const at = (s: string) => Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => log.push(`${t}:${s}`)))
      const dialer = yield* Dialer.make({
        connect: server.connect,
        schedule: SessionSchedule.daily({ start: "00:00", end: "00:00", timeZone }),
        onWindowEnd: (conn) => Effect.zipRight(conn.send(Framing.utf8("LOGOUT")), at("logout")),
        onNewPeriod: ({ current }) => at(`reset ${current}`),
        onEvent: (e) => (e._tag === "Connected" || e._tag === "Disconnected" ? at(e._tag) : Effect.void)
      })
      const p1 = yield* Queue.take(server.peers)
      yield* awaitStatus(dialer, "Connected")
      yield* TestClock.adjust(H - 1)
      expect(log).toEqual([`${firstMidnight - H}:reset ${days[0]}`, `${firstMidnight - H}:Connected`])
      yield* TestClock.adjust(1)
      const p2 = yield* Queue.take(server.peers)
      yield* awaitStatus(dialer, "Connected")
      expect(receivedFrames(p1)).toEqual(["LOGOUT"])
      expect(p1.destroyed()).toBe(true)
      // the logout, the close, the per-period reset and only then the new connection, all at midnight
      expect(log.slice(2)).toEqual([
        `${firstMidnight}:logout`,
        `${firstMidnight}:Disconnected`,
        `${firstMidnight}:reset ${days[1]}`,
        `${firstMidnight}:Connected`
      ])
      // the next local midnight is periodHours later (23 or 25 on a DST day)
      yield* TestClock.adjust(periodHours * H - 1)
      expect(p2.destroyed()).toBe(false)
      yield* TestClock.adjust(1)
      yield* Queue.take(server.peers)
      yield* awaitStatus(dialer, "Connected")
      expect(p2.destroyed()).toBe(true)
      expect(log.at(-2)).toBe(`${firstMidnight + periodHours * H}:reset ${days[2]}`)
      yield* dialer.stop()
    })

  it.scoped("midnight rollover in UTC", () =>
    rollover("UTC", utc(2026, 1, 6), 24, ["2026-01-05", "2026-01-06", "2026-01-07"]))

  it.scoped("midnight rollover in America/New_York into the 23-hour day of 2026-03-08", () =>
    rollover("America/New_York", utc(2026, 3, 8, 5), 23, ["2026-03-07", "2026-03-08", "2026-03-09"]))

  it.scoped("midnight rollover in America/New_York into the 25-hour day of 2026-11-01", () =>
    rollover("America/New_York", utc(2026, 11, 1, 4), 25, ["2026-10-31", "2026-11-01", "2026-11-02"]))

  it.scoped("midnight rollover in Europe/London into the 23-hour day of 2026-03-29", () =>
    rollover("Europe/London", utc(2026, 3, 29), 23, ["2026-03-28", "2026-03-29", "2026-03-30"]))

  it.scoped("the backlog is discarded (and reported) at a new period unless keepAcrossPeriods", () =>
    Effect.gen(function*() {
      for (const keep of [false, true]) {
        yield* TestClock.setTime(utc(2026, 1, 5, 6 + (keep ? 48 : 0)))
        const server = yield* memoryServer()
        server.setRefusing(true)
        const discarded: Array<string> = []
        const dialer = yield* Dialer.make({
          connect: server.connect,
          backoff: Schedule.spaced("1 hour"),
          schedule: SessionSchedule.daily({ start: "08:00", end: "17:00" }),
          backlog: { keepAcrossPeriods: keep, maxAge: "2 days" },
          onEvent: (e) => Effect.sync(() => e._tag === "Discarded" && discarded.push(...e.frames.map(Framing.text)))
        })
        yield* TestClock.adjust(2 * H) // window opens; the connect is refused; backoff
        yield* awaitStatus(dialer, "Backoff")
        yield* dialer.send(Framing.utf8("yesterday"))
        yield* TestClock.adjust(9 * H) // window over
        yield* awaitStatus(dialer, "WaitingForWindow")
        server.setRefusing(false)
        yield* TestClock.adjust(15 * H) // next day's window
        const peer = yield* Queue.take(server.peers)
        yield* awaitStatus(dialer, "Connected")
        expect(discarded).toEqual(keep ? [] : ["yesterday"])
        expect(receivedFrames(peer)).toEqual(keep ? ["yesterday"] : [])
        yield* dialer.stop()
      }
    }))
})
