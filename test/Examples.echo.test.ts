/**
 * examples/echo end to end: the server and client as Effects in-process, and
 * the client's command line (tsx) against the in-process server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { client } from "../examples/echo/client.js"
import { server } from "../examples/echo/server.js"
import { runCli } from "./helpers/examples.js"

describe("examples/echo", () => {
  it.live("every line comes back in order; the client closes gracefully (peer FIN seen, nothing undelivered)", () =>
    Effect.scoped(Effect.gen(function*() {
      const srv = yield* server({ port: 0 })
      const lines = Array.from({ length: 200 }, (_, i) => `line ${i} ${"x".repeat(i)}`)
      const { outcome, replies } = yield* client({ port: srv.address.port, lines, replyTimeout: "5 seconds" })
      expect(replies).toEqual(lines)
      expect(outcome.reason._tag).toBe("LocalClose")
      expect(outcome.delivered).toBe(200)
      expect(outcome.undelivered).toEqual([])
      expect(outcome.peerEof).toBe(true)
      // the server's session ended with the client: its seat is free again
      yield* Stream.runHead(Stream.filter(srv.sessionChanges, (rows) => rows.length === 0)).pipe(
        Effect.timeout("3 seconds")
      )
      expect((yield* srv.stats).completed).toBe(1)
    })))

  it.live("the command line: lines from stdin, replies on stdout, a close report on stderr", () =>
    Effect.scoped(Effect.gen(function*() {
      const srv = yield* server({ port: 0 })
      const run = yield* runCli(
        "examples/echo/client.ts",
        ["--port", String(srv.address.port), "--reply-timeout", "3s"],
        { stdin: "one\ntwo\nthree\n" }
      )
      expect(run.code).toBe(0)
      expect(run.stdout).toBe("one\ntwo\nthree\n")
      expect(run.stderr).toContain("3 replies, 3 frames delivered, 0 undelivered, peer FIN seen")
    })))
})
