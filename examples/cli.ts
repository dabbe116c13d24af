/**
 * Flag parsing shared by the example programs.
 */
import * as Duration from "effect/Duration"

/** Parses `500ms`, `2s`, `1m` or a bare number of milliseconds; throws a message naming the flag otherwise. */
export const duration = (flag: string, text: string): Duration.Duration => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim())
  if (m === null) throw new Error(`${flag}: expected a duration like 500ms, 2s, 1m (got '${text}')`)
  const n = Number(m[1])
  return m[2] === "s" ? Duration.seconds(n) : m[2] === "m" ? Duration.minutes(n) : Duration.millis(n)
}
