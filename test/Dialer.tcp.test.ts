/**
 * The dialer over real loopback sockets: exactly-once across a reconnect, the
 * backlog bounds with each policy, and a Stop against a peer that never closes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Queue, Schedule, Stream } from "effect"
import { Dialer, Framing } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { frameServer, freePort, takeFrames } from "./helpers/dialTcp.js"

const utf8 = Framing.utf8

const awaitStatus = (dialer: Dialer.Dialer, status: Dialer.Status) =>
  Testing.within("5 seconds", `the dialer to reach ${status}`, Testing.awaitStatus(dialer, status))

describe("Dialer (TCP loopback)", () => {
  it.live("disconnect, send, reconnect: every frame arrives exactly once, in order", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort
      const server = yield* frameServer({ port })
      yield* server.up
      const dialer = yield* Dialer.make({ host: "127.0.0.1", port, backoff: Schedule.spaced("50 millis") })
      yield* dialer.send(utf8("a"))
      expect(yield* takeFrames(server, 1)).toEqual(["a"])
      yield* server.down // the socket is destroyed and reconnects are refused
      yield* awaitStatus(dialer, "Backoff")
      yield* dialer.send(utf8("b"))
      yield* dialer.send(utf8("c"))
      expect(dialer.unsafeStats().backlogMessages).toBe(2)
      yield* server.up
      expect(yield* takeFrames(server, 2)).toEqual(["b", "c"])
      yield* dialer.send(utf8("d"))
      expect(yield* takeFrames(server, 1)).toEqual(["d"])
      const outcome = yield* dialer.stop()
      expect(outcome.undelivered).toEqual([])
      // nothing else arrived: no duplicates
      expect(Chunk.toArray(yield* Queue.takeAll(server.frames))).toEqual([])
      expect(server.sockets.length).toBe(2)
    })))

  it.live("maxMessages with rejectNew: the excess sends fail with BacklogFull, the rest are delivered", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort
      const server = yield* frameServer({ port })
      const dialer = yield* Dialer.make({
        host: "127.0.0.1",
        port,
        backoff: Schedule.spaced("50 millis"),
        backlog: { maxMessages: 3, policy: "rejectNew" }
      })
      const results: Array<string> = []
      for (const s of ["1", "2", "3", "4", "5"]) {
        results.push(yield* dialer.send(utf8(s)).pipe(Effect.as("ok"), Effect.catchAll((e) => Effect.succeed(e._tag))))
      }
      expect(results).toEqual(["ok", "ok", "ok", "BacklogFull", "BacklogFull"])
      yield* server.up
      expect(yield* takeFrames(server, 3)).toEqual(["1", "2", "3"])
      yield* dialer.stop()
      expect(Chunk.toArray(yield* Queue.takeAll(server.frames))).toEqual([])
    })))

  it.live("maxBytes with dropOldest: the oldest frames are evicted and reported, the newest delivered", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort
      const server = yield* frameServer({ port })
      const evicted: Array<string> = []
      const dialer = yield* Dialer.make({
        host: "127.0.0.1",
        port,
        backoff: Schedule.spaced("50 millis"),
        backlog: { maxBytes: 10, policy: "dropOldest" },
        onEvent: (e) =>
          Effect.sync(() => {
            if (e._tag === "BacklogOverflow") evicted.push(...e.frames.map(Framing.text))
          })
      })
      for (const s of ["aaaa", "bbbb", "cccc", "dddd", "eeee"]) yield* dialer.send(utf8(s))
      yield* Effect.yieldNow() // the eviction burst is reported once the sending fiber yields
      expect(evicted).toEqual(["aaaa", "bbbb", "cccc"])
      expect(dialer.unsafeStats().backlogBytes).toBe(8)
      yield* server.up
      expect(yield* takeFrames(server, 2)).toEqual(["dddd", "eeee"])
      yield* dialer.stop()
    })))

  it.live("maxAge: frames that waited too long are expired and reported, never sent", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort
      const server = yield* frameServer({ port })
      const expired = yield* Queue.unbounded<string>()
      const dialer = yield* Dialer.make({
        host: "127.0.0.1",
        port,
        backoff: Schedule.spaced("50 millis"),
        backlog: { maxAge: "200 millis" },
        onEvent: (e) => (e._tag === "Expired" ? Queue.offerAll(expired, e.frames.map(Framing.text)) : Effect.void)
      })
      const start = performance.now()
      yield* dialer.send(utf8("stale-1"))
      yield* dialer.send(utf8("stale-2"))
      const gone = yield* Effect.timeout(Effect.replicateEffect(Queue.take(expired), 2), "3 seconds")
      const after = performance.now() - start
      expect(gone).toEqual(["stale-1", "stale-2"])
      expect(after).toBeGreaterThanOrEqual(190)
      yield* dialer.send(utf8("fresh"))
      yield* server.up
      expect(yield* takeFrames(server, 1)).toEqual(["fresh"])
      yield* dialer.stop()
      expect(Chunk.toArray(yield* Queue.takeAll(server.frames))).toEqual([])
    })))

  it.live("a session deciding Stop against a peer that never closes: the dialer ends within the linger bound", () =>
    Effect.scoped(Effect.gen(function*() {
      const port = yield* freePort
      const server = yield* frameServer({ port, allowHalfOpen: true }) // reads, never answers our FIN
      yield* server.up
      let decidedAt = 0
      const dialer = yield* Dialer.make({
        host: "127.0.0.1",
        port,
        connection: { lingerTimeout: "300 millis" },
        session: (conn) =>
          Effect.gen(function*() {
            yield* conn.send(utf8("bye"))
            decidedAt = performance.now()
            return Dialer.Decision.Stop({ reason: "fatal protocol error" })
          })
      })
      const outcome = yield* Effect.timeout(dialer.outcome, "5 seconds")
      const took = performance.now() - decidedAt
      expect(outcome.reason).toBe("fatal protocol error")
      expect(took).toBeGreaterThanOrEqual(290)
      expect(took).toBeLessThan(300 + 700)
      expect(yield* takeFrames(server, 1)).toEqual(["bye"])
      expect(server.sockets[0]!.readableEnded).toBe(true) // our FIN arrived
    })))
})
