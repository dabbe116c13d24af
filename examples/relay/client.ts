/**
 * A relay client: sends each body as a request (ids 1..n, all at once),
 * prints every response with the provider that answered, closes gracefully.
 *
 *   npx tsx examples/relay/client.ts --port 8080 hello world
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Data, type Duration, Effect, Stream } from "effect"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { WebSocket } from "effect-tether"
import { duration } from "../cli.js"
import { decode, encode } from "./relay.js"

/** Not every request was answered in time. */
export class RelayTimeout extends Data.TaggedError("RelayTimeout")<{
  readonly reason: "NoResponse"
  readonly missing: ReadonlyArray<number>
}> {}

/** One answer, keyed by the request id. */
export interface Answer {
  readonly id: number
  readonly body?: string | undefined
  readonly error?: string | undefined
  readonly provider?: string | undefined
}

/** Options of {@link client}. */
export interface ClientOptions {
  readonly url: string
  readonly bodies: ReadonlyArray<string>
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Bound on the wait for every answer. */
  readonly requestTimeout?: Duration.DurationInput | undefined
  readonly heartbeat?: { readonly interval: Duration.DurationInput; readonly timeout?: Duration.DurationInput } | undefined
}

/** Sends every body as request `i + 1`, waits for every answer, closes; answers in id order. */
export const client = (options: ClientOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const conn = yield* WebSocket.connect(`${options.url}/client`, {
      handshakeTimeout: options.connectTimeout ?? "3 seconds",
      heartbeat: options.heartbeat ?? { interval: "10 seconds", timeout: "5 seconds" },
      lingerTimeout: "1 second"
    })
    yield* conn.sendAll(options.bodies.map((body, i) => encode({ type: "request", id: i + 1, body })))
    const answers = new Map<number, Answer>()
    yield* conn.incoming.pipe(
      Stream.map(decode),
      Stream.runForEachWhile((m) =>
        Effect.sync(() => {
          if (m?.type === "response") answers.set(m.id, m)
          return answers.size < options.bodies.length
        })
      ),
      Effect.timeoutFail({
        duration: options.requestTimeout ?? "5 seconds",
        onTimeout: () =>
          new RelayTimeout({
            reason: "NoResponse",
            missing: options.bodies.map((_, i) => i + 1).filter((id) => !answers.has(id))
          })
      })
    )
    yield* WebSocket.close(conn, WebSocket.CloseCode.Normal, "done")
    return Array.from(answers.values()).sort((a, b) => a.id - b.id)
  }))

// ---- command line ----

const usage = `relay client: sends requests through the relay, prints the answers

usage: npx tsx examples/relay/client.ts [options] body ...

  --host <addr>              relay host (default 127.0.0.1)
  --port <n>                 relay port (default 8080)
  --connect-timeout <dur>    bound on the WebSocket handshake (default 3s)
  --request-timeout <dur>    bound on the wait for every answer (default 5s)
  -h, --help`

const main = () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8080" },
      "connect-timeout": { type: "string", default: "3s" },
      "request-timeout": { type: "string", default: "5s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help || positionals.length === 0) return console.log(usage)
  const program = client({
    url: `ws://${values.host}:${values.port}`,
    bodies: positionals,
    connectTimeout: duration("--connect-timeout", values["connect-timeout"]),
    requestTimeout: duration("--request-timeout", values["request-timeout"])
  }).pipe(
    Effect.flatMap((answers) =>
      Effect.forEach(answers, (a) =>
        Console.log(`#${a.id} ${a.error !== undefined ? `error: ${a.error}` : `${a.body} (from ${a.provider})`}`))
    )
  )
  NodeRuntime.runMain(program)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
