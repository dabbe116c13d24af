import { defineConfig } from "vitest/config"

// Tests, examples and bench import the package by name ("effect-tether"); the custom export condition maps those
// imports to the TypeScript sources (consumers, who do not set it, get dist/). tsconfig.json sets the same condition.
const conditions = ["effect-tether-source", "import", "module", "node", "default"]

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: "forks",
    // Most files spend their time waiting on live timers and loopback sockets, not on the CPU: vitest's
    // default of (cores − 1) workers would run them one at a time on a 2-core machine.
    poolOptions: { forks: { minForks: 1, maxForks: 3 } },
    sequence: { concurrent: false }
  }
})
