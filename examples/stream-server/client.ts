/**
 * A client of the streaming server: reads `--count` messages, checks that the
 * sequence numbers arrive in order with no gap, prints the rate and closes.
 * With `--stall-after <n>` it stops reading after n messages and plays dead
 * for `--stall-for`, then reads again to find out how the server ended it.
 *
 *   npx tsx examples/stream-server/client.ts --port 8090 --count 1000
 *   npx tsx examples/stream-server/client.ts --port 8090 --stall-after 10 --stall-for 3s
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Clock, Console, type Duration, Effect, Stream } from "effect"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { DisconnectReason, WebSocket } from "effect-tether"
import { duration } from "../cli.js"

/** Options of {@link client}. */
export interface StreamClientOptions {
  readonly url: string
  /** Messages to read before closing. */
  readonly count: number
  /** Stop reading after this many messages for `stallFor`, then read what is left (instead of closing). */
  readonly stallAfter?: number | undefined
  /** How long to play dead (default 3 s). */
  readonly stallFor?: Duration.DurationInput | undefined
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Bound on the read (and, stalled, on reading what is left afterwards). */
  readonly timeout?: Duration.DurationInput | undefined
}

/** Reads the stream; returns what arrived and how the connection ended. */
export const client = (options: StreamClientOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const conn = yield* WebSocket.connect(options.url, {
      handshakeTimeout: options.connectTimeout ?? "3 seconds",
      // buffer little, so that not reading stops reading from the socket soon
      inboundCapacity: 4,
      readHighWaterMark: 64 * 1024,
      lingerTimeout: "1 second"
    })
    const started = yield* Clock.currentTimeMillis
    let received = 0
    let bytes = 0
    let inOrder = true
    const take = options.stallAfter ?? options.count
    const count = (m: WebSocket.Message) =>
      Effect.sync(() => {
        const data = m._tag === "Binary" ? m.data : new TextEncoder().encode(m.text)
        const seq = new DataView(data.buffer, data.byteOffset, data.byteLength).getFloat64(0)
        if (seq !== received) inOrder = false
        received++
        bytes += data.length
      })
    // pull the incoming stream by hand: stop, wait, go on (a stream is consumed once)
    const pull = Effect.flatMap(yield* Stream.toPull(conn.incoming), (chunk) => Effect.forEach(chunk, count, { discard: true }))
    yield* Effect.whileLoop({ while: () => received < take, body: () => pull, step: () => {} }).pipe(
      Effect.timeout(options.timeout ?? "30 seconds")
    )
    const millis = (yield* Clock.currentTimeMillis) - started
    if (options.stallAfter !== undefined) {
      // play dead: nothing reads, the socket's buffers fill up, the server's watchdogs decide
      yield* Effect.sleep(options.stallFor ?? "3 seconds")
      // then read what is left, up to the server's close
      yield* Effect.forever(pull).pipe(Effect.catchAll(() => Effect.void), Effect.timeout(options.timeout ?? "30 seconds"))
      const reason = yield* conn.closed
      return { received, bytes, inOrder, millis, stalledAt: take, reason, closeCode: WebSocket.closeInfo(conn)?.received?.code }
    }
    const outcome = yield* WebSocket.close(conn, WebSocket.CloseCode.Normal, "enough")
    return { received, bytes, inOrder, millis, stalledAt: undefined, reason: outcome.reason, closeCode: undefined }
  }))

// ---- command line ----

const usage = `stream client: reads messages from the streaming server, checks their order, prints the rate

usage: npx tsx examples/stream-server/client.ts [options]

  --host <addr>              server host (default 127.0.0.1)
  --port <n>                 server port (default 8090)
  --count <n>                messages to read (default 1000)
  --stall-after <n>          stop reading after n messages, play dead, then read what is left
  --stall-for <dur>          how long to play dead (default 3s)
  --connect-timeout <dur>    bound on the WebSocket handshake (default 3s)
  --timeout <dur>            bound on the read / on the wait to be reaped (default 30s)
  -h, --help`

const main = () => {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8090" },
      count: { type: "string", default: "1000" },
      "stall-after": { type: "string" },
      "stall-for": { type: "string", default: "3s" },
      "connect-timeout": { type: "string", default: "3s" },
      timeout: { type: "string", default: "30s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const program = client({
    url: `ws://${values.host}:${values.port}/`,
    count: Number(values.count),
    stallAfter: values["stall-after"] === undefined ? undefined : Number(values["stall-after"]),
    stallFor: duration("--stall-for", values["stall-for"]),
    connectTimeout: duration("--connect-timeout", values["connect-timeout"]),
    timeout: duration("--timeout", values.timeout)
  }).pipe(
    Effect.flatMap((r) =>
      Console.log(
        (r.stalledAt !== undefined
          ? `read ${r.stalledAt} messages, played dead, then found ${r.received - r.stalledAt} more buffered; `
          : `${r.received} messages (${(r.bytes / 1048576).toFixed(1)} MiB) in ${r.millis} ms` +
            `${r.millis > 0 ? `, ${(r.bytes / 1048576 / (r.millis / 1000)).toFixed(1)} MiB/s` : ""}; `) +
          `${r.inOrder ? "in order, no gap" : "OUT OF ORDER"}; ended: ${DisconnectReason.describe(r.reason)}` +
          (r.closeCode !== undefined ? ` (server's close code ${r.closeCode})` : "")
      )
    )
  )
  NodeRuntime.runMain(program)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
