/**
 * @effect/rpc over tether on loopback: `RpcProtocol.layerClient` (a tether client protocol that reconnects) against
 * `RpcProtocol.layerServer` (`RpcServer.layerProtocolSocketServer` on a tether Listener). Every call completes
 * exactly once or fails with a typed `RpcClientError`; none hangs; bounds hold while calls are in flight.
 */
import { RpcClient, RpcClientError, RpcSerialization, RpcServer } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Fiber, FiberId, Layer, Schedule, Scope } from "effect"
import { Watchdog } from "effect-tether"
import * as RpcProtocol from "effect-tether/RpcProtocol"
import * as Testing from "effect-tether/testing"
import { Api, serverLayer, spawnServer } from "./helpers/rpcApi.js"

/** what the server executed: request id → times its handler started */
const makeLedger = () => {
  const started = new Map<number, number>()
  const note = (id: number) => Effect.sync(() => void started.set(id, (started.get(id) ?? 0) + 1))
  return { started, note }
}
type Ledger = ReturnType<typeof makeLedger>

/** a server in its own scope, so a test can stop it and start it again on the same port */
const startServer = (port: number, ledger: Ledger, options?: { readonly shutdownTimeout?: Duration.DurationInput }) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Layer.buildWithScope(serverLayer(port, ledger.note, options), scope)
    return scope
  })

/** a client whose protocol lives in the current scope */
const client = (options: RpcProtocol.ClientOptions) =>
  Effect.flatMap(
    Layer.build(RpcProtocol.layerClient(options).pipe(Layer.provide(RpcSerialization.layerMsgPack))),
    (context) => Effect.provide(RpcClient.make(Api), context)
  )

/** polls a condition every 5 ms, bounded */
const waitFor = (condition: () => boolean, what: string) =>
  Testing.within("10 seconds", what, Effect.repeat(Effect.sleep("5 millis"), { until: () => condition() }))

const isTyped = (cause: Cause.Cause<unknown>) =>
  Cause.isFailType(cause) && cause.error instanceof RpcClientError.RpcClientError

/**
 * How a call ended: "ok", "typed" (an `RpcClientError`), or "server-interrupted": the server interrupted it at its
 * shutdown and said so (what @effect/rpc does: an Exit interrupted by `RpcServer.fiberIdTransientInterrupt`).
 */
const settled = (exit: Exit.Exit<unknown, unknown>): "ok" | "typed" | "server-interrupted" | string => {
  if (Exit.isSuccess(exit)) return "ok"
  if (isTyped(exit.cause)) return "typed"
  if (
    Cause.isInterruptedOnly(exit.cause) &&
    [...Cause.interruptors(exit.cause)].some((id) => [...FiberId.ids(id)].includes(RpcServer.fiberIdTransientInterrupt.id))
  ) return "server-interrupted"
  return Cause.pretty(exit.cause)
}

