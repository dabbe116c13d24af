/**
 * The hub story in one process: three subscriber servers, a publisher whose
 * Hub dials all three (reconnecting Dialers, bounded backlogs) and broadcasts
 * ticks; subscriber "b" restarts mid-stream. While b is down its ticks wait in
 * its backlog; when it is back they are replayed, in order, before any new
 * one. At the end every subscriber has every tick exactly once (or the hub
 * reported the ones a backlog gave up on).
 *
 *   npx tsx examples/hub/main.ts
 *   npx tsx examples/hub/main.ts --ticks 200 --interval 20ms --restart-at 50 --down-for 1s --backlog-max 20
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Clock, Console, Deferred, Duration, Effect, Fiber, Stream } from "effect"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import type { Backlog, Hub, Listener } from "effect-tether"
import { defaultBacklog, describeEvent, publisher } from "./publisher.js"
import { duration } from "../cli.js"
import { subscriber } from "./subscriber.js"

/** Options of {@link run}. */
export interface RunOptions {
  readonly host?: string | undefined
  /** Ports of subscribers a, b, c: `basePort`, +1, +2 (0: any free ports). */
  readonly basePort?: number | undefined
  readonly ticks: number
  readonly interval: Duration.DurationInput
  /** Subscriber b goes down right after this tick... */
  readonly restartAt: number
  /** ...and comes back this much later, on the same port. */
  readonly downFor: Duration.DurationInput
  readonly backlog?: Backlog.Options | undefined
  readonly reconnectDelay?: Duration.DurationInput | undefined
  /** Every line of the story, as it happens. */
  readonly log?: ((line: string) => Effect.Effect<void>) | undefined
}

/** What each subscriber received. */
export interface SubscriberReport {
  readonly name: string
  /** Ticks in arrival order, over every incarnation of the subscriber. */
  readonly received: ReadonlyArray<number>
  /** Connections it accepted, over every incarnation. */
  readonly sessions: number
  /** Ticks the hub reported as given up for this peer (backlog full or expired). */
  readonly gaveUp: ReadonlyArray<number>
  readonly duplicates: number
  /** Ticks neither received nor reported. */
  readonly missing: ReadonlyArray<number>
  readonly inOrder: boolean
}

/** Runs the story; returns what each subscriber got and the hub's events. */
export const run = (options: RunOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    // subscribers live in this scope, not in the publisher's (which closes when it has published)
    const scope = yield* Effect.scope
    const log = options.log ?? (() => Effect.void)
    const t0 = yield* Clock.currentTimeMillis
    const say = (line: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => log(`${String(now - t0).padStart(6)} ms  ${line}`))
    const names = ["a", "b", "c"] as const
    const received: Record<string, Array<number>> = { a: [], b: [], c: [] }
    const sessions: Record<string, number> = { a: 0, b: 0, c: 0 }
    const current: Record<string, { fiber: Fiber.RuntimeFiber<void>; server: Listener.Server }> = {}
    const events: Array<Hub.Event> = []

    // a subscriber incarnation runs in its own fiber; interrupting it closes its scope (graceful shutdown)
    const start = (name: string, port: number) =>
      Effect.gen(function*() {
        const up = yield* Deferred.make<Listener.Server, Listener.ListenerError>()
        const fiber = yield* Effect.forkIn(Effect.scoped(
          subscriber({ name, host, port, onTick: (t) => Effect.sync(() => received[name]!.push(t)) }).pipe(
            Effect.tap((server) => Deferred.succeed(up, server)),
            Effect.tapError((e) => Deferred.fail(up, e)),
            Effect.zipRight(Effect.never)
          )
        ).pipe(Effect.asVoid, Effect.orElse(() => Effect.void)), scope)
        const server = yield* Deferred.await(up)
        const prev = current[name]
        if (prev !== undefined) sessions[name]! += prev.server.unsafeStats().accepted
        current[name] = { fiber, server }
        return server
      })
    const stop = (name: string) =>
      Effect.gen(function*() {
        const c = current[name]!
        yield* Fiber.interrupt(c.fiber)
      })

    const ports: Record<string, number> = {}
    for (const [i, name] of names.entries()) {
      const server = yield* start(name, options.basePort ? options.basePort + i : 0)
      ports[name] = server.address.port
      yield* say(`subscriber ${name} listening on ${host}:${server.address.port}`)
    }
    const backlog = options.backlog ?? defaultBacklog
    yield* say(
      `publisher: hub of ${names.length} dialers; backlog per peer at most ${backlog.maxMessages} ticks, ` +
        `${Duration.format(Duration.decode(backlog.maxAge ?? "5 minutes"))} old, ${backlog.policy ?? "rejectNew"} when full`
    )

    const restart = Effect.gen(function*() {
      yield* say(`subscriber b: shutting down (graceful)`)
      yield* stop("b")
      yield* say(`subscriber b: down for ${Duration.format(Duration.decode(options.downFor))}`)
      yield* Effect.sleep(options.downFor)
      yield* start("b", ports["b"]!)
      yield* say(`subscriber b: back on port ${ports["b"]}`)
    })
    let restarting: Fiber.RuntimeFiber<void, Listener.ListenerError> | undefined

    const result = yield* publisher({
      peers: names.map((key) => ({ key, host, port: ports[key]! })),
      ticks: options.ticks,
      interval: options.interval,
      backlog,
      reconnectDelay: options.reconnectDelay ?? "50 millis",
      onEvent: (e) => Effect.zipRight(Effect.sync(() => events.push(e)), say(`hub event  ${describeEvent(e)}`)),
      onTick: (tick, r) =>
        Effect.gen(function*() {
          if (r.failed.length > 0) {
            yield* say(`tick ${tick}: refused by ${r.failed.map((f) => `${f.key} (${f.error._tag})`).join(", ")}`)
          }
          if (tick === options.restartAt) restarting = yield* Effect.forkIn(restart, scope)
        })
    })
    if (restarting !== undefined) yield* Fiber.join(restarting)
    yield* say(`publisher: ${result.ticks} ticks broadcast, hub closed`)

    // the publisher's connections are closed: wait until every subscriber session has ended
    yield* Effect.forEach(names, (name) =>
      Stream.runHead(Stream.filter(current[name]!.server.sessionChanges, (rows) => rows.length === 0)), {
      concurrency: "unbounded"
    }).pipe(Effect.timeout("5 seconds"))
    for (const name of names) {
      sessions[name]! += current[name]!.server.unsafeStats().accepted
      yield* stop(name)
    }

    const reports: Array<SubscriberReport> = names.map((name) => {
      const got = received[name]!
      const gaveUp = result.gaveUp[name] ?? []
      const seen = new Set(got)
      const reported = new Set(gaveUp)
      const missing: Array<number> = []
      for (let t = 1; t <= result.ticks; t++) if (!seen.has(t) && !reported.has(t)) missing.push(t)
      return {
        name,
        received: got,
        sessions: sessions[name]!,
        gaveUp,
        duplicates: got.length - seen.size,
        missing,
        inOrder: got.every((t, i) => i === 0 || t > got[i - 1]!)
      }
    })
    return { ticks: result.ticks, settled: result.settled, subscribers: reports, events }
  }))

