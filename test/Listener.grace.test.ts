/**
 * A session handler finishes the frames it already read after the client
 * closes (nothing accepted is dropped); a handler that ignores the close is
 * interrupted at `sessionGrace`, so the seat is freed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Stream, TestClock } from "effect"
import { Connection, Framing, Listener } from "effect-tether"

describe("Listener session grace", () => {
  it.scopedLive("frames read before the client's close are all handled, even by a slow handler", () =>
    Effect.gen(function*() {
      let handled = 0
      const done = yield* Deferred.make<void>()
      const server = yield* Listener.serve({ port: 0 }, (conn) =>
        Stream.runForEach(conn.incoming, () =>
          Effect.zipRight(Effect.sleep("1 millis"), Effect.sync(() => handled++))).pipe(
            Effect.ensuring(Deferred.succeed(done, undefined))
          ))
      const outcome = yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Connection.connectTcp({ port: server.address.port })
        yield* client.sendAll(Array.from({ length: 100 }, (_, i) => Framing.utf8(`frame ${i}`)))
        return yield* client.close()
      }))
      expect(outcome.delivered).toBe(100)
      yield* Deferred.await(done).pipe(Effect.timeout("5 seconds"))
      expect(handled).toBe(100)
    }))

  it.scopedLive("a handler that ignores the close is interrupted at sessionGrace and the seat frees", () =>
    Effect.gen(function*() {
      const server = yield* Listener.serve({ port: 0, sessionGrace: "200 millis", maxConnections: 1 }, () => Effect.never)
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Connection.connectTcp({ port: server.address.port })
        yield* Effect.repeat(server.stats, { until: (s) => s.active === 1 })
        yield* client.close()
      }))
      const t0 = performance.now()
      const stats = yield* Stream.runHead(
        Stream.filter(server.sessionChanges, (rows) => rows.length === 0)
      ).pipe(Effect.timeout("3 seconds"))
      expect(stats._tag).toBe("Some")
      expect(performance.now() - t0).toBeLessThan(1500)
      expect(server.unsafeStats().active).toBe(0)
    }))

  it.scoped("TestClock: the grace ends exactly at sessionGrace after the close", () =>
    Effect.gen(function*() {
      const server = yield* Listener.serve({ port: 0, sessionGrace: "5 seconds" }, () => Effect.never)
      const rowsOf = (n: number) =>
        Stream.runHead(Stream.filter(server.sessionChanges, (rows) => rows.length === n)).pipe(Effect.asVoid)
      // real sockets, virtual time: wait on events, never on the clock
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Connection.connectTcp({ port: server.address.port, lingerTimeout: "0 millis" })
        yield* rowsOf(1)
        yield* client.abort()
      }))
      yield* Stream.runHead(
        Stream.filter(server.sessionChanges, (rows) => rows.length === 1 && rows[0]!.state === "Closed")
      )
      yield* TestClock.adjust("4999 millis")
      expect(server.unsafeStats().active).toBe(1) // still within its grace
      yield* TestClock.adjust("1 millis")
      yield* rowsOf(0)
      expect(server.unsafeStats().active).toBe(0)
    }))
  it.scoped("TestClock: sessions closed at different times each get their grace from their own close (one listener timer)", () =>
    Effect.gen(function*() {
      let finished = 0
      // the first handler ends by itself 1 s after its close (within its grace), the others ignore the close
      const server = yield* Listener.serve({ port: 0, sessionGrace: "5 seconds" }, (conn) =>
        conn.id.endsWith("-1")
          ? Effect.zipRight(conn.closed, Effect.sleep("1 second")).pipe(Effect.ensuring(Effect.sync(() => finished++)))
          : Effect.never)
      const closedRows = (n: number) =>
        Stream.runHead(
          Stream.filter(server.sessionChanges, (rows) => rows.filter((r) => r.state === "Closed").length === n)
        ).pipe(Effect.asVoid)
      const rowsOf = (n: number) =>
        Stream.runHead(Stream.filter(server.sessionChanges, (rows) => rows.length === n)).pipe(Effect.asVoid)
      // three sessions, closed at 0 s, 0 s and 2 s (virtual)
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* Connection.connectTcp({ port: server.address.port, lingerTimeout: "0 millis" })
        yield* rowsOf(1)
        const d = yield* Connection.connectTcp({ port: server.address.port, lingerTimeout: "0 millis" })
        yield* rowsOf(2)
        yield* c.abort()
        yield* d.abort()
      }))
      yield* closedRows(2)
      yield* TestClock.adjust("2 seconds")
      expect(finished).toBe(1) // the cooperative handler ended at 1 s: its grace timer entry is dropped
      yield* rowsOf(1)
      yield* Effect.scoped(Effect.gen(function*() {
        const e = yield* Connection.connectTcp({ port: server.address.port, lingerTimeout: "0 millis" })
        yield* rowsOf(2)
        yield* e.abort()
      }))
      yield* closedRows(2)
      yield* TestClock.adjust("2999 millis") // 4.999 s after the first closes
      expect(server.unsafeStats().active).toBe(2)
      yield* TestClock.adjust("1 millis") // 5 s: the second is interrupted, the third (closed at 2 s) is not
      yield* rowsOf(1)
      yield* TestClock.adjust("1999 millis")
      expect(server.unsafeStats().active).toBe(1)
      yield* TestClock.adjust("1 millis") // 7 s: the third's grace ends
      yield* rowsOf(0)
      expect(server.unsafeStats().active).toBe(0)
    }))
})
