/**
 * A tick subscriber: a TCP server (length-prefixed frames) that the hub's
 * publisher dials. It records every tick it is sent.
 *
 *   npx tsx examples/hub/subscriber.ts --name a --port 7101
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Duration, Effect, Stream } from "effect"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { Framing, Listener } from "effect-tether"
import { duration } from "../cli.js"

/** Options of {@link subscriber}. */
export interface SubscriberOptions {
  readonly name: string
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** Called with each tick number, in arrival order. */
  readonly onTick: (tick: number) => Effect.Effect<void>
  readonly lingerTimeout?: Duration.DurationInput | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

/** Parses a tick frame (`tick <n>`). */
export const parseTick = (frame: Uint8Array): number | undefined => {
  const m = /^tick (\d+)$/.exec(Framing.text(frame))
  return m === null ? undefined : Number(m[1])
}

/**
 * Serves publishers in the current scope. Closing the scope is a graceful
 * shutdown: each session closes its gate, sends FIN and keeps reading until
 * the publisher's FIN, so every tick that was on the wire is still recorded.
 *
 * Keep `onTick` quick (synchronous work): the listener interrupts a session's
 * handler as soon as its connection has closed, and frames still waiting in
 * `incoming` behind a slow handler would not be handled.
 */
export const subscriber = (options: SubscriberOptions) =>
  Listener.serve(
    {
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 0,
      idPrefix: options.name,
      lingerTimeout: options.lingerTimeout ?? "2 seconds",
      shutdownTimeout: options.shutdownTimeout ?? "3 seconds"
    },
    (conn) =>
      Stream.runForEach(conn.incoming, (frame) => {
        const tick = parseTick(frame)
        return tick === undefined ? Effect.void : options.onTick(tick)
      })
  )

// ---- command line ----

const usage = `tick subscriber: a TCP server the hub publisher dials; prints every tick

usage: npx tsx examples/hub/subscriber.ts [options]

  --name <name>              name in the output (default sub)
  --host <addr>              interface (default 127.0.0.1)
  --port <n>                 port (default 7101)
  --linger-timeout <dur>     wait for the publisher's FIN on close (default 2s)
  --shutdown-timeout <dur>   bound on the graceful shutdown (default 3s)
  -h, --help`

const main = () => {
  const { values } = parseArgs({
    options: {
      name: { type: "string", default: "sub" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "7101" },
      "linger-timeout": { type: "string", default: "2s" },
      "shutdown-timeout": { type: "string", default: "3s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const seen = new Set<number>()
  let count = 0
  let duplicates = 0
  const program = Effect.gen(function*() {
    const server = yield* subscriber({
      name: values.name,
      host: values.host,
      port: Number(values.port),
      lingerTimeout: duration("--linger-timeout", values["linger-timeout"]),
      shutdownTimeout: duration("--shutdown-timeout", values["shutdown-timeout"]),
      onTick: (tick) => {
        count++
        if (seen.has(tick)) duplicates++
        seen.add(tick)
        return Console.log(`${values.name}: tick ${tick}`)
      }
    })
    yield* Console.log(`${values.name} listening on ${server.address.host}:${server.address.port} (Ctrl-C to stop)`)
    yield* Effect.never.pipe(
      Effect.onInterrupt(() =>
        Effect.zipRight(
          server.shutdown,
          Console.log(`${values.name}: ${count} ticks, ${seen.size} distinct, ${duplicates} duplicates`)
        )
      )
    )
  })
  NodeRuntime.runMain(Effect.scoped(program))
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