// ---- command line ----

const usage = `hub story: 3 subscribers, a publisher hub of 3 reconnecting dialers, subscriber b restarts mid-stream

usage: npx tsx examples/hub/main.ts [options]

  --host <addr>              interface (default 127.0.0.1)
  --port <n>                 port of subscriber a; b and c take the next two (default 7101; 0 = any)
  --ticks <n>                ticks to broadcast (default 60)
  --interval <dur>           between ticks (default 50ms)
  --restart-at <n>           subscriber b goes down after this tick (default 20)
  --down-for <dur>           how long b stays down (default 600ms)
  --backlog-max <n>          ticks a down peer's backlog holds (default 1000)
  --backlog-max-age <dur>    ticks older than this expire from a backlog (default 30s)
  --backlog-policy <p>       rejectNew | dropOldest (default rejectNew)
  --reconnect-delay <dur>    between reconnect attempts (default 50ms)
  -h, --help`

const main = () => {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "7101" },
      ticks: { type: "string", default: "60" },
      interval: { type: "string", default: "50ms" },
      "restart-at": { type: "string", default: "20" },
      "down-for": { type: "string", default: "600ms" },
      "backlog-max": { type: "string", default: "1000" },
      "backlog-max-age": { type: "string", default: "30s" },
      "backlog-policy": { type: "string", default: "rejectNew" },
      "reconnect-delay": { type: "string", default: "50ms" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const program = Effect.gen(function*() {
    const r = yield* run({
      host: values.host,
      basePort: Number(values.port),
      ticks: Number(values.ticks),
      interval: duration("--interval", values.interval),
      restartAt: Number(values["restart-at"]),
      downFor: duration("--down-for", values["down-for"]),
      backlog: {
        maxMessages: Number(values["backlog-max"]),
        maxAge: duration("--backlog-max-age", values["backlog-max-age"]),
        policy: values["backlog-policy"] === "dropOldest" ? "dropOldest" : "rejectNew"
      },
      reconnectDelay: duration("--reconnect-delay", values["reconnect-delay"]),
      log: (line) => Console.log(line)
    })
    yield* Console.log("")
    for (const s of r.subscribers) {
      yield* Console.log(
        `subscriber ${s.name}: ${s.received.length}/${r.ticks} ticks over ${s.sessions} connection(s), ` +
          `${s.duplicates} duplicates, ${s.missing.length} missing, ${s.gaveUp.length} given up by the backlog (reported), ` +
          `${s.inOrder ? "in order" : "OUT OF ORDER"}`
      )
    }
    const ok = r.subscribers.every((s) => s.duplicates === 0 && s.missing.length === 0 && s.inOrder)
    yield* Console.log(ok ? "every tick delivered exactly once, in order, or reported" : "TICKS LOST OR DUPLICATED")
    if (!ok) process.exitCode = 1
  })
  NodeRuntime.runMain(program)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
