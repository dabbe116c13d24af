/**
 * Shared Config primitives: validation errors name the key and the bad value.
 *
 * Keys are whole names (`TETHER_WRITE_TIMEOUT`), never `Config.nested` paths:
 * a path is joined with the provider's `pathDelim`, which is `_` for
 * `ConfigProvider.fromEnv` but `.` for `ConfigProvider.fromMap` and
 * `fromJson`, so nested keys silently missed every map a user wrote with the
 * names from the docs, and errors named `TETHER.WRITE_TIMEOUT`, a variable
 * nobody sets. A whole name is one path segment: the same under every provider.
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/** @internal */
export const positiveInt = (name: string): Config.Config<number> =>
  Config.mapOrFail(Config.string(name), (raw) => {
    const n = Number(raw.trim())
    return Number.isInteger(n) && n > 0
      ? Either.right(n)
      : Either.left(ConfigError.InvalidData([], `Expected a positive integer but received "${raw}"`))
  })

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3
}

/** A byte size: `65536`, `64 KiB`, `8MiB`, `1 GB`. @internal */
export const bytes = (name: string): Config.Config<number> =>
  Config.mapOrFail(Config.string(name), (raw) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw)
    const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined
    if (!m || unit === undefined) {
      return Either.left(
        ConfigError.InvalidData([], `Expected a byte size (e.g. 65536, 64 KiB, 8 MiB) but received "${raw}"`)
      )
    }
    const n = Math.floor(Number(m[1]) * unit)
    return n > 0
      ? Either.right(n)
      : Either.left(ConfigError.InvalidData([], `Expected a positive byte size but received "${raw}"`))
  })

const DURATION_UNITS: Record<string, number> = {
  "": 1,
  ns: 1e-6,
  nano: 1e-6,
  nanos: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3,
  micro: 1e-3,
  micros: 1e-3,
  ms: 1,
  milli: 1,
  millis: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  secs: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
  w: 604_800_000,
  week: 604_800_000,
  weeks: 604_800_000
}

/**
 * One duration syntax for env vars and flags: Effect's (`10 seconds`,
 * `500 millis`), the short one (`10s`, `500ms`, `1m`, `2h`, with or without a
 * space), or a bare number of milliseconds (as `Duration.decode` reads numbers).
 * @internal
 */
export const parseDuration = (text: string): Option.Option<Duration.Duration> => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z\u00b5]*)\s*$/i.exec(text)
  if (m === null) return Option.none()
  const unit = DURATION_UNITS[m[2]!.toLowerCase()]
  return unit === undefined ? Option.none() : Option.some(Duration.millis(Number(m[1]) * unit))
}

/** @internal */
export const durationSyntax = "a duration (e.g. 500ms, 10s, 10 seconds, 1m, 2 hours)"

/** @internal */
export const duration = (name: string): Config.Config<Duration.Duration> =>
  Config.mapOrFail(Config.string(name), (raw) =>
    Option.match(parseDuration(raw), {
      onNone: () => Either.left(ConfigError.InvalidData([], `Expected ${durationSyntax} but received "${raw}"`)),
      onSome: Either.right
    }))

/**
 * A layer built from options read from Config (Effect's `layerConfig` convention).
 * @internal
 */
export const layerConfig = <A, ROut, E, RIn>(
  config: Config.Config.Wrap<A>,
  make: (options: A) => Layer.Layer<ROut, E, RIn>
): Layer.Layer<ROut, E | ConfigError.ConfigError, RIn> => Layer.unwrapEffect(Effect.map(Config.unwrap(config), make))

/** @internal */
export const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> =>
  Config.map(Config.option(config), (o) => (o._tag === "Some" ? o.value : undefined))
