/**
 * The actor broker under load, then shut down: producers send to three
 * actors as fast as their mailboxes take it; on Ctrl-C (or after --run-for)
 * the broker closes its stop-gate, drains every mailbox, refuses later sends
 * with a typed error and prints accepted / handled / refused.
 *
 *   npx tsx examples/actors/main.ts --run-for 2s
 *   npx tsx examples/actors/main.ts --port 7400     # also: printf 'ledger 5\n' | nc 127.0.0.1 7400
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Duration, Effect, Fiber } from "effect"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import type { Listener } from "effect-tether"
import { broker, type MailboxClosed, serveTcp, type ShutdownReport, type UnknownActor } from "./broker.js"
import { duration } from "../cli.js"

/** Options of {@link run}. */
export interface RunOptions {
  readonly producers?: number | undefined
  readonly mailboxCapacity?: number | undefined
  /** Per-message work of the slow actor ("mailer"). */
  readonly slowWork?: Duration.DurationInput | undefined
  readonly drainTimeout?: Duration.DurationInput | undefined
  /** Serve the TCP front door on this address (absent: in-process only). */
  readonly tcp?: { readonly host?: string | undefined; readonly port?: number | undefined } | undefined
  /** Called once the broker runs (e.g. with the TCP address). */
  readonly onStart?: ((server: Listener.Server | undefined) => Effect.Effect<void>) | undefined
  /** Runs until this completes (or the fiber is interrupted), then shuts down. */
  readonly until: Effect.Effect<void>
}

/** What {@link run} found. */
export interface RunResult {
  readonly report: ShutdownReport
  /** The sum of the producers' amounts the ledger accepted, and the sum it handled: equal when nothing was lost. */
  readonly ledgerAccepted: number
  readonly ledgerHandled: number
  /** A send after the shutdown: refused with a typed error. */
  readonly lateSend: MailboxClosed | UnknownActor | "accepted"
}

/**
 * Runs the broker with producers until `until` completes (or the fiber is
 * interrupted), shuts it down and reports.
 */
export const run = (options: RunOptions) =>
  Effect.scoped(Effect.gen(function*() {
    let ledgerAccepted = 0
    let ledgerHandled = 0
    let audited = 0
    const slowWork = options.slowWork ?? "1 millis"
    const b = yield* broker({
      mailboxCapacity: options.mailboxCapacity ?? 64,
      drainTimeout: options.drainTimeout ?? "5 seconds",
      actors: [
        {
          name: "ledger",
          handle: (m) => Effect.sync(() => {
            if (m.from.startsWith("producer-")) ledgerHandled += Number(m.body)
          })
        },
        { name: "audit", handle: () => Effect.sync(() => audited++) },
        { name: "mailer", handle: () => Effect.sleep(slowWork) } // slow: its mailbox stays full
      ]
    })
    const server = options.tcp === undefined ? undefined : yield* serveTcp(b, options.tcp)
    if (options.onStart) yield* options.onStart(server)

    // each producer sends round-robin until the gate refuses it
    const producer = (id: number) =>
      Effect.gen(function*() {
        for (let n = 0;; n++) {
          const actor = b.actors[n % b.actors.length]!
          const amount = id * 1000 + n
          yield* b.send(actor, { from: `producer-${id}`, body: String(amount) })
          if (actor === "ledger") ledgerAccepted += amount
          yield* Effect.yieldNow()
        }
      }).pipe(
        Effect.catchTag("MailboxClosed", () => Effect.void),
        Effect.orDie // UnknownActor cannot happen: the names come from the broker
      )
    const producers = yield* Effect.forkScoped(
      Effect.forEach(Array.from({ length: options.producers ?? 4 }, (_, i) => i + 1), producer, {
        concurrency: "unbounded",
        discard: true
      })
    )

    const shutdownAndReport = (reason: string) =>
      Effect.gen(function*() {
        const report = yield* b.shutdown(reason)
        yield* Fiber.join(producers) // every producer has been refused
        const lateSend = yield* b.send("ledger", { from: "late", body: "1" }).pipe(
          Effect.as("accepted" as const),
          Effect.catchAll((e) => Effect.succeed(e))
        )
        return { report, ledgerAccepted, ledgerHandled, lateSend } satisfies RunResult
      })

    // on interruption (Ctrl-C) the same shutdown runs and its report is printed here
    return yield* options.until.pipe(
      Effect.onInterrupt(() => Effect.flatMap(shutdownAndReport("interrupted"), printReport)),
      Effect.zipRight(shutdownAndReport("run-for elapsed"))
    )
  }))

/** Prints a run's result. */
export const printReport = (r: RunResult) => {
  const { report } = r
  const lines = [
    `broker shut down (${report.reason}) in ${report.millis} ms: gate closed, ${report.queuedAtClose} messages queued, ` +
    (report.drained ? "every mailbox drained" : `drain bound hit, ${report.unhandled.length} handed back`),
    `  accepted ${report.accepted}, handled ${report.handled}, refused ${report.refused}, unhandled ${report.unhandled.length}`,
    ...Object.entries(report.perActor).map(([name, a]) => `  ${name.padEnd(7)} accepted ${a.accepted}, handled ${a.handled}`),
    `  ledger: producers' accepted amounts sum to ${r.ledgerAccepted}, handled ones to ${r.ledgerHandled}`,
    `  a send after shutdown: ${typeof r.lateSend === "string" ? r.lateSend : `${r.lateSend._tag} (${r.lateSend.message})`}`,
    report.accepted === report.handled + report.unhandled.length ? "  every accepted message handled or handed back" : "  MESSAGES LOST"
  ]
  return Console.log(lines.join("\n"))
}

// ---- command line ----

const usage = `actor broker: producers → actors with bounded mailboxes behind one stop-gate;
on Ctrl-C or --run-for: close the gate, drain every mailbox, refuse later sends, report

usage: npx tsx examples/actors/main.ts [options]

  --run-for <dur>          stop after this long (default: run until Ctrl-C)
  --producers <n>          concurrent producers (default 4)
  --mailbox <n>            mailbox capacity per actor (default 64)
  --slow-work <dur>        per-message work of the slow actor (default 1ms)
  --drain-timeout <dur>    bound on the drain at shutdown (default 5s)
  --host <addr>            TCP front door interface (default 127.0.0.1)
  --port <n>               TCP front door port, newline-framed 'actor body' lines (default: off)
  -h, --help

durations: 500ms, 2s, 1m`

const main = () => {
  const { values } = parseArgs({
    options: {
      "run-for": { type: "string" },
      producers: { type: "string", default: "4" },
      mailbox: { type: "string", default: "64" },
      "slow-work": { type: "string", default: "1ms" },
      "drain-timeout": { type: "string", default: "5s" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const runFor = values["run-for"]
  const program = run({
    producers: Number(values.producers),
    mailboxCapacity: Number(values.mailbox),
    slowWork: duration("--slow-work", values["slow-work"]),
    drainTimeout: duration("--drain-timeout", values["drain-timeout"]),
    tcp: values.port === undefined ? undefined : { host: values.host, port: Number(values.port) },
    onStart: (server) =>
      Console.log(
        `broker running${server ? `, TCP front door on ${server.address.host}:${server.address.port}` : ""}` +
          (runFor ? ` for ${runFor}` : " (Ctrl-C to stop)")
      ),
    until: runFor === undefined ? Effect.never : Effect.sleep(duration("--run-for", runFor))
  }).pipe(Effect.flatMap(printReport))
  NodeRuntime.runMain(program)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
