/**
 * A WebSocket streaming server with ONE session seat. The session gets a
 * continuous stream of binary chunks (an 8-byte sequence number, then
 * filler); a client that stops reading is reaped by the send-stall watchdog
 * (or the write deadline, or the heartbeat), which frees the seat for the next
 * client. The live sessions are served as JSON at `GET /sessions` by an
 * @effect/platform HTTP server.
 *
 *   npx tsx examples/stream-server/server.ts --port 8090 --http-port 8091
 *   npx tsx examples/stream-server/client.ts --port 8090 --count 1000
 *   curl -s localhost:8091/sessions
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Clock, Console, Duration, Effect } from "effect"
import * as Http from "node:http"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { DisconnectReason, type Listener, Watchdog, WebSocket } from "effect-tether"
import { duration } from "../cli.js"

/** Options of {@link server}. */
export interface StreamServerOptions {
  readonly host?: string | undefined
  /** WebSocket port (0 or absent: any free port). */
  readonly port?: number | undefined
  /** Port of the HTTP server with `GET /sessions` (0 or absent: any free port). */
  readonly httpPort?: number | undefined
  /** Bytes per streamed message (default 64 KiB). */
  readonly chunkBytes?: number | undefined
  /** Pause between messages (default 0: as fast as the client reads). */
  readonly interval?: Duration.DurationInput | undefined
  /** Send-stall watchdog: bytes queued and none acknowledged this long → reaped (default 5 s). */
  readonly stallTimeout?: Duration.DurationInput | undefined
  /** How often the socket is probed (default 500 ms). */
  readonly probeInterval?: Duration.DurationInput | undefined
  /** Deadline of each socket write (default 30 s). */
  readonly writeTimeout?: Duration.DurationInput | undefined
  /** PING every `interval`; nothing back within `timeout` → reaped (default 10 s / 10 s). */
  readonly heartbeat?: { readonly interval: Duration.DurationInput; readonly timeout?: Duration.DurationInput } | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** Called for each notable event (session start / end). */
  readonly onEvent?: ((line: string) => Effect.Effect<void>) | undefined
}

/** A session that ended, and why. */
export interface Ended {
  readonly id: string
  readonly reason: DisconnectReason.DisconnectReason["_tag"]
  readonly description: string
  readonly sent: number
  /** Clock millis. */
  readonly at: number
}

/** The body of `GET /sessions`. */
export interface SessionsView {
  readonly seats: number
  readonly stats: Listener.Stats
  readonly sessions: ReadonlyArray<Listener.SessionInfo & { readonly sent: number }>
  readonly ended: ReadonlyArray<Ended>
}

/**
 * Starts the streaming server and its HTTP status server in the current
 * scope; returns both addresses and the view `GET /sessions` serves.
 */
export const server = (options: StreamServerOptions = {}) =>
  Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const chunkBytes = options.chunkBytes ?? 64 * 1024
    const sent = new Map<string, number>()
    const ended: Array<Ended> = []
    const event = options.onEvent ?? (() => Effect.void)

    const stream = (conn: WebSocket.Connection) =>
      Effect.gen(function*() {
        yield* event(`${conn.id} streaming`)
        const body = new Uint8Array(Math.max(8, chunkBytes))
        const view = new DataView(body.buffer)
        for (let seq = 0;; seq++) {
          view.setFloat64(0, seq)
          // waits while the send queue is full: the client's reading paces the stream
          yield* conn.send(WebSocket.binary(body.slice())) // a copy: `body` is reused
          sent.set(conn.id, seq + 1)
          if (options.interval !== undefined) yield* Effect.sleep(options.interval)
        }
      }).pipe(
        Effect.catchTag("ConnectionClosed", () => Effect.void),
        Effect.ensuring(Effect.gen(function*() {
          const reason = yield* conn.closed
          const n = sent.get(conn.id) ?? 0
          sent.delete(conn.id)
          ended.push({
            id: conn.id,
            reason: reason._tag,
            description: DisconnectReason.describe(reason),
            sent: n,
            at: yield* Clock.currentTimeMillis
          })
          if (ended.length > 100) ended.shift()
          yield* event(`${conn.id} ended after ${n} messages: ${reason._tag} (${DisconnectReason.describe(reason)})`)
        }))
      )

    const ws = yield* WebSocket.serve(
      {
        host,
        port: options.port ?? 0,
        maxConnections: 1, // ONE seat: a second client is refused until the first is gone
        idPrefix: "stream",
        sendQueueCapacity: 16,
        writeTimeout: options.writeTimeout ?? "30 seconds",
        lingerTimeout: "1 second",
        shutdownTimeout: options.shutdownTimeout ?? "3 seconds",
        heartbeat: options.heartbeat ?? { interval: "10 seconds", timeout: "10 seconds" },
        watchdogs: [
          Watchdog.liveness({ bound: "5 seconds" }),
          Watchdog.reaper({
            stallTimeout: options.stallTimeout ?? "5 seconds",
            probeInterval: options.probeInterval ?? "500 millis"
          })
        ]
      },
      stream
    )

    const view: Effect.Effect<SessionsView> = Effect.gen(function*() {
      const rows = yield* ws.sessions
      return {
        seats: 1,
        stats: yield* ws.stats,
        sessions: rows.map((r) => ({ ...r, sent: sent.get(r.id) ?? 0 })),
        ended: ended.slice()
      }
    })

    const router = HttpRouter.empty.pipe(
      HttpRouter.get("/sessions", Effect.map(view, (v) => HttpServerResponse.unsafeJson(v)))
    )
    const http = yield* NodeHttpServer.make(() => Http.createServer(), { host, port: options.httpPort ?? 0 })
    yield* http.serve(router)
    const httpPort = http.address._tag === "TcpAddress" ? http.address.port : 0
    return { ws, http: { host, port: httpPort }, view }
  })

