/**
 * An echo client: sends lines as length-prefixed frames, prints each reply,
 * then closes gracefully (drain, FIN, wait for the server's FIN).
 *
 *   npx tsx examples/echo/client.ts --port 7000 hello world
 *   printf 'one\ntwo\n' | npx tsx examples/echo/client.ts --port 7000
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Data, Duration, Effect, Fiber, Queue, Stream } from "effect"
import * as Readline from "node:readline"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { Connection, DisconnectReason, Framing } from "effect-tether"
import { duration } from "../cli.js"

/** The server did not answer every line in time. */
export class EchoTimeout extends Data.TaggedError("EchoTimeout")<{
  readonly reason: "NoReply"
  readonly sent: number
  readonly received: number
}> {}

/** Options of {@link client}. */
export interface EchoClientOptions {
  readonly host?: string | undefined
  readonly port: number
  /** The lines to send, in order (sent as they arrive, replies printed as they come). */
  readonly lines: Stream.Stream<string, Error> | ReadonlyArray<string>
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** How long to wait, once the input ends, for the replies still owed. */
  readonly replyTimeout?: Duration.DurationInput | undefined
  readonly lingerTimeout?: Duration.DurationInput | undefined
  /** Called with each reply as it arrives. */
  readonly onReply?: ((reply: string) => Effect.Effect<void>) | undefined
}

const isLines = (x: EchoClientOptions["lines"]): x is ReadonlyArray<string> => Array.isArray(x)

/**
 * Connects, sends every line, waits for as many replies, closes gracefully.
 * Returns the replies in order and the connection's close outcome.
 */
export const client = (options: EchoClientOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const conn = yield* Connection.connectTcp({
      host: options.host ?? "127.0.0.1",
      port: options.port,
      connectTimeout: options.connectTimeout ?? "3 seconds",
      lingerTimeout: options.lingerTimeout ?? "2 seconds"
    })
    const replies: Array<string> = []
    const arrived = yield* Queue.unbounded<void>()
    yield* Effect.forkScoped(Stream.runForEach(conn.incoming, (frame) =>
      Effect.gen(function*() {
        const reply = Framing.text(frame)
        replies.push(reply)
        if (options.onReply) yield* options.onReply(reply)
        yield* Queue.offer(arrived, undefined)
      })))
    const lines = isLines(options.lines) ? Stream.fromIterable(options.lines) : options.lines
    let sent = 0
    // `send` completes when the frame is queued for the writer fiber (not when it is written)
    yield* Stream.runForEach(lines, (line) => Effect.tap(conn.send(Framing.utf8(line)), () => sent++))
    // every sent line is owed a reply
    yield* Queue.takeN(arrived, sent).pipe(
      Effect.timeoutFail({
        duration: options.replyTimeout ?? "5 seconds",
        onTimeout: () => new EchoTimeout({ reason: "NoReply", sent, received: replies.length })
      })
    )
    const outcome = yield* conn.close("done")
    return { replies, outcome }
  }))

// ---- command line ----

const usage = `echo client: sends lines, prints the replies, closes gracefully

usage: npx tsx examples/echo/client.ts [options] [line ...]
       (no lines given: reads lines from stdin)

  --host <addr>              server host (default 127.0.0.1)
  --port <n>                 server port (default 7000)
  --connect-timeout <dur>    bound on the TCP connect (default 3s)
  --reply-timeout <dur>      bound on the wait for the last replies (default 5s)
  --linger-timeout <dur>     wait for the server's FIN on close (default 2s)
  -h, --help

durations: 500ms, 2s, 1m`

const main = () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "7000" },
      "connect-timeout": { type: "string", default: "3s" },
      "reply-timeout": { type: "string", default: "5s" },
      "linger-timeout": { type: "string", default: "2s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const lines = positionals.length > 0
    ? positionals
    : Stream.suspend(() =>
      // made when the stream starts: readline drops lines emitted before its iterator exists
      Stream.fromAsyncIterable(
        Readline.createInterface({ input: process.stdin, crlfDelay: Infinity }),
        (e) => new Error(`stdin: ${String(e)}`)
      )
    )
  const program = client({
    host: values.host,
    port: Number(values.port),
    lines,
    connectTimeout: duration("--connect-timeout", values["connect-timeout"]),
    replyTimeout: duration("--reply-timeout", values["reply-timeout"]),
    lingerTimeout: duration("--linger-timeout", values["linger-timeout"]),
    onReply: (reply) => Console.log(reply)
  }).pipe(
    Effect.flatMap(({ outcome, replies }) =>
      Console.error(
        `closed (${DisconnectReason.describe(outcome.reason)}): ${replies.length} replies, ` +
          `${outcome.delivered} frames delivered, ${outcome.undelivered.length} undelivered, ` +
          `peer FIN ${outcome.peerEof ? "seen" : "not seen"}, ${outcome.closeMillis} ms`
      )
    )
  )
  NodeRuntime.runMain(program)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
