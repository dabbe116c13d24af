/**
 * A relay provider: connects to the relay's /provider path, registers under a
 * name and answers every request it is forwarded (here: the body upper-cased).
 * It reconnects neither on purpose nor by accident: when the relay goes, it ends.
 *
 *   npx tsx examples/relay/provider.ts --name p1 --port 8080
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, type Duration, Effect, Stream } from "effect"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { DisconnectReason, WebSocket } from "effect-tether"
import { duration } from "../cli.js"
import { decode, encode } from "./relay.js"

/** Options of {@link provider}. */
export interface ProviderOptions {
  /** ws://host:port of the relay. */
  readonly url: string
  readonly name: string
  /** The service: what to answer to a request body (a failure is answered as an error). */
  readonly serve?: ((body: string) => Effect.Effect<string, string>) | undefined
  readonly connectTimeout?: Duration.DurationInput | undefined
  readonly heartbeat?: { readonly interval: Duration.DurationInput; readonly timeout?: Duration.DurationInput } | undefined
  /** Called once registered. */
  readonly onReady?: Effect.Effect<void> | undefined
}

/**
 * Connects, registers, and serves requests until the relay closes the
 * connection (or the scope closes); returns why it ended and how many it served.
 */
export const provider = (options: ProviderOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const conn = yield* WebSocket.connect(`${options.url}/provider`, {
      handshakeTimeout: options.connectTimeout ?? "3 seconds",
      heartbeat: options.heartbeat ?? { interval: "10 seconds", timeout: "5 seconds" },
      lingerTimeout: "1 second"
    })
    yield* conn.send(encode({ type: "register", name: options.name }))
    if (options.onReady) yield* options.onReady
    const serve = options.serve ?? ((body: string) => Effect.succeed(body.toUpperCase()))
    let served = 0
    // one request at a time here; answers could be sent from many fibers: the connection has one writer
    yield* Stream.runForEach(conn.incoming, (frame) => {
      const m = decode(frame)
      if (m?.type !== "request") return Effect.void
      return serve(m.body).pipe(
        Effect.match({
          onSuccess: (body) => encode({ type: "response", id: m.id, body }),
          onFailure: (error) => encode({ type: "response", id: m.id, error })
        }),
        Effect.flatMap((answer) => conn.send(answer)),
        Effect.tap(() => served++)
      )
    }).pipe(Effect.catchTag("ConnectionClosed", () => Effect.void))
    return { served, reason: yield* conn.closed }
  }))

// ---- command line ----

const usage = `relay provider: registers with the relay and answers requests (upper-cases the body)

usage: npx tsx examples/relay/provider.ts [options]

  --name <name>                provider name (default provider-<pid>)
  --host <addr>                relay host (default 127.0.0.1)
  --port <n>                   relay port (default 8080)
  --connect-timeout <dur>      bound on the WebSocket handshake (default 3s)
  --heartbeat <dur>            PING interval (default 10s)
  --heartbeat-timeout <dur>    no PONG within this → connection aborted (default 5s)
  -h, --help`

const main = () => {
  const { values } = parseArgs({
    options: {
      name: { type: "string", default: `provider-${process.pid}` },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8080" },
      "connect-timeout": { type: "string", default: "3s" },
      heartbeat: { type: "string", default: "10s" },
      "heartbeat-timeout": { type: "string", default: "5s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const program = provider({
    url: `ws://${values.host}:${values.port}`,
    name: values.name,
    connectTimeout: duration("--connect-timeout", values["connect-timeout"]),
    heartbeat: {
      interval: duration("--heartbeat", values.heartbeat),
      timeout: duration("--heartbeat-timeout", values["heartbeat-timeout"])
    },
    onReady: Console.log(`${values.name} registered with ws://${values.host}:${values.port}`)
  }).pipe(
    Effect.flatMap(({ reason, served }) =>
      Console.log(`${values.name}: served ${served} requests; ${DisconnectReason.describe(reason)}`))
  )
  NodeRuntime.runMain(program)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
