/**
 * Every tether option, loadable from Effect `Config` — environment variables by
 * default, any `ConfigProvider` you install otherwise.
 *
 * Keys are upper snake case under `TETHER_` (e.g. `TETHER_STALL_TIMEOUT=30 seconds`,
 * `TETHER_LISTENER_MAX_CONNECTIONS=5000`). Unset keys keep the module defaults;
 * a bad value fails with a `ConfigError` naming the key and the value. Options
 * that are functions (handlers, hooks) are not configuration and stay in code.
 *
 * | key | default | meaning |
 * |---|---|---|
 * | `TETHER_SEND_QUEUE_CAPACITY` | 1024 | connection send queue, frames |
 * | `TETHER_MAX_BATCH_FRAMES` / `TETHER_MAX_BATCH_BYTES` | 1024 / 256 KiB | writer batch limits |
 * | `TETHER_WRITE_TIMEOUT` / `TETHER_DRAIN_TIMEOUT` / `TETHER_LINGER_TIMEOUT` | 10 s / 5 s / 5 s | close and write bounds |
 * | `TETHER_INBOUND_CAPACITY` | 1024 | inbound frames buffered before the socket pauses |
 * | `TETHER_FRAMING` / `TETHER_MAX_FRAME_BYTES` | length-prefixed / 16 MiB | codec |
 * | `TETHER_LIVENESS_BOUND` | 15 s | non-active state bound before a forced destroy |
 * | `TETHER_STALL_TIMEOUT` / `TETHER_PROBE_INTERVAL` | 30 s / 1 s | send-stall reaper |
 * | `TETHER_READ_IDLE` / `TETHER_WRITE_IDLE` / `TETHER_ALL_IDLE` | off | idle timeouts (close) |
 * | `TETHER_HEARTBEAT_INTERVAL` / `TETHER_HEARTBEAT_TEST_REQUEST_FACTOR` | — / 1.2 | heartbeat protocol helper |
 * | `TETHER_LISTENER_HOST` / `TETHER_LISTENER_PORT` / `TETHER_LISTENER_BACKLOG` | 127.0.0.1 / any / OS | listening socket |
 * | `TETHER_LISTENER_MAX_CONNECTIONS` | 10000 | seats |
 * | `TETHER_LISTENER_HANDSHAKE_TIMEOUT` / `TETHER_LISTENER_SHUTDOWN_TIMEOUT` | off / 10 s | server bounds |
 * | `TETHER_LISTENER_SESSION_GRACE` | 5 s | a handler's time to finish what it read after its connection closed |
 * | `TETHER_WS_PATH` / `TETHER_WS_MAX_PAYLOAD` / `TETHER_WS_PER_MESSAGE_DEFLATE` | any / 16 MiB / false | WebSocket |
 * | `TETHER_WS_HANDSHAKE_TIMEOUT` | none | WebSocket client handshake |
 * | `TETHER_WS_HEARTBEAT_INTERVAL` / `TETHER_WS_HEARTBEAT_TIMEOUT` | off / interval | WebSocket PINGs |
 * | `TETHER_DIALER_HOST` / `TETHER_DIALER_PORT` / `TETHER_DIALER_CONNECT_TIMEOUT` | 127.0.0.1 / — / 10 s | dialer target |
 * | `TETHER_DIALER_BACKOFF_BASE` / `TETHER_DIALER_BACKOFF_MAX` / `TETHER_DIALER_RESET_AFTER` | 100 ms / 30 s / 10 s | reconnect backoff |
 * | `TETHER_BACKLOG_MAX_MESSAGES` / `TETHER_BACKLOG_MAX_BYTES` / `TETHER_BACKLOG_MAX_AGE` | 10000 / 16 MiB / 5 min | reconnect backlog bounds |
 * | `TETHER_BACKLOG_POLICY` / `TETHER_BACKLOG_KEEP_ACROSS_PERIODS` | rejectNew / — | backlog policy |
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as Duration from "effect/Duration"
import * as Schedule from "effect/Schedule"
import type * as Backlog from "./Backlog.js"
import * as Connection from "./Connection.js"
import type * as Listener from "./Listener.js"
import * as cfg from "./internal/config.js"
import type * as WebSocket from "./WebSocket.js"

const opt = cfg.optional

/**
 * Connection options (`TETHER_SEND_QUEUE_CAPACITY`, `TETHER_WRITE_TIMEOUT`, …); the same as `Connection.config`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection, Settings } from "effect-tether"
 *
 * const conn = Effect.flatMap(Settings.connection, (options) => Connection.connectTcp({ ...options, port: 7000 }))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const connection: Config.Config<Connection.Options> = Connection.config

/**
 * Watchdog settings, ready for `Watchdog.defaults(...)`: liveness bound,
 * send-stall reaper, and idle timeouts (which close the connection).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Settings, Watchdog } from "effect-tether"
 *
 * const watchdogs = Effect.map(Settings.watchdog, (s) => Watchdog.defaults(s))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const watchdog: Config.Config<{
  readonly liveness: { readonly bound?: Duration.Duration | undefined }
  readonly reaper: { readonly stallTimeout?: Duration.Duration | undefined; readonly probeInterval?: Duration.Duration | undefined }
  readonly idle?: {
    readonly readIdle?: Duration.Duration | undefined
    readonly writeIdle?: Duration.Duration | undefined
    readonly allIdle?: Duration.Duration | undefined
  } | undefined
}> = Config.all({
  bound: opt(cfg.duration("LIVENESS_BOUND")),
  stallTimeout: opt(cfg.duration("STALL_TIMEOUT")),
  probeInterval: opt(cfg.duration("PROBE_INTERVAL")),
  readIdle: opt(cfg.duration("READ_IDLE")),
  writeIdle: opt(cfg.duration("WRITE_IDLE")),
  allIdle: opt(cfg.duration("ALL_IDLE"))
}).pipe(
  Config.map(({ allIdle, bound, probeInterval, readIdle, stallTimeout, writeIdle }) => ({
    liveness: { bound },
    reaper: { stallTimeout, probeInterval },
    idle: readIdle === undefined && writeIdle === undefined && allIdle === undefined
      ? undefined
      : { readIdle, writeIdle, allIdle }
  })),
  Config.nested("TETHER")
)

/**
 * Heartbeat timing for `Watchdog.heartbeat` (the hooks stay in code).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Settings, Watchdog } from "effect-tether"
 *
 * const hb = Effect.map(Settings.heartbeat, (t) =>
 *   Watchdog.heartbeat({ ...t, sendHeartbeat: () => Effect.void, sendTestRequest: () => Effect.void }))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const heartbeat: Config.Config<{ readonly interval: Duration.Duration; readonly testRequestFactor: number }> =
  Config.all({
    interval: cfg.duration("HEARTBEAT_INTERVAL"),
    testRequestFactor: Config.number("HEARTBEAT_TEST_REQUEST_FACTOR").pipe(
      Config.validate({ message: "Expected a factor > 1", validation: (n) => n > 1 }),
      Config.withDefault(1.2)
    )
  }).pipe(Config.nested("TETHER"))

const listenerOnly = Config.all({
  host: opt(Config.string("HOST")),
  port: opt(Config.port("PORT")),
  backlog: opt(cfg.positiveInt("BACKLOG")),
  maxConnections: opt(cfg.positiveInt("MAX_CONNECTIONS")),
  handshakeTimeout: opt(cfg.duration("HANDSHAKE_TIMEOUT")),
  shutdownTimeout: opt(cfg.duration("SHUTDOWN_TIMEOUT")),
  sessionGrace: opt(cfg.duration("SESSION_GRACE"))
}).pipe(Config.nested("LISTENER"), Config.nested("TETHER"))

/**
 * Listener options: `TETHER_LISTENER_*` plus every connection key.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Listener, Settings } from "effect-tether"
 *
 * const server = Effect.flatMap(Settings.listener, (options) =>
 *   Listener.serve(options, (conn) => Stream.runForEach(conn.incoming, conn.send).pipe(Effect.orDie)))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const listener: Config.Config<Listener.Options> = Config.map(
  Config.all([Connection.config, listenerOnly]),
  ([conn, l]) => ({ ...conn, ...l })
)

const wsHeartbeat = Config.all({
  interval: opt(cfg.duration("HEARTBEAT_INTERVAL")),
  timeout: opt(cfg.duration("HEARTBEAT_TIMEOUT"))
}).pipe(
  Config.map(({ interval, timeout }): WebSocket.HeartbeatOptions | undefined =>
    interval === undefined ? undefined : { interval, timeout }
  )
)

/**
 * WebSocket server options: the listener keys plus `TETHER_WS_*`.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Settings, WebSocket } from "effect-tether"
 *
 * const server = Effect.flatMap(Settings.webSocketServer, (options) =>
 *   WebSocket.serve(options, (conn) => Stream.runForEach(conn.incoming, conn.send).pipe(Effect.orDie)))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const webSocketServer: Config.Config<WebSocket.ServerOptions> = Config.map(
  Config.all([
    listener,
    Config.all({
      path: opt(Config.string("PATH")),
      maxPayload: opt(cfg.bytes("MAX_PAYLOAD")),
      perMessageDeflate: opt(Config.boolean("PER_MESSAGE_DEFLATE")),
      heartbeat: wsHeartbeat
    }).pipe(Config.nested("WS"), Config.nested("TETHER"))
  ]),
  ([{ codec: _codec, ...l }, ws]) => ({ ...l, ...ws })
)

/**
 * WebSocket client options (`TETHER_WS_MAX_PAYLOAD`, `TETHER_WS_HANDSHAKE_TIMEOUT`, heartbeat, …).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Settings, WebSocket } from "effect-tether"
 *
 * const conn = Effect.flatMap(Settings.webSocketClient, (options) =>
 *   WebSocket.connect("ws://127.0.0.1:8080/", options))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const webSocketClient: Config.Config<Partial<WebSocket.ClientOptions>> = Config.map(
  Config.all([
    Connection.config,
    Config.all({
      maxPayload: opt(cfg.bytes("MAX_PAYLOAD")),
      perMessageDeflate: opt(Config.boolean("PER_MESSAGE_DEFLATE")),
      handshakeTimeout: opt(cfg.duration("HANDSHAKE_TIMEOUT")),
      heartbeat: wsHeartbeat
    }).pipe(Config.nested("WS"), Config.nested("TETHER"))
  ]),
  ([{ codec: _codec, ...conn }, ws]) => ({ ...conn, ...ws })
)

/**
 * Backlog bounds and policy (`TETHER_BACKLOG_*`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backlog, Settings } from "effect-tether"
 *
 * const backlog = Effect.flatMap(Settings.backlog, Backlog.make)
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const backlog: Config.Config<Backlog.Options> = Config.all({
  maxMessages: opt(cfg.positiveInt("MAX_MESSAGES")),
  maxBytes: opt(cfg.bytes("MAX_BYTES")),
  maxAge: opt(cfg.duration("MAX_AGE")),
  policy: opt(Config.literal("rejectNew", "dropOldest")("POLICY")),
  keepAcrossPeriods: opt(Config.boolean("KEEP_ACROSS_PERIODS"))
}).pipe(Config.nested("BACKLOG"), Config.nested("TETHER"))

/**
 * Dialer settings (`TETHER_DIALER_*`, the backlog keys and the connection keys):
 * target, connect timeout, and the default backoff's base and cap
 * (exponential, jittered).
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Dialer, Settings } from "effect-tether"
 *
 * const dialer = Effect.flatMap(Settings.dialer, (options) => Dialer.make(options))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const dialer: Config.Config<{
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly connectTimeout?: Duration.Duration | undefined
  readonly resetAfter?: Duration.Duration | undefined
  readonly backoff?: Schedule.Schedule<unknown, unknown> | undefined
  readonly backlog: Backlog.Options
  readonly connection: Connection.Options
}> = Config.all({
  dialer: Config.all({
    host: opt(Config.string("HOST")),
    port: opt(Config.port("PORT")),
    connectTimeout: opt(cfg.duration("CONNECT_TIMEOUT")),
    resetAfter: opt(cfg.duration("RESET_AFTER")),
    backoffBase: opt(cfg.duration("BACKOFF_BASE")),
    backoffMax: opt(cfg.duration("BACKOFF_MAX"))
  }).pipe(Config.nested("DIALER"), Config.nested("TETHER")),
  backlog,
  connection: Connection.config
}).pipe(
  Config.map(({ backlog, connection, dialer: { backoffBase, backoffMax, ...d } }) => ({
    ...d,
    backoff: backoffBase === undefined && backoffMax === undefined ? undefined : exponentialCapped(
      backoffBase ?? "100 millis",
      backoffMax ?? "30 seconds"
    ),
    backlog,
    connection
  }))
)

/**
 * Exponential backoff from `base`, jittered (×0.8–1.2), capped at `max`.
 *
 * @example
 * ```ts
 * import { Settings } from "effect-tether"
 *
 * const backoff = Settings.exponentialCapped("200 millis", "10 seconds")
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const exponentialCapped = (
  base: Duration.DurationInput,
  max: Duration.DurationInput
): Schedule.Schedule<unknown, unknown> =>
  Schedule.exponential(base).pipe(Schedule.jittered, Schedule.union(Schedule.spaced(max)))
