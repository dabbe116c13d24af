/**
 * Small command-line helpers shared by the FIX example programs.
 *
 * @since 0.1.0
 */
import { type Duration, Option } from "effect"
import { Settings } from "effect-tether"
import type { Message } from "./codec.js"
import { show } from "./codec.js"
import type { SessionEvent } from "./session.js"

/**
 * Parses a duration flag in the syntax tether's `TETHER_*` keys take (`Settings.parseDuration`): `500ms`, `2s`,
 * `1.5s`, `3m`, `1h`, `10 seconds`, or a bare number of milliseconds.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./cli.js"
 *
 * parseDuration("--linger", "500ms") // Duration of 500 millis
 * ```
 */
export const parseDuration = (flag: string, text: string): Duration.Duration =>
  Option.getOrThrowWith(
    Settings.parseDuration(text),
    () => new Error(`${flag}: expected a duration like 500ms, 2s, 1m or 10 seconds (got '${text}')`)
  )

/**
 * Parses a positive integer flag.
 *
 * @example
 * ```ts
 * import { parseIntFlag } from "./cli.js"
 *
 * parseIntFlag("--port", "9878") // 9878
 * ```
 */
export const parseIntFlag = (flag: string, text: string): number => {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag}: expected a non-negative integer (got '${text}')`)
  return n
}

/**
 * A one-line rendering of a session event for the console.
 *
 * @example
 * ```ts
 * import { formatEvent } from "./cli.js"
 *
 * formatEvent({ _tag: "LoggedOn", heartBtInt: 30, at: 0 }) // "1970-01-01T00:00:00.000Z logged on, HeartBtInt 30 s"
 * ```
 */
export const formatEvent = (event: SessionEvent): string => {
  const at = new Date(event.at).toISOString()
  const msg = (m: Message) => show(m)
  switch (event._tag) {
    case "Sent":
      return `${at} > ${msg(event.message)}`
    case "Received":
      return `${at} < ${msg(event.message)}`
    case "LoggedOn":
      return `${at} logged on, HeartBtInt ${event.heartBtInt} s`
    case "Gap":
      return `${at} gap: expected MsgSeqNum ${event.expected}, received ${event.received}`
    case "Ended":
      return `${at} session ended (${event.end.decision}): ${event.end.text}`
  }
}
