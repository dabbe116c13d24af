/**
 * Idle connections park no fibers: the reader is driven by the socket's callbacks, the writer
 * runs only while there is work, the close procedure starts with the first close request, and
 * the write-deadline fiber ends after a quiet writeTimeout. Counted with a supervisor over real
 * loopback sockets.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Stream, Supervisor } from "effect"
import { Connection, Framing } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { rawServer } from "./helpers/rawPeer.js"

const liveFibers = (supervisor: Supervisor.Supervisor<Array<Fiber.RuntimeFiber<unknown, unknown>>>) =>
  Effect.map(supervisor.value, (fibers) => fibers.filter((f) => f.unsafePoll() === null).length)

describe("Connection: idle connections park no fibers", () => {
  it.scopedLive("1,000 idle connections (each wrote and read once): the live fiber count does not grow with them", () =>
    Effect.gen(function*() {
      const server = yield* rawServer({ onSocket: (socket) => socket.pipe(socket) })
      const supervisor = yield* Supervisor.track
      const open = (n: number) =>
        Effect.forEach(Array.from({ length: n }), () =>
          Effect.gen(function*() {
            const conn = yield* Connection.connectTcp({ port: server.port, writeTimeout: "200 millis" })
            yield* conn.send(Framing.utf8("hello"))
            return conn
          }), { concurrency: 50 })
      const conns = yield* open(1000).pipe(Effect.supervised(supervisor))
      // each read its echo (the reader has run) while nobody consumed `incoming` before
      yield* Testing.within(10_000, "echoes", Effect.forEach(conns, (c) => Stream.runHead(c.incoming), { concurrency: 100 }))
      // once quiet for a writeTimeout, the write-deadline fibers have ended too
      yield* Testing.within(5_000, "no live connection fibers", Effect.gen(function*() {
        while ((yield* liveFibers(supervisor)) > 0) yield* Effect.sleep("20 millis")
      }))
      expect(yield* liveFibers(supervisor)).toBe(0)
      expect(conns.every((c) => c.unsafeStats().state === "Active")).toBe(true)
      // and they still work: a send starts a writer, a close runs the full procedure
      yield* conns[0]!.send(Framing.utf8("again"))
      const outcome = yield* conns[1]!.close("done")
      expect(outcome).toMatchObject({ reason: { _tag: "LocalClose" }, delivered: 1, undelivered: [] })
    }), { timeout: 60_000 })
})
