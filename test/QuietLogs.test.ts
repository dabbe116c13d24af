/**
 * The vitest setup (test/setup.ts) keeps live tests off Effect's default
 * logger, and captureLogs still sees every line a test asserts on.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FiberRef, HashSet, Logger } from "effect"
import { captureLogs } from "./helpers/logs.js"
import { testLogger } from "./helpers/testLogger.js"

const quiet = process.env["TETHER_TEST_LOGS"] !== "1"

describe.runIf(quiet)("quiet test logs (test/setup.ts)", () => {
  it.live("it.live runs with the test logger, not the default logger", () =>
    Effect.gen(function*() {
      const loggers = yield* FiberRef.get(FiberRef.currentLoggers)
      expect(HashSet.has(loggers, Logger.defaultLogger)).toBe(false)
      expect(HashSet.has(loggers, testLogger)).toBe(true)
    }))

  it.effect("it.effect as well", () =>
    Effect.gen(function*() {
      const loggers = yield* FiberRef.get(FiberRef.currentLoggers)
      expect(HashSet.has(loggers, Logger.defaultLogger)).toBe(false)
      expect(HashSet.has(loggers, testLogger)).toBe(true)
    }))

  it.live("captureLogs still captures", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* Effect.logWarning("reaped").pipe(Effect.annotateLogs("watchdog", "send-stall"))
      expect(logs.lines).toEqual([{ level: "WARN", message: "reaped", annotations: { watchdog: "send-stall" } }])
    }).pipe(Effect.provide(logs.layer))
  })
})
