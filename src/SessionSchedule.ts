/**
 * When a connection may be up: non-stop, a daily `[start, end)` window, or a
 * daily window on chosen weekdays, in an IANA time zone.
 *
 * Everything here is a pure function of an instant (epoch millis, as read
 * from `Clock`), so a dialer driven by `TestClock` can cross midnight and DST
 * changes in virtual time. Zone arithmetic uses `Intl.DateTimeFormat` only.
 *
 * - The end of a window is exclusive.
 * - `end < start` makes a window that spans midnight (it belongs to the day it starts).
 * - `end === start` makes a 24-hour window that rolls over at `start` every day:
 *   always connected, with a new session period (e.g. sequence number reset) each day.
 * - A local time that does not exist (inside a DST gap) stands for the first
 *   instant after the gap; an ambiguous one (DST fall-back) for the earlier instant.
 *
 * Every window has a **period** key (`YYYY-MM-DD`, the local date the window
 * starts on): a change of period is a session rollover.
 *
 * @since 0.1.0
 */
import * as Option from "effect/Option"
import * as internal from "./internal/sessionSchedule.js"

/**
 * A day of the week.
 *
 * @example
 * ```ts
 * import type { SessionSchedule } from "effect-tether"
 *
 * const days: ReadonlyArray<SessionSchedule.Weekday> = ["Mon", "Tue", "Wed", "Thu", "Fri"]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Weekday = "Sun" | "Mon" | "Tue" | "Wed" | "Thu" | "Fri" | "Sat"

const WEEKDAYS: ReadonlyArray<Weekday> = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]

/**
 * A session schedule.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * const s: SessionSchedule.SessionSchedule = SessionSchedule.daily({ start: "08:00", end: "17:30", timeZone: "Europe/London" })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type SessionSchedule =
  | { readonly _tag: "NonStop" }
  | {
    readonly _tag: "Daily"
    readonly start: string
    readonly end: string
    readonly timeZone: string
    /** Seconds of the day. */
    readonly startSecond: number
    readonly endSecond: number
  }
  | {
    readonly _tag: "Weekdays"
    readonly days: ReadonlyArray<Weekday>
    readonly start: string
    readonly end: string
    readonly timeZone: string
    readonly startSecond: number
    readonly endSecond: number
  }

