/**
 * examples/relay end to end: providers and clients over real WebSockets; every
 * response goes back to the client that asked, under its own id; a provider
 * that leaves fails what it owed; a provider that stops answering PINGs is
 * reaped by the heartbeat.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Queue } from "effect"
import { client } from "../examples/relay/client.js"
import { provider } from "../examples/relay/provider.js"
import { relay } from "../examples/relay/relay.js"
import { connectRaw } from "./helpers/wsRaw.js"

const startProvider = (url: string, name: string, serve?: (body: string) => Effect.Effect<string, string>) =>
  Effect.gen(function*() {
    const ready = yield* Deferred.make<void>()
    const fiber = yield* Effect.forkScoped(provider({ url, name, serve, onReady: Deferred.succeed(ready, undefined) }))
    yield* Deferred.await(ready).pipe(Effect.timeout("5 seconds"))
    return fiber
  })

describe("examples/relay", () => {
  it.live("3 clients × 30 concurrent requests over 2 providers: every answer reaches its client under its id", () =>
    Effect.scoped(Effect.gen(function*() {
      const events = yield* Queue.unbounded<string>()
      const { server, stats } = yield* relay({ port: 0, onEvent: (l) => Queue.offer(events, l) })
      const url = `ws://127.0.0.1:${server.address.port}`
      yield* startProvider(url, "p1")
      yield* startProvider(url, "p2")
      // registration is the provider's first message: wait until the relay has both
      yield* Effect.replicateEffect(Queue.take(events), 2).pipe(Effect.timeout("5 seconds"))
      const bodies = (k: number) => Array.from({ length: 30 }, (_, i) => `client${k}-req${i + 1}`)
      const results = yield* Effect.all([1, 2, 3].map((k) => client({ url, bodies: bodies(k) })), {
        concurrency: "unbounded"
      })
      for (const [k, answers] of results.entries()) {
        expect(answers.map((a) => a.id)).toEqual(bodies(k + 1).map((_, i) => i + 1))
        expect(answers.map((a) => a.body)).toEqual(bodies(k + 1).map((b) => b.toUpperCase()))
      }
      const by = results.flat().map((a) => a.provider)
      expect(by.filter((p) => p === "p1").length).toBe(45) // round-robin
      expect(by.filter((p) => p === "p2").length).toBe(45)
      expect(stats()).toEqual({ providers: 2, forwarded: 90, answered: 90, failed: 0, pending: 0 })
    })))

  it.live("a provider that leaves with requests in hand: each of them is answered with an error", () =>
    Effect.scoped(Effect.gen(function*() {
      const { server, stats } = yield* relay({ port: 0 })
      const url = `ws://127.0.0.1:${server.address.port}`
      const got = yield* Queue.unbounded<string>()
      const stuck = yield* startProvider(url, "stuck", (body) => Effect.zipRight(Queue.offer(got, body), Effect.never))
      const asking = yield* Effect.fork(client({ url, bodies: ["a", "b"] }))
      yield* Effect.replicateEffect(Queue.take(got), 1).pipe(Effect.timeout("5 seconds")) // it holds "a"
      yield* Fiber.interrupt(stuck) // the provider closes its connection gracefully
      const answers = yield* Fiber.join(asking).pipe(Effect.timeout("5 seconds"))
      expect(answers).toEqual([
        { type: "response", id: 1, error: "provider stuck gone" },
        { type: "response", id: 2, error: "provider stuck gone" }
      ])
      expect(stats()).toMatchObject({ providers: 0, failed: 2, pending: 0 })
    })))

  it.live("heartbeats on: a provider that registers but never answers PINGs is reaped (PeerTimeout)", () =>
    Effect.scoped(Effect.gen(function*() {
      const events = yield* Queue.unbounded<string>()
      const { server, stats } = yield* relay({
        port: 0,
        heartbeat: { interval: "100 millis", timeout: "200 millis" },
        onEvent: (l) => Queue.offer(events, l)
      })
      const { ws } = yield* Effect.promise(() => connectRaw(server.address.port, { path: "/provider" }))
      ws!.sendText(JSON.stringify({ type: "register", name: "mute" })) // and never a PONG
      expect(yield* Queue.take(events)).toMatch(/^provider mute registered/)
      const gone = yield* Queue.take(events).pipe(Effect.timeout("3 seconds"))
      expect(gone).toMatch(/^provider mute gone/)
      expect(gone).toContain("PeerTimeout")
      expect(stats().providers).toBe(0)
      ws!.socket.destroy()
    })))
})