describe("RpcProtocol over tether (loopback)", () => {
  it.live("10 000 calls from 100 fibers each complete exactly once", () =>
    Effect.gen(function*() {
      const port = yield* Testing.freePort()
      const ledger = makeLedger()
      const server = yield* startServer(port, ledger)
      const results = yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* client({ port })
        // the bound is for a hang, not a speed check: a loaded 2-core machine is slow
        return yield* Testing.within(
          "30 seconds",
          "10 000 calls",
          Effect.forEach(
            Array.from({ length: 100 }, (_, f) => f),
            (f) =>
              Effect.forEach(Array.from({ length: 100 }, (_, i) => f * 100 + i), (id) => c.Add({ id, a: id, b: 1 })),
            { concurrency: "unbounded" }
          )
        )
      }))
      yield* Scope.close(server, Exit.void)
      const flat = results.flat()
      expect(flat).toHaveLength(10_000)
      expect(flat.every((r, id) => r === id + 1)).toBe(true)
      expect(ledger.started.size).toBe(10_000)
      expect([...ledger.started.values()].every((n) => n === 1)).toBe(true)
    }), 40_000)

  /** every 50th of the 500 calls takes 3 s (in flight when the server goes away, whatever the machine's speed) */
  const slowMillis = (id: number) => (id % 50 === 0 ? 3_000 : id % 40)
  const longIds = Array.from({ length: 10 }, (_, i) => i * 50)

  /**
   * 500 calls (10 of 3 s, the others 0–40 ms); the server goes away once the long ones run (a wall-clock delay
   * here let every call finish first on a fast run, and no call was in flight), 200 calls while it is down, then
   * it is started again
   */
  const restartScenario = <E, R>(
    port: number,
    started: ReadonlyMap<number, number>,
    stop: Effect.Effect<void>,
    start: Effect.Effect<void, E, R>
  ) =>
    Effect.scoped(Effect.gen(function*() {
      // a restarted server process can take seconds to listen on a loaded machine: calls may wait that long
      const c = yield* client({ port, queueTimeout: "20 seconds" })
      yield* c.Add({ id: -1, a: 0, b: 0 }) // connected
      const calls = yield* Effect.forEach(
        Array.from({ length: 500 }, (_, id) => id),
        (id) => Effect.fork(Effect.exit(c.Slow({ id, millis: slowMillis(id) }))),
        { concurrency: "unbounded" }
      )
      yield* waitFor(() => longIds.every((id) => started.has(id)), "the long calls running")
      yield* stop
      const during = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => 1000 + i),
        (id) => Effect.fork(Effect.exit(c.Add({ id, a: id, b: 1 }))),
        { concurrency: "unbounded" }
      )
      yield* start
      const exits = yield* Testing.within("25 seconds", "every call settles", Fiber.joinAll([...calls, ...during]))
      const after = yield* Testing.within(
        "10 seconds",
        "a call after the restart",
        Effect.retry(c.Add({ id: 5000, a: 1, b: 1 }), { schedule: Schedule.spaced("100 millis"), times: 50 })
      )
      return { exits, after }
    }))

  const checkRestart = (
    outcome: { readonly exits: ReadonlyArray<Exit.Exit<number, unknown>>; readonly after: number },
    started: ReadonlyMap<number, number>,
    allowed: ReadonlyArray<string>
  ) => {
    expect(outcome.after).toBe(2)
    const counts: Record<string, number> = {}
    outcome.exits.forEach((exit, i) => {
      const id = i < 500 ? i : 1000 + (i - 500)
      const how = settled(exit)
      expect(allowed, `request ${id}: ${how}`).toContain(how)
      counts[how] = (counts[how] ?? 0) + 1
      if (i >= 500 && how === "ok") counts["ok after the reconnect"] = (counts["ok after the reconnect"] ?? 0) + 1
      // a call that completed ran exactly once
      if (how === "ok") expect(started.get(id), `request ${id}`).toBe(1)
    })
    // none ran twice
    for (const [id, n] of started) expect(n, `request ${id} ran ${n} times`).toBe(1)
    return counts
  }

  it.live(
    "the server (in-process) is shut down mid-stream and started again on the same port: every call completes once, fails typed or is interrupted by the server; none runs twice",
    () =>
      Effect.gen(function*() {
        const port = yield* Testing.freePort()
        const ledger = makeLedger()
        let server = yield* startServer(port, ledger)
        const outcome = yield* restartScenario(
          port,
          ledger.started,
          Effect.suspend(() => Scope.close(server, Exit.void)),
          Effect.map(startServer(port, ledger), (s) => {
            server = s
          })
        )
        yield* Scope.close(server, Exit.void)
        const counts = checkRestart(outcome, ledger.started, ["ok", "typed", "server-interrupted"])
        expect(counts["server-interrupted"] ?? 0).toBeGreaterThan(0) // the shutdown interrupted calls in flight
        expect(counts["ok"] ?? 0).toBeGreaterThan(0)
      })
  )

  it.scopedLive(
    "the server process is killed (SIGKILL) mid-stream and restarted on the same port: every call completes exactly once or fails typed; none runs twice",
    () =>
      Effect.gen(function*() {
        const port = yield* Testing.freePort()
        const started = new Map<number, number>()
        let server = yield* spawnServer(port, started)
        const outcome = yield* restartScenario(
          port,
          started,
          Effect.suspend(() => server.kill),
          Effect.map(spawnServer(port, started), (s) => {
            server = s
          })
        )
        const counts = checkRestart(outcome, started, ["ok", "typed"])
        expect(counts["typed"] ?? 0).toBeGreaterThan(0) // some were in flight when the server died
        // calls made while it was down waited (queueTimeout 5 s) and completed once after the reconnect
        expect(counts["ok after the reconnect"]).toBe(200)
      }),
    40_000
  )

  it.scopedLive("a call marked idempotent is sent again after the server died with it unanswered", () =>
    Effect.gen(function*() {
      const port = yield* Testing.freePort()
      const started = new Map<number, number>()
      let server = yield* spawnServer(port, started)
      const exits = yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* client({ port, idempotent: ["Slow"], queueTimeout: "20 seconds" })
        yield* c.Add({ id: -1, a: 0, b: 0 })
        const calls = yield* Effect.forEach(
          Array.from({ length: 20 }, (_, id) => id),
          (id) => Effect.fork(Effect.exit(c.Slow({ id, millis: 800 }))),
          { concurrency: "unbounded" }
        )
        yield* waitFor(() => started.size >= 21, "21 calls started")
        yield* server.kill
        server = yield* spawnServer(port, started)
        return yield* Testing.within("25 seconds", "idempotent calls settle", Fiber.joinAll(calls))
      }))
      expect(exits.map(settled)).toEqual(Array.from({ length: 20 }, () => "ok"))
      for (let id = 0; id < 20; id++) expect(started.get(id)).toBe(2) // ran again after the restart
    }), 40_000)

  it.scopedLive("a server that stops reading: the send-stall watchdog reaps the connection, pending calls fail typed", () =>
    Effect.gen(function*() {
      const peer = yield* Testing.nonReaderPeer()
      const stallTimeout = Duration.seconds(1)
      const probeInterval = Duration.millis(200)
      const started = Date.now()
      const exits = yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* client({
          port: peer.port,
          watchdogs: [Watchdog.sendStall({ probeInterval, stallTimeout })],
          retrySchedule: Schedule.stop
        })
        const data = new Uint8Array(256 * 1024)
        return yield* Testing.within(
          "10 seconds",
          "pending calls fail",
          Effect.forEach(
            Array.from({ length: 64 }, (_, id) => id),
            (id) => Effect.exit(c.Put({ id, data })),
            { concurrency: "unbounded" }
          )
        )
      }))
      const elapsed = Date.now() - started
      expect(exits.every((e) => Exit.isFailure(e) && isTyped(e.cause))).toBe(true)
      // reaped within stallTimeout + 2 probes (+ slack for a loaded machine)
      expect(elapsed).toBeLessThan(Duration.toMillis(stallTimeout) + 2 * Duration.toMillis(probeInterval) + 3000)
    }))

  it.live("client and server shutdown complete within their bounds while calls are in flight", () =>
    Effect.gen(function*() {
      const port = yield* Testing.freePort()
      const ledger = makeLedger()
      const server = yield* startServer(port, ledger, { shutdownTimeout: "500 millis" })
      // the client's scope closes with 200 calls of 5 s in flight: bounded by the connection's close
      const clientScope = yield* Scope.make()
      const c = yield* Scope.extend(client({ port, lingerTimeout: "500 millis", drainTimeout: "500 millis" }), clientScope)
      yield* c.Add({ id: -1, a: 0, b: 0 })
      const calls = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, id) => id),
        (id) => Effect.fork(Effect.exit(c.Slow({ id, millis: 5000 }))),
        { concurrency: "unbounded" }
      )
      yield* waitFor(() => ledger.started.size >= 201, "201 calls started")
      const t0 = Date.now()
      yield* Testing.within("3 seconds", "client shutdown", Scope.close(clientScope, Exit.void))
      const clientMillis = Date.now() - t0
      const exits = yield* Testing.within("3 seconds", "calls settle", Fiber.joinAll(calls))
      expect(exits.every(Exit.isFailure)).toBe(true)

      // the server's scope closes with 200 calls of 5 s in flight from another client: shutdownTimeout bounds it
      const second = yield* Scope.make()
      const c2 = yield* Scope.extend(client({ port }), second)
      const calls2 = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, id) => 10_000 + id),
        (id) => Effect.fork(Effect.exit(c2.Slow({ id, millis: 5000 }))),
        { concurrency: "unbounded" }
      )
      yield* waitFor(() => ledger.started.size >= 401, "401 calls started")
      const t1 = Date.now()
      yield* Testing.within("3 seconds", "server shutdown", Scope.close(server, Exit.void))
      const serverMillis = Date.now() - t1
      const exits2 = yield* Testing.within("3 seconds", "calls settle", Fiber.joinAll(calls2))
      yield* Scope.close(second, Exit.void)
      expect(exits2.map(settled).every((how) => how === "server-interrupted" || how === "typed")).toBe(true)
      expect(clientMillis).toBeLessThan(1000 + 1500)
      expect(serverMillis).toBeLessThan(500 + 1500)
    }))

  it.live("a call made while no server listens fails typed once it waited queueTimeout (at the next failed attempt)", () =>
    Effect.gen(function*() {
      const port = yield* Testing.freePort()
      const [immediate, bounded] = yield* Effect.scoped(Effect.gen(function*() {
        const once = yield* client({ port, queueTimeout: 0 })
        const immediate = yield* Testing.within("2 seconds", "the call fails", Effect.exit(once.Add({ id: 1, a: 1, b: 1 })))
        const c = yield* client({ port, queueTimeout: "300 millis", retrySchedule: Schedule.spaced("100 millis") })
        const t0 = Date.now()
        const exit = yield* Testing.within("3 seconds", "the call fails", Effect.exit(c.Add({ id: 2, a: 1, b: 1 })))
        return [immediate, { exit, millis: Date.now() - t0 }] as const
      }))
      expect(settled(immediate)).toBe("typed")
      expect(settled(bounded.exit)).toBe("typed")
      expect(bounded.millis).toBeGreaterThanOrEqual(290)
      expect(bounded.millis).toBeLessThan(300 + 100 + 1500)
    }))
})

