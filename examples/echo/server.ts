/**
 * An echo server: every length-prefixed frame a client sends comes back to it.
 *
 *   npx tsx examples/echo/server.ts --port 7000
 *   npx tsx examples/echo/server.ts --help
 *
 * Each accepted socket is a tether connection in its own scope; the handler
 * echoes until the client closes. Ctrl-C shuts the server down: every session
 * is closed gracefully (bounded by --shutdown-timeout), and the report is printed.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Duration, Effect, Stream } from "effect"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { Listener, Watchdog } from "effect-tether"
import { duration } from "../cli.js"

/** Options of {@link server}. */
export interface EchoServerOptions {
  readonly host?: string | undefined
  /** 0 or absent: any free port (see `server.address.port`). */
  readonly port?: number | undefined
  readonly maxConnections?: number | undefined
  /** A client that sends nothing for this long is closed (IdleTimeout). */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** How long a graceful close waits for the client's FIN. */
  readonly lingerTimeout?: Duration.DurationInput | undefined
  /** Bound on the graceful part of a shutdown. */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

/**
 * Starts the echo server in the current scope and returns it (closing the
 * scope shuts it down).
 */
export const server = (options: EchoServerOptions = {}) =>
  Listener.serve(
    {
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 0,
      maxConnections: options.maxConnections ?? 1000,
      lingerTimeout: options.lingerTimeout ?? "2 seconds",
      shutdownTimeout: options.shutdownTimeout ?? "5 seconds",
      watchdogs: [
        ...Watchdog.defaults(),
        Watchdog.idle({ readIdle: options.idleTimeout ?? "60 seconds" })
      ]
    },
    (conn) =>
      // echo until the client closes; a send refused because the connection is closing ends the session
      Stream.runForEach(conn.incoming, (frame) => conn.send(frame)).pipe(
        Effect.catchTag("ConnectionClosed", () => Effect.void)
      )
  )

// ---- command line ----

const usage = `echo server: answers every length-prefixed frame with the same frame

usage: npx tsx examples/echo/server.ts [options]

  --host <addr>              interface to bind (default 127.0.0.1)
  --port <n>                 port (default 7000; 0 = any free port)
  --max-connections <n>      seats (default 1000)
  --idle-timeout <dur>       close a client silent this long (default 60s)
  --linger-timeout <dur>     wait for a closing client's FIN (default 2s)
  --shutdown-timeout <dur>   bound on the graceful shutdown (default 5s)
  -h, --help

durations: 500ms, 2s, 1m`

const main = () => {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "7000" },
      "max-connections": { type: "string", default: "1000" },
      "idle-timeout": { type: "string", default: "60s" },
      "linger-timeout": { type: "string", default: "2s" },
      "shutdown-timeout": { type: "string", default: "5s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const program = Effect.gen(function*() {
    const srv = yield* server({
      host: values.host,
      port: Number(values.port),
      maxConnections: Number(values["max-connections"]),
      idleTimeout: duration("--idle-timeout", values["idle-timeout"]),
      lingerTimeout: duration("--linger-timeout", values["linger-timeout"]),
      shutdownTimeout: duration("--shutdown-timeout", values["shutdown-timeout"])
    })
    yield* Console.log(`echo server listening on ${srv.address.host}:${srv.address.port} (Ctrl-C to stop)`)
    // on Ctrl-C the main fiber is interrupted: shut down explicitly to print the report
    yield* Effect.never.pipe(
      Effect.onInterrupt(() =>
        Effect.flatMap(srv.shutdown, (r) =>
          Console.log(`shut down: ${r.sessions} sessions, ${r.graceful} graceful, ${r.aborted} aborted, ${r.millis} ms`))
      )
    )
  })
  NodeRuntime.runMain(Effect.scoped(program))
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
