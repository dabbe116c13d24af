import { defaultServerConditions } from "vite"
import { defineConfig } from "vitest/config"

// Tests, examples and bench import the package by name ("effect-tether"); the custom export condition maps those
// imports to the TypeScript sources (consumers, who do not set it, get dist/). tsconfig.json sets the same condition.
// (vitest's own default is vite's server conditions without "module")
const conditions = ["effect-tether-source", ...defaultServerConditions.filter((c) => c !== "module")]

export default defineConfig({
  ssr: { resolve: { conditions } },
  test: {
    include: ["test/**/*.test.ts"],
    // the multi-process fleet proof is its own project (vitest.fleet.config.ts, `npm run test:fleet`)
    exclude: ["test/fleet/**", "test/serial/**", "**/node_modules/**"],
    // a quiet test logger: log lines are printed only for a failing test (TETHER_TEST_LOGS=1 prints them all)
    setupFiles: ["test/setup.ts"],
    // and the figures some live tests print (reap latencies, timer delays) show only for a failing test too
    silent: process.env["TETHER_TEST_LOGS"] === "1" ? false : "passed-only",
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: "forks",
    // Most files spend their time waiting on live timers and loopback sockets, not on the CPU: vitest's
    // default of (cores − 1) workers would run them one at a time on a 2-core machine.
    poolOptions: { forks: { minForks: 1, maxForks: 3 } },
    sequence: { concurrent: false }
  }
})
