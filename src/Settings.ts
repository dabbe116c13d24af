/**
 * Every tether option, loadable from Effect `Config` — environment variables by
 * default, any `ConfigProvider` you install otherwise.
 *
 * Keys are upper snake case under `TETHER_` (e.g. `TETHER_STALL_TIMEOUT=30s`,
 * `TETHER_LISTENER_MAX_CONNECTIONS=5000`). Each key is one whole name, not a
 * nested path, so the same names work under every provider:
 * `ConfigProvider.fromEnv()` (the default), `ConfigProvider.fromMap(new Map([["TETHER_WRITE_TIMEOUT", "10s"]]))`
 * with or without `pathDelim: "_"`, and `ConfigProvider.fromJson`. To prefix
 * them, nest the config as usual (`Config.nested(Settings.dialer, "PRIMARY")`
 * reads `PRIMARY_TETHER_DIALER_PORT` from the environment).
 *
 * Unset keys keep the module defaults; a bad value fails with a `ConfigError`
 * naming the key as you set it (`TETHER_WRITE_TIMEOUT`) and the value. Options
 * that are functions (handlers, hooks) are not configuration and stay in code.
 *
 * Durations, here and in the example programs' flags, take one syntax (see
 * {@link parseDuration}): `10s`, `10 seconds`, `500ms`, `500 millis`, `1m`,
 * `2h`, or a bare number of milliseconds. Byte sizes: `65536`, `64 KiB`, `8MiB`.
 *
 * Each server, the dialer and the hub also have a `layerConfig` constructor
 * taking these configs: `Listener.layerConfig(Settings.listener, handler)`.
 *
 * | key | default | meaning |
 * |---|---|---|
 * | `TETHER_SEND_QUEUE_CAPACITY` | 1024 | connection send queue, frames |
 * | `TETHER_SEND_QUEUE_HIGH_WATER_MARK` / `TETHER_SEND_QUEUE_LOW_WATER_MARK` | 1 MiB / half | connection send queue, bytes |
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
 * | `TETHER_WS_UPGRADE_TIMEOUT` | 10 s | WebSocket server: TCP accept → HTTP 101 (a pending upgrade holds a seat) |
 * | `TETHER_WS_HANDSHAKE_TIMEOUT` | 10 s | WebSocket client handshake (TCP connect + HTTP upgrade) |
 * | `TETHER_WS_HEARTBEAT_INTERVAL` / `TETHER_WS_HEARTBEAT_TIMEOUT` | off / interval | WebSocket PINGs |
 * | `TETHER_DIALER_HOST` / `TETHER_DIALER_PORT` / `TETHER_DIALER_CONNECT_TIMEOUT` | 127.0.0.1 / — / 10 s | dialer target |
 * | `TETHER_DIALER_BACKOFF_BASE` / `TETHER_DIALER_BACKOFF_MAX` / `TETHER_DIALER_RESET_AFTER` | 100 ms / 30 s / 10 s | reconnect backoff |
 * | `TETHER_BACKLOG_MAX_MESSAGES` / `TETHER_BACKLOG_MAX_BYTES` / `TETHER_BACKLOG_MAX_AGE` | 10000 / 16 MiB / 5 min | reconnect backlog bounds |
 * | `TETHER_BACKLOG_POLICY` / `TETHER_BACKLOG_KEEP_ACROSS_PERIODS` | rejectNew / — | backlog policy |
 * | `TETHER_HUB_EVENTS_CAPACITY` | 1024 | hub event PubSub (the hub's codec follows `TETHER_FRAMING`) |
 * | `TETHER_FLEET_NODE` / `TETHER_NATS_SERVERS` | — (required) / nats://127.0.0.1:4222 | fleet node id, NATS servers (comma-separated) |
 * | `TETHER_FLEET_LEASE_TTL` / `TETHER_FLEET_FETCH_BATCH` / `TETHER_FLEET_HOLD` | 3 s / 64 / true | fleet leases, holder reads, whether the node holds peers |
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Schedule from "effect/Schedule"
import type * as Option from "effect/Option"
import type * as Backlog from "./Backlog.js"
import * as Connection from "./Connection.js"
import type * as Hub from "./Hub.js"
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
  bound: opt(cfg.duration("TETHER_LIVENESS_BOUND")),
  stallTimeout: opt(cfg.duration("TETHER_STALL_TIMEOUT")),
  probeInterval: opt(cfg.duration("TETHER_PROBE_INTERVAL")),
  readIdle: opt(cfg.duration("TETHER_READ_IDLE")),
  writeIdle: opt(cfg.duration("TETHER_WRITE_IDLE")),
  allIdle: opt(cfg.duration("TETHER_ALL_IDLE"))
}).pipe(
  Config.map(({ allIdle, bound, probeInterval, readIdle, stallTimeout, writeIdle }) => ({
    liveness: { bound },
    reaper: { stallTimeout, probeInterval },
    idle: readIdle === undefined && writeIdle === undefined && allIdle === undefined
      ? undefined
      : { readIdle, writeIdle, allIdle }
  }))
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
    interval: cfg.duration("TETHER_HEARTBEAT_INTERVAL"),
    testRequestFactor: Config.number("TETHER_HEARTBEAT_TEST_REQUEST_FACTOR").pipe(
      Config.validate({ message: "Expected a factor > 1", validation: (n) => n > 1 }),
      Config.withDefault(1.2)
    )
  })

const listenerOnly = Config.all({
  host: opt(Config.string("TETHER_LISTENER_HOST")),
  port: opt(Config.port("TETHER_LISTENER_PORT")),
  backlog: opt(cfg.positiveInt("TETHER_LISTENER_BACKLOG")),
  maxConnections: opt(cfg.positiveInt("TETHER_LISTENER_MAX_CONNECTIONS")),
  handshakeTimeout: opt(cfg.duration("TETHER_LISTENER_HANDSHAKE_TIMEOUT")),
  shutdownTimeout: opt(cfg.duration("TETHER_LISTENER_SHUTDOWN_TIMEOUT")),
  sessionGrace: opt(cfg.duration("TETHER_LISTENER_SESSION_GRACE"))
})

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
  interval: opt(cfg.duration("TETHER_WS_HEARTBEAT_INTERVAL")),
  timeout: opt(cfg.duration("TETHER_WS_HEARTBEAT_TIMEOUT"))
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
      path: opt(Config.string("TETHER_WS_PATH")),
      upgradeTimeout: opt(cfg.duration("TETHER_WS_UPGRADE_TIMEOUT")),
      maxPayload: opt(cfg.bytes("TETHER_WS_MAX_PAYLOAD")),
      perMessageDeflate: opt(Config.boolean("TETHER_WS_PER_MESSAGE_DEFLATE")),
      heartbeat: wsHeartbeat
    })
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
      maxPayload: opt(cfg.bytes("TETHER_WS_MAX_PAYLOAD")),
      perMessageDeflate: opt(Config.boolean("TETHER_WS_PER_MESSAGE_DEFLATE")),
      handshakeTimeout: opt(cfg.duration("TETHER_WS_HANDSHAKE_TIMEOUT")),
      heartbeat: wsHeartbeat
    })
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
  maxMessages: opt(cfg.positiveInt("TETHER_BACKLOG_MAX_MESSAGES")),
  maxBytes: opt(cfg.bytes("TETHER_BACKLOG_MAX_BYTES")),
  maxAge: opt(cfg.duration("TETHER_BACKLOG_MAX_AGE")),
  policy: opt(Config.literal("rejectNew", "dropOldest")("TETHER_BACKLOG_POLICY")),
  keepAcrossPeriods: opt(Config.boolean("TETHER_BACKLOG_KEEP_ACROSS_PERIODS"))
})

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
    host: opt(Config.string("TETHER_DIALER_HOST")),
    port: opt(Config.port("TETHER_DIALER_PORT")),
    connectTimeout: opt(cfg.duration("TETHER_DIALER_CONNECT_TIMEOUT")),
    resetAfter: opt(cfg.duration("TETHER_DIALER_RESET_AFTER")),
    backoffBase: opt(cfg.duration("TETHER_DIALER_BACKOFF_BASE")),
    backoffMax: opt(cfg.duration("TETHER_DIALER_BACKOFF_MAX"))
  }),
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

/**
 * Hub options (`TETHER_HUB_EVENTS_CAPACITY`; broadcasts are encoded with the
 * codec `TETHER_FRAMING` / `TETHER_MAX_FRAME_BYTES` select). The event hook
 * stays in code.
 *
 * @example
 * ```ts
 * import { Hub, Settings } from "effect-tether"
 *
 * const HubLive = Hub.layerConfig(Settings.hub)
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const hub: Config.Config<Hub.Options> = Config.map(
  Config.all([
    Connection.config,
    opt(cfg.positiveInt("TETHER_HUB_EVENTS_CAPACITY"))
  ]),
  ([conn, eventsCapacity]) => ({ codec: conn.codec, eventsCapacity })
)

/**
 * Parses a duration in the one syntax tether's config keys and the example
 * programs' flags accept: Effect's (`10 seconds`, `500 millis`, `1 minute`),
 * the short form (`10s`, `500ms`, `1m`, `2h`, `1.5s`, with or without a
 * space), or a bare number of milliseconds. `None` for anything else.
 *
 * @example
 * ```ts
 * import { Duration, Option } from "effect"
 * import { Settings } from "effect-tether"
 *
 * Option.map(Settings.parseDuration("10s"), Duration.toMillis) // Option.some(10000)
 * Option.map(Settings.parseDuration("10 seconds"), Duration.toMillis) // Option.some(10000)
 * Settings.parseDuration("soon") // Option.none()
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const parseDuration: (text: string) => Option.Option<Duration.Duration> = cfg.parseDuration

/**
 * A duration `Config` with the same syntax as tether's own keys (see
 * {@link parseDuration}), for your own settings.
 *
 * @example
 * ```ts
 * import { Config, Duration } from "effect"
 * import { Settings } from "effect-tether"
 *
 * const pollEvery = Settings.duration("APP_POLL_INTERVAL").pipe(Config.withDefault(Duration.seconds(5)))
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const duration: (name: string) => Config.Config<Duration.Duration> = cfg.duration

/**
 * Fleet settings (`TETHER_FLEET_NODE`, required; `TETHER_NATS_SERVERS`, comma-separated, default
 * `nats://127.0.0.1:4222`; `TETHER_FLEET_LEASE_TTL`, default 3 s; `TETHER_FLEET_FETCH_BATCH`, default 64;
 * `TETHER_FLEET_HOLD`, default true). The peer kinds stay in code; pass `leaseTtl` to both `FleetHub` and
 * `NatsEngine` (in millis there).
 *
 * @example
 * ```ts
 * import { Effect, Duration } from "effect"
 * import { Settings } from "effect-tether"
 *
 * const program = Effect.map(Settings.fleet, (f) => `${f.node} on ${f.servers.join(",")}, ttl ${Duration.toMillis(f.leaseTtl)} ms`)
 * ```
 *
 * @since 0.2.0
 * @category config
 */
export const fleet: Config.Config<{
  readonly node: string
  readonly servers: ReadonlyArray<string>
  readonly leaseTtl: Duration.Duration
  readonly fetchBatch: number
  readonly hold: boolean
}> = Config.all({
  node: Config.nonEmptyString("TETHER_FLEET_NODE"),
  servers: Config.map(
    Config.withDefault(Config.string("TETHER_NATS_SERVERS"), "nats://127.0.0.1:4222"),
    (s) => s.split(",").map((x) => x.trim()).filter((x) => x.length > 0)
  ),
  leaseTtl: Config.withDefault(cfg.duration("TETHER_FLEET_LEASE_TTL"), Duration.seconds(3)),
  fetchBatch: Config.withDefault(cfg.positiveInt("TETHER_FLEET_FETCH_BATCH"), 64),
  hold: Config.withDefault(Config.boolean("TETHER_FLEET_HOLD"), true)
})
