import { defaultServerConditions } from "vite"
import { defineConfig } from "vitest/config"

// The serial project: the multi-process fleet proof (nats-server, node processes, kill -9) and the tests whose timing
// needs the machine to themselves (test/serial/), one file at a time, after the main suite; part of `npm test`.
// (Formerly: the fleet proof alone)
// (`npm run test:fleet`). Same source conditions and quiet logger as vitest.config.ts.
const conditions = ["effect-tether-source", ...defaultServerConditions.filter((c) => c !== "module")]

export default defineConfig({
  ssr: { resolve: { conditions } },
  test: {
    include: ["test/fleet/**/*.test.ts", "test/serial/**/*.test.ts"],
    setupFiles: ["test/setup.ts"],
    silent: process.env["TETHER_TEST_LOGS"] === "1" ? false : "passed-only",
    testTimeout: 90_000,
    hookTimeout: 30_000,
    pool: "forks",
    poolOptions: { forks: { minForks: 1, maxForks: 1 } }
  }
})
