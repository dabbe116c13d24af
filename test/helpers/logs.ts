/**
 * Captures the log lines of a test (level, message, annotations). Tests that
 * assert on logs provide `layer` themselves; every other log line goes to the
 * quiet test logger of test/setup.ts (printed only when a test fails).
 */
import { HashMap, Logger } from "effect"

export interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
}

/** A logger layer that records every line into `lines`. */
export const captureLogs = () => {
  const lines: Array<LogLine> = []
  const logger = Logger.make<unknown, void>(({ annotations, logLevel, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    lines.push({ level: logLevel.label, message: text, annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}