/**
 * One session window: `[start, end)` in epoch millis, and its period key.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * const w: SessionSchedule.Window = SessionSchedule.next(SessionSchedule.nonStop, 0)
 * // { start: -Infinity, end: Infinity, period: "non-stop" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Window {
  readonly start: number
  readonly end: number
  readonly period: string
}

/**
 * Always inside; one period that never rolls over.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * SessionSchedule.isInside(SessionSchedule.nonStop, 0) // true
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const nonStop: SessionSchedule = { _tag: "NonStop" }

/**
 * Every day from `start` (inclusive) to `end` (exclusive), local time in
 * `timeZone` (default `"UTC"`). Times are `HH:MM` or `HH:MM:SS`. Throws a
 * `RangeError` for a malformed time or an unknown zone.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * // a FIX-style session reset at midnight New York time, connected around the clock
 * const s = SessionSchedule.daily({ start: "00:00", end: "00:00", timeZone: "America/New_York" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const daily = (options: {
  readonly start: string
  readonly end: string
  readonly timeZone?: string | undefined
}): SessionSchedule => ({
  _tag: "Daily",
  start: options.start,
  end: options.end,
  timeZone: internal.checkTimeZone(options.timeZone ?? "UTC"),
  startSecond: internal.parseTimeOfDay(options.start) % 86_400,
  endSecond: internal.parseTimeOfDay(options.end) % 86_400
})

/**
 * A daily `[start, end)` window that opens only on the given days (the day a
 * window starts on decides). Throws a `RangeError` when `days` is empty.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * const s = SessionSchedule.weekdays({
 *   days: ["Mon", "Tue", "Wed", "Thu", "Fri"],
 *   start: "07:00",
 *   end: "19:00",
 *   timeZone: "Europe/London"
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const weekdays = (options: {
  readonly days: ReadonlyArray<Weekday>
  readonly start: string
  readonly end: string
  readonly timeZone?: string | undefined
}): SessionSchedule => {
  if (options.days.length === 0) throw new RangeError("weekdays: no day given")
  for (const d of options.days) {
    if (!WEEKDAYS.includes(d)) throw new RangeError(`weekdays: unknown day "${d}"`)
  }
  return {
    _tag: "Weekdays",
    days: options.days,
    start: options.start,
    end: options.end,
    timeZone: internal.checkTimeZone(options.timeZone ?? "UTC"),
    startSecond: internal.parseTimeOfDay(options.start) % 86_400,
    endSecond: internal.parseTimeOfDay(options.end) % 86_400
  }
}

const NON_STOP_WINDOW: Window = { start: Number.NEGATIVE_INFINITY, end: Number.POSITIVE_INFINITY, period: "non-stop" }

const windowOf = (
  s: Exclude<SessionSchedule, { _tag: "NonStop" }>,
  day: number
): Window => {
  const start = internal.toInstant(s.timeZone, day, s.startSecond)
  const endDay = s.endSecond <= s.startSecond ? day + 1 : day
  const end = internal.toInstant(s.timeZone, endDay, s.endSecond)
  return { start, end, period: internal.isoDate(day) }
}

/**
 * The window that contains `now`, or else the next one to open.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * const s = SessionSchedule.daily({ start: "08:00", end: "17:00" })
 * const w = SessionSchedule.next(s, Date.UTC(2026, 0, 5, 18, 0)) // opens 2026-01-06 08:00 UTC
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const next = (schedule: SessionSchedule, now: number): Window => {
  if (schedule._tag === "NonStop") return NON_STOP_WINDOW
  const today = internal.localDay(schedule.timeZone, now)
  for (let k = -1; k <= 8; k++) {
    const day = today + k
    if (schedule._tag === "Weekdays" && !schedule.days.includes(WEEKDAYS[internal.weekday(day)]!)) continue
    const w = windowOf(schedule, day)
    if (w.end > w.start && w.end > now) return w
  }
  // unreachable for a valid schedule: every week has at least one non-empty window
  throw new RangeError("session schedule has no window within a week")
}

/**
 * The window containing `now`, if any.
 *
 * @example
 * ```ts
 * import { Option } from "effect"
 * import { SessionSchedule } from "effect-tether"
 *
 * const s = SessionSchedule.daily({ start: "08:00", end: "17:00" })
 * Option.isNone(SessionSchedule.current(s, Date.UTC(2026, 0, 5, 17, 0))) // true: the end is exclusive
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const current = (schedule: SessionSchedule, now: number): Option.Option<Window> => {
  const w = next(schedule, now)
  return w.start <= now ? Option.some(w) : Option.none()
}

/**
 * Whether `now` is inside a session window.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * const s = SessionSchedule.daily({ start: "08:00", end: "17:00" })
 * SessionSchedule.isInside(s, Date.UTC(2026, 0, 5, 8, 0)) // true
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const isInside = (schedule: SessionSchedule, now: number): boolean => next(schedule, now).start <= now

/**
 * When the window containing `now` ends (exclusive), if `now` is inside one.
 * `Infinity` for {@link nonStop}.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * const s = SessionSchedule.daily({ start: "08:00", end: "17:00" })
 * SessionSchedule.windowEnd(s, Date.UTC(2026, 0, 5, 9, 0)) // Option.some(Date.UTC(2026, 0, 5, 17, 0))
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const windowEnd = (schedule: SessionSchedule, now: number): Option.Option<number> =>
  Option.map(current(schedule, now), (w) => w.end)

/**
 * When the next window opens: `now` itself if `now` is inside a window.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * const s = SessionSchedule.daily({ start: "08:00", end: "17:00" })
 * SessionSchedule.nextOpen(s, Date.UTC(2026, 0, 5, 20, 0)) // Date.UTC(2026, 0, 6, 8, 0)
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const nextOpen = (schedule: SessionSchedule, now: number): number => Math.max(now, next(schedule, now).start)

/**
 * The period key of the window containing `now` (`YYYY-MM-DD` of its local
 * start date, `"non-stop"` for {@link nonStop}), if inside one.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * const s = SessionSchedule.daily({ start: "00:00", end: "00:00", timeZone: "Asia/Tokyo" })
 * SessionSchedule.periodKey(s, Date.UTC(2026, 0, 5, 16, 0)) // Option.some("2026-01-06")
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const periodKey = (schedule: SessionSchedule, now: number): Option.Option<string> =>
  Option.map(current(schedule, now), (w) => w.period)

/**
 * The offset of `timeZone` from UTC at an instant, in minutes (e.g. -300 for
 * New York in winter). Exposed for diagnostics and tests.
 *
 * @example
 * ```ts
 * import { SessionSchedule } from "effect-tether"
 *
 * SessionSchedule.offsetMinutes("Europe/London", Date.UTC(2026, 6, 1)) // 60
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const offsetMinutes = (timeZone: string, instant: number): number =>
  internal.offsetAt(timeZone, instant) / 60_000
