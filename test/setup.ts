/**
 * vitest setup (vitest.config.ts `setupFiles`): a quiet test logger by default.
 *
 * `it.effect` / `it.scoped` run without Effect's default logger already
 * (@effect/vitest removes it), but `it.live` / `it.scopedLive` run on
 * `Runtime.defaultRuntime`, whose loggers are the FiberRef's initial set: every
 * WARN a live test provokes (a reaped peer, an expired linger) went to stdout.
 * Here the default runtime's loggers become {test logger, tracer logger}: the
 * test logger keeps the current test's lines in memory and prints them only if
 * the test fails. `TETHER_TEST_LOGS=1 npx vitest run …` keeps the default logger
 * (everything on stdout, as before).
 *
 * A test that asserts on logs captures them itself (test/helpers/logs.ts); that
 * works the same with or without this setup.
 */
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import * as Runtime from "effect/Runtime"
import { beforeEach } from "vitest"
import { resetTestLog, testLog, testLogger } from "./helpers/testLogger.js"

if (process.env["TETHER_TEST_LOGS"] !== "1") {
  // `Runtime.defaultRuntime` is the runtime `Effect.runPromise` / `runFork` use; the fiber they start copies
  // its `fiberRefs` at each run, so replacing them here changes the loggers of every test effect.
  const runtime = Runtime.defaultRuntime as { fiberRefs: FiberRefs.FiberRefs }
  const initial = FiberRefs.getOrDefault(runtime.fiberRefs, FiberRef.currentLoggers)
  runtime.fiberRefs = FiberRefs.updateAs(runtime.fiberRefs, {
    fiberId: FiberId.none,
    fiberRef: FiberRef.currentLoggers,
    value: HashSet.add(HashSet.remove(initial, Logger.defaultLogger), testLogger)
  })

  beforeEach(({ onTestFailed }) => {
    resetTestLog()
    onTestFailed(() => {
      const { dropped, lines } = testLog()
      if (lines.length === 0) return
      const head = dropped > 0 ? `(${dropped} earlier lines dropped)\n` : ""
      console.log(`log lines of the failed test:\n${head}${lines.join("\n")}`)
    })
  })
}
