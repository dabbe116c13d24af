/**
 * The quiet test logger test/setup.ts installs: it keeps the running test's log
 * lines (logfmt, as Effect's default logger prints them) in memory, bounded.
 */
import * as Logger from "effect/Logger"

const MAX_LINES = 2000
let lines: Array<string> = []
let dropped = 0

/** Records formatted lines for the running test. */
export const testLogger = Logger.make<unknown, void>((options) => {
  if (lines.length >= MAX_LINES) {
    lines.shift()
    dropped++
  }
  lines.push(Logger.logfmtLogger.log(options))
})

/** Forgets the lines recorded so far (at the start of each test). */
export const resetTestLog = (): void => {
  lines = []
  dropped = 0
}

/** The lines recorded since the last reset, with a note of how many were dropped. */
export const testLog = (): { readonly lines: ReadonlyArray<string>; readonly dropped: number } => ({ lines, dropped })
