/**
 * Shared Config primitives: validation errors name the key and the bad value.
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Either from "effect/Either"

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

/** @internal */
export const duration = (name: string): Config.Config<Duration.Duration> => Config.duration(name)

/** @internal */
export const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> =>
  Config.map(Config.option(config), (o) => (o._tag === "Some" ? o.value : undefined))