// ---- command line ----

const usage = `streaming WebSocket server with one seat; dead clients are reaped; GET /sessions on the HTTP port

usage: npx tsx examples/stream-server/server.ts [options]

  --host <addr>                interface (default 127.0.0.1)
  --port <n>                   WebSocket port (default 8090)
  --http-port <n>              HTTP port for GET /sessions (default 8091)
  --chunk-bytes <n>            bytes per message (default 65536)
  --interval <dur>             pause between messages (default: none, as fast as the client reads)
  --stall-timeout <dur>        reap a client that acknowledges nothing for this long (default 5s)
  --probe-interval <dur>       how often sockets are probed (default 500ms)
  --write-timeout <dur>        deadline of each socket write (default 30s)
  --heartbeat <dur>            PING interval (default 10s)
  --heartbeat-timeout <dur>    nothing back within this → reaped (default 10s)
  --shutdown-timeout <dur>     bound on the graceful shutdown (default 3s)
  -h, --help

durations: 500ms, 2s, 1m`

const main = () => {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8090" },
      "http-port": { type: "string", default: "8091" },
      "chunk-bytes": { type: "string", default: "65536" },
      interval: { type: "string" },
      "stall-timeout": { type: "string", default: "5s" },
      "probe-interval": { type: "string", default: "500ms" },
      "write-timeout": { type: "string", default: "30s" },
      heartbeat: { type: "string", default: "10s" },
      "heartbeat-timeout": { type: "string", default: "10s" },
      "shutdown-timeout": { type: "string", default: "3s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const program = Effect.gen(function*() {
    const { http, ws } = yield* server({
      host: values.host,
      port: Number(values.port),
      httpPort: Number(values["http-port"]),
      chunkBytes: Number(values["chunk-bytes"]),
      interval: values.interval === undefined ? undefined : duration("--interval", values.interval),
      stallTimeout: duration("--stall-timeout", values["stall-timeout"]),
      probeInterval: duration("--probe-interval", values["probe-interval"]),
      writeTimeout: duration("--write-timeout", values["write-timeout"]),
      heartbeat: {
        interval: duration("--heartbeat", values.heartbeat),
        timeout: duration("--heartbeat-timeout", values["heartbeat-timeout"])
      },
      shutdownTimeout: duration("--shutdown-timeout", values["shutdown-timeout"]),
      onEvent: (line) => Console.log(line)
    })
    yield* Console.log(
      `streaming on ws://${ws.address.host}:${ws.address.port}/ (one seat); ` +
        `sessions at http://${http.host}:${http.port}/sessions (Ctrl-C to stop)`
    )
    yield* Effect.never.pipe(
      Effect.onInterrupt(() =>
        Effect.flatMap(ws.shutdown, (r) =>
          Console.log(`shut down: ${r.sessions} sessions, ${r.graceful} graceful, ${r.aborted} aborted, ${r.millis} ms`))
      )
    )
  })
  NodeRuntime.runMain(Effect.scoped(program))
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
