/**
 * The minimal tether FIX acceptor as a program, for the demo:
 *
 *   npx tsx examples/fix/acceptor.ts --port 9878
 *
 * @since 0.1.0
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { parseArgs } from "node:util"
import { formatEvent, parseDuration, parseIntFlag } from "./cli.js"
import { serveAcceptor } from "./server.js"

const usage = `Usage: npx tsx examples/fix/acceptor.ts [options]

A minimal FIX 4.4 acceptor on tether's Listener (runs until Ctrl-C).

Options:
  --host <host>           interface to bind (default 127.0.0.1)
  --port <port>           port (default 9878; 0 = any free port)
  --sender <id>           our SenderCompID (default ACCEPTOR)
  --target <id>           the initiator's CompID (default TETHER)
  --logon-timeout <dur>   time a client has to log on (default 10s)
  --linger <dur>          how long a disconnect waits for the client's FIN (default 2s)
  --quiet                 do not print every message
  -h, --help              show this help`

const main = Effect.gen(function*() {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "9878" },
      sender: { type: "string", default: "ACCEPTOR" },
      target: { type: "string", default: "TETHER" },
      "logon-timeout": { type: "string", default: "10s" },
      linger: { type: "string", default: "2s" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false }
    },
    strict: true
  })
  if (values.help) {
    console.log(usage)
    return
  }
  yield* Effect.scoped(Effect.gen(function*() {
    const acceptor = yield* serveAcceptor({
      host: values.host,
      port: parseIntFlag("--port", values.port),
      senderCompId: values.sender,
      targetCompId: values.target,
      logonTimeout: parseDuration("--logon-timeout", values["logon-timeout"]),
      lingerTimeout: parseDuration("--linger", values.linger),
      observe: (e) => {
        if (!values.quiet || (e._tag !== "Sent" && e._tag !== "Received")) console.log(formatEvent(e))
      }
    })
    console.log(`FIX acceptor ${values.sender} listening on ${acceptor.server.address.host}:${acceptor.server.address.port}`)
    yield* Effect.never
  }))
})

NodeRuntime.runMain(
  main.pipe(
    Effect.catchAllDefect((e) =>
      Effect.sync(() => {
        console.error(e instanceof Error ? e.message : String(e))
        process.exitCode = 1
      })
    )
  )
)
