/**
 * examples/rpc end to end: the key-value server as a layer in-process, the client's commands in-process and from
 * its command line (tsx).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Testing from "effect-tether/testing"
import { command, protocol } from "../examples/rpc/client.js"
import { layer } from "../examples/rpc/server.js"
import { runCli } from "./helpers/examples.js"

describe("examples/rpc", () => {
  it.scopedLive("put, get, count, a typed NotFound; then the command line against the same server", () =>
    Effect.gen(function*() {
      const port = yield* Testing.freePort()
      yield* Layer.build(layer({ port }))
      const run = (args: ReadonlyArray<string>) => command(args).pipe(Effect.scoped, Effect.provide(protocol({ port })))
      expect(yield* run(["put", "greeting", "hello"])).toBe("ok")
      expect(yield* run(["get", "greeting"])).toBe("hello")
      expect(yield* run(["get", "nope"])).toBe("not found: nope")
      expect(yield* run(["count"])).toBe("1")
      const cli = yield* runCli("examples/rpc/client.ts", ["--port", String(port), "get", "greeting"])
      expect(cli.code).toBe(0)
      expect(cli.stdout).toBe("hello\n")
    }))
})
