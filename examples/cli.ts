/**
 * Flag parsing shared by the example programs.
 */
import type * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import { Settings } from "effect-tether"

/**
 * Parses a duration flag in the syntax tether's `TETHER_*` keys take (`Settings.parseDuration`): `500ms`, `2s`,
 * `1m`, `10 seconds`, `500 millis`, or a bare number of milliseconds; throws a message naming the flag otherwise.
 */
export const duration = (flag: string, text: string): Duration.Duration =>
  Option.getOrThrowWith(
    Settings.parseDuration(text),
    () => new Error(`${flag}: expected a duration like 500ms, 2s, 1m or 10 seconds (got '${text}')`)
  )
