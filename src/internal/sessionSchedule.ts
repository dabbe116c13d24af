/**
 * Wall-clock arithmetic in IANA time zones with nothing but `Intl`.
 *
 * Instants are epoch milliseconds (as read from `Clock`); local dates are
 * counted in days since 1970-01-01. Converting a local time to an instant
 * takes the earliest instant at or after it: a time inside a DST gap becomes
 * the transition instant (the first one after the gap), an ambiguous time (DST
 * fall-back) takes the earlier instant.
 * @internal
 */

const DAY_MS = 86_400_000

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). @internal */
export const daysFromCivil = (y: number, m: number, d: number): number => {
  const yy = m <= 2 ? y - 1 : y
  const era = Math.floor(yy / 400)
  const yoe = yy - era * 400
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146_097 + doe - 719_468
}

/** The date of a day count (inverse of {@link daysFromCivil}). @internal */
export const civilFromDays = (days: number): readonly [number, number, number] => {
  const z = days + 719_468
  const era = Math.floor(z / 146_097)
  const doe = z - era * 146_097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1
  const m = mp < 10 ? mp + 3 : mp - 9
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d] as const
}

const formatters = new Map<string, Intl.DateTimeFormat>()

/** @internal */
export const formatter = (timeZone: string): Intl.DateTimeFormat => {
  let f = formatters.get(timeZone)
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric"
    })
    formatters.set(timeZone, f)
  }
  return f
}

/** The local wall time of an instant, as if it were UTC (epoch millis, whole seconds). @internal */
export const wallTime = (timeZone: string, instant: number): number => {
  if (timeZone === "UTC") return Math.floor(instant / 1000) * 1000
  let y = 1970, mo = 1, d = 1, h = 0, mi = 0, s = 0
  for (const p of formatter(timeZone).formatToParts(instant)) {
    switch (p.type) {
      case "year":
        y = Number(p.value)
        break
      case "month":
        mo = Number(p.value)
        break
      case "day":
        d = Number(p.value)
        break
      case "hour":
        h = Number(p.value) % 24
        break
      case "minute":
        mi = Number(p.value)
        break
      case "second":
        s = Number(p.value)
        break
    }
  }
  return daysFromCivil(y, mo, d) * DAY_MS + ((h * 60 + mi) * 60 + s) * 1000
}

/** The zone's offset from UTC at an instant, in millis (local = instant + offset). @internal */
export const offsetAt = (timeZone: string, instant: number): number =>
  wallTime(timeZone, instant) - Math.floor(instant / 1000) * 1000

/** The local date (days since epoch) of an instant. @internal */
export const localDay = (timeZone: string, instant: number): number => Math.floor(wallTime(timeZone, instant) / DAY_MS)

/**
 * The instant of a local date and second of day. Gap → the transition
 * instant, overlap → the earlier instant.
 * @internal
 */
export const toInstant = (timeZone: string, day: number, secondOfDay: number): number => {
  const wall = day * DAY_MS + secondOfDay * 1000
  if (timeZone === "UTC") return wall
  const before = offsetAt(timeZone, wall - DAY_MS)
  const after = offsetAt(timeZone, wall + DAY_MS)
  const t1 = wall - before
  const t2 = wall - after
  const ok1 = offsetAt(timeZone, t1) === before
  const ok2 = offsetAt(timeZone, t2) === after
  if (ok1 && ok2) return Math.min(t1, t2)
  if (ok1) return t1
  if (ok2) return t2
  // inside a gap: the wall time does not exist; take the first instant after the gap (the transition)
  let lo = Math.min(t1, t2)
  let hi = Math.max(t1, t2)
  const hiOffset = offsetAt(timeZone, hi)
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000
    if (offsetAt(timeZone, mid) === hiOffset) hi = mid
    else lo = mid
  }
  return hi
}

/** Day of week of a local date (0 = Sunday). @internal */
export const weekday = (day: number): number => (((day + 4) % 7) + 7) % 7

/** `YYYY-MM-DD` of a local date. @internal */
export const isoDate = (day: number): string => {
  const [y, m, d] = civilFromDays(day)
  return `${String(y).padStart(4, "0")}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`
}

/** Parses `HH:MM` or `HH:MM:SS` (00:00:00 – 24:00:00) into seconds of the day. @internal */
export const parseTimeOfDay = (s: string): number => {
  const m = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(s)
  if (m === null) throw new RangeError(`invalid time of day "${s}" (expected HH:MM or HH:MM:SS)`)
  const h = Number(m[1])
  const mi = Number(m[2])
  const sec = m[3] === undefined ? 0 : Number(m[3])
  if (mi > 59 || sec > 59 || h > 24 || (h === 24 && (mi > 0 || sec > 0))) {
    throw new RangeError(`invalid time of day "${s}"`)
  }
  return h * 3600 + mi * 60 + sec
}

/** Throws a RangeError for a zone `Intl` does not know. @internal */
export const checkTimeZone = (timeZone: string): string => {
  formatter(timeZone)
  return timeZone
}
