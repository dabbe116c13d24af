import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // a quiet test logger: log lines are printed only for a failing test (TETHER_TEST_LOGS=1 prints them all)
    setupFiles: ["test/setup.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: "forks",
    // Most files spend their time waiting on live timers and loopback sockets, not on the CPU: vitest's
    // default of (cores − 1) workers would run them one at a time on a 2-core machine.
    poolOptions: { forks: { minForks: 1, maxForks: 3 } },
    sequence: { concurrent: false }
  }
})
