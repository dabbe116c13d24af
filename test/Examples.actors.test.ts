/**
 * examples/actors end to end: producers against bounded mailboxes behind one
 * stop-gate; the shutdown drains every mailbox, refuses later sends with a
 * typed error, and accounts for every accepted message.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { Connection, Framing } from "effect-tether"
import { run } from "../examples/actors/main.js"

describe("examples/actors", () => {
  it.live("shutdown under load: the drain handles every accepted message; later sends are refused (MailboxClosed)", () =>
    Effect.gen(function*() {
      const r = yield* run({ producers: 4, mailboxCapacity: 32, until: Effect.sleep("300 millis") })
      const { report } = r
      expect(report.accepted).toBeGreaterThan(100)
      expect(report.queuedAtClose).toBeGreaterThan(0) // the drain had work to do
      expect(report.drained).toBe(true)
      expect(report.unhandled).toEqual([])
      expect(report.handled).toBe(report.accepted)
      for (const a of Object.values(report.perActor)) expect(a.handled).toBe(a.accepted)
      expect(r.ledgerHandled).toBe(r.ledgerAccepted)
      // every producer was refused once (then stopped), and so is a send after the shutdown
      expect(report.refused).toBe(4)
      expect(r.lateSend).toMatchObject({ _tag: "MailboxClosed", actor: "ledger", reason: "run-for elapsed" })
    }))

  it.live("a drain past its bound hands the unhandled messages back: accepted = handled + unhandled", () =>
    Effect.gen(function*() {
      const { report } = yield* run({
        producers: 2,
        mailboxCapacity: 16,
        slowWork: "40 millis",
        drainTimeout: "100 millis",
        until: Effect.sleep("200 millis")
      })
      expect(report.drained).toBe(false)
      expect(report.unhandled.length).toBeGreaterThan(0)
      expect(report.unhandled.every((u) => u.actor === "mailer")).toBe(true)
      expect(report.handled + report.unhandled.length).toBe(report.accepted)
      const mailer = report.perActor["mailer"]!
      expect(mailer.handled + report.unhandled.length).toBe(mailer.accepted)
    }))

  it.live("the TCP front door: 'actor body' lines answered accepted / unknown; the message is handled", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<number>()
      const stop = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(run({
        producers: 1,
        tcp: { port: 0 },
        onStart: (server) => Deferred.succeed(started, server!.address.port),
        until: Deferred.await(stop)
      }))
      const port = yield* Deferred.await(started).pipe(Effect.timeout("5 seconds"))
      const answers = yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* Connection.connectTcp({ port, codec: Framing.newline() })
        yield* conn.sendAll(["ledger 7", "ghost boo"].map(Framing.utf8))
        return yield* conn.incoming.pipe(Stream.take(2), Stream.map(Framing.text), Stream.runCollect)
      })).pipe(Effect.timeout("5 seconds"))
      expect(Array.from(answers)).toEqual(["accepted", "unknown ghost"])
      yield* Deferred.succeed(stop, undefined)
      const { report } = yield* Fiber.join(fiber).pipe(Effect.timeout("5 seconds"))
      expect(report.handled).toBe(report.accepted)
      expect(report.unhandled).toEqual([])
    }))

  it.live("the TCP front door while the broker drains: a line is answered 'refused <reason>'", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<number>()
      const stop = yield* Deferred.make<void>()
      // a slow actor with a full mailbox: the drain takes a while, and the front door is still open meanwhile
      const fiber = yield* Effect.fork(run({
        producers: 2,
        mailboxCapacity: 16,
        slowWork: "30 millis",
        tcp: { port: 0 },
        onStart: (server) => Deferred.succeed(started, server!.address.port),
        until: Deferred.await(stop)
      }))
      const port = yield* Deferred.await(started).pipe(Effect.timeout("5 seconds"))
      const answers = yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* Connection.connectTcp({ port, codec: Framing.newline() })
        const replies = yield* Stream.toPull(Stream.map(conn.incoming, Framing.text))
        const ask = Effect.zipRight(conn.send(Framing.utf8("audit ping")), replies)
        expect(Array.from(yield* ask)).toEqual(["accepted"])
        yield* Deferred.succeed(stop, undefined) // the shutdown begins: gate closed, drain under way
        const seen: Array<string> = []
        while (!seen.some((a) => a.startsWith("refused"))) seen.push(...(yield* ask))
        return seen
      })).pipe(Effect.timeout("5 seconds"))
      expect(answers.at(-1)).toBe("refused run-for elapsed")
      const { report } = yield* Fiber.join(fiber).pipe(Effect.timeout("5 seconds"))
      expect(report.queuedAtClose).toBeGreaterThan(0)
      expect(report.handled).toBe(report.accepted)
    }))
})
