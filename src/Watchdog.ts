/**
 * Watchdogs: no connection can stay alive as a zombie.
 *
 * Each watchdog is a {@link Connection.Attachment}: pass it in the `watchdogs`
 * option of `Connection.make`. The send-stall and peer-gone probes register
 * with the {@link Driver} in the context (one fiber for every connection;
 * provide {@link layerDriver} in production), or else fork a fiber in the
 * connection's scope; {@link liveness} parks nothing while the connection is
 * Active and forks its bounded watch when it leaves Active.
 * Watchdogs read the connection's counters and the kernel's view of the socket
 * from outside the write path, sleep on the Effect `Clock` (so `TestClock`
 * drives them), and end the connection with their own `DisconnectReason`
 * through `unsafeRequestClose`, which never waits. A wedged write cannot block
 * any of them. Every reap is logged once at warning level, annotated with the
 * connection id, the reason and the figures that decided it.
 *
 * - {@link idle}: read-idle / write-idle / all-idle timers (Netty's IdleStateHandler) → action or `IdleTimeout`
 * - {@link heartbeat}: FIX-style heartbeat and test request → `PeerTimeout`
 * - {@link liveness}: a connection stuck in Draining / Closing / Closed with a live socket → destroyed, `LivenessTimeout`
 * - {@link sendStall}: bytes queued and none acknowledged for `stallTimeout` → `SendStalled`
 * - {@link peerGone}: TCP state no longer ESTABLISHED (or the kernel no longer lists the socket), or a socket error → `PeerGone`
 * - {@link reaper}: send-stall and peer-gone in one probe; {@link defaults}: liveness + reaper
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Connection from "./Connection.js"
import * as cfg from "./internal/config.js"
import * as probe from "./internal/tcpProbe.js"
import * as internal from "./internal/watchdog.js"
import type * as Transport from "./Transport.js"

/**
 * What an idle timer passes to its action.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Watchdog } from "effect-tether"
 *
 * const log = (e: Watchdog.IdleEvent) => Effect.log(`${e.kind}-idle (first: ${e.first})`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface IdleEvent {
  readonly kind: "read" | "write" | "all"
  /** Time since the last activity of that kind. */
  readonly idleFor: Duration.Duration
  /** Whether this is the first firing since the last activity (later firings repeat every timeout). */
  readonly first: boolean
  readonly connection: Connection.Connection
}

/**
 * Options of {@link idle}. A timer is armed for each duration given.
 *
 * @example
 * ```ts
 * import type { Watchdog } from "effect-tether"
 *
 * const options: Watchdog.IdleOptions = { readIdle: "60 seconds", allIdle: "5 minutes" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface IdleOptions {
  /** Fires when nothing has been read for this long. */
  readonly readIdle?: Duration.DurationInput | undefined
  /** Fires when no write has completed for this long. */
  readonly writeIdle?: Duration.DurationInput | undefined
  /** Fires when there has been neither a read nor a write for this long. */
  readonly allIdle?: Duration.DurationInput | undefined
  /**
   * `"close"` (default): close gracefully with `IdleTimeout`. Or an action (e.g.
   * send a ping), run again every timeout while the idleness lasts. The action
   * runs in its own fiber; its failures are logged at debug level and ignored.
   */
  readonly onIdle?: "close" | ((event: IdleEvent) => Effect.Effect<void, unknown>) | undefined
}

/**
 * Idle timers in the manner of Netty's `IdleStateHandler`: read-idle (no
 * inbound bytes), write-idle (no completed write) and all-idle (neither). Each
 * fires exactly `timeout` after the last activity of its kind and again every
 * `timeout` while the idleness lasts; activity of the other kind does not reset
 * it. Timers stop once the connection leaves `Active`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection, Framing, Watchdog } from "effect-tether"
 *
 * const conn = Connection.connectTcp({
 *   port: 7000,
 *   watchdogs: [
 *     Watchdog.idle({ writeIdle: "10 seconds", onIdle: (e) => e.connection.send(Framing.utf8("ping")) }),
 *     Watchdog.idle({ readIdle: "30 seconds" }) // closes with IdleTimeout
 *   ]
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const idle: (options: IdleOptions) => Connection.Attachment = internal.idle

/**
 * Options of {@link heartbeat}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Framing, type Watchdog } from "effect-tether"
 *
 * const options: Watchdog.HeartbeatOptions = {
 *   interval: "30 seconds",
 *   sendHeartbeat: (conn) => conn.send(Framing.utf8("35=0")),
 *   sendTestRequest: (conn) => conn.send(Framing.utf8("35=1|112=TEST"))
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface HeartbeatOptions {
  /** Heartbeat interval: a heartbeat is sent when this passes without outbound traffic. */
  readonly interval: Duration.DurationInput
  /** Inbound silence tolerated before a test request, as a multiple of `interval` (default 1.2). */
  readonly testRequestFactor?: number | undefined
  /** Sends one heartbeat (run in its own fiber; failures are logged and ignored). */
  readonly sendHeartbeat: (connection: Connection.Connection) => Effect.Effect<void, unknown>
  /** Sends a test request that obliges the peer to answer (run in its own fiber). */
  readonly sendTestRequest: (connection: Connection.Connection) => Effect.Effect<void, unknown>
}

/**
 * A protocol-agnostic heartbeat with the semantics FIX engines use:
 *
 * - outbound: when `interval` passes with no completed write, `sendHeartbeat`
 *   runs (any write, heartbeat or not, resets this timer);
 * - inbound: when nothing has come in for `round(testRequestFactor × interval)`,
 *   `sendTestRequest` runs; if still nothing has come in when that period
 *   expires again, the connection closes with `PeerTimeout`. Only bytes from
 *   the peer reset the inbound timer.
 *
 * @example
 * ```ts
 * import { Connection, Framing, Watchdog } from "effect-tether"
 *
 * const conn = Connection.connectTcp({
 *   port: 9876,
 *   watchdogs: [
 *     Watchdog.heartbeat({
 *       interval: "30 seconds",
 *       sendHeartbeat: (c) => c.send(Framing.utf8("heartbeat")),
 *       sendTestRequest: (c) => c.send(Framing.utf8("test-request"))
 *     })
 *   ]
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const heartbeat: (options: HeartbeatOptions) => Connection.Attachment = internal.heartbeat

/**
 * Options of {@link liveness}.
 *
 * @example
 * ```ts
 * import type { Watchdog } from "effect-tether"
 *
 * const options: Watchdog.LivenessOptions = { bound: "20 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LivenessOptions {
  /**
   * How long a connection may take, from leaving `Active`, to be fully closed
   * (state `Closed` and socket destroyed). Default 15 s: above the connection's
   * own drain + linger bounds (5 s + 5 s by default), so it only acts when those
   * did not. Set it above your `drainTimeout + lingerTimeout`.
   */
  readonly bound?: Duration.DurationInput | undefined
}

/**
 * The second line of defence behind the connection's own bounded close: a
 * connection that is Draining, Closing or Closed but whose socket is still not
 * destroyed `bound` after it left `Active` is force-destroyed and aborted with
 * `LivenessTimeout` (the reason is logged; `closed` completes with the reason
 * of the first close request). A zombie session cannot exist.
 *
 * @example
 * ```ts
 * import { Connection, Watchdog } from "effect-tether"
 *
 * const conn = Connection.connectTcp({
 *   port: 7000,
 *   lingerTimeout: "5 seconds",
 *   watchdogs: [Watchdog.liveness({ bound: "12 seconds" })]
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const liveness: (options?: LivenessOptions) => Connection.Attachment = internal.liveness

/**
 * The kernel's view of one TCP socket (a row of `/proc/net/tcp` or `/proc/net/tcp6`).
 *
 * @example
 * ```ts
 * import type { Watchdog } from "effect-tether"
 *
 * const stuck = (info: Watchdog.TcpInfo) => info.txQueue > 0 && info.retransmits > 3
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface TcpInfo {
  /** Local end as `ip|port` (IPv4-mapped IPv6 shown as IPv4). */
  readonly local: string
  /** Remote end as `ip|port`. */
  readonly remote: string
  /** TCP state name: `ESTABLISHED`, `CLOSE_WAIT`, `FIN_WAIT1`, ... */
  readonly state: string
  /** Bytes in the kernel's send queue: not yet acknowledged by the peer (SIOCOUTQ). */
  readonly txQueue: number
  /** Bytes received and not yet read by the process. */
  readonly rxQueue: number
  /** Active timer: 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero-window probe. */
  readonly timer: number
  /** Unrecovered retransmission timeouts. */
  readonly retransmits: number
  readonly inode: number
  /**
   * The transport's `bytesHandedToKernel` taken before this row was read, when the sampler knows
   * one: the send-stall probe counts `handedBefore − txQueue` bytes as acknowledged, a figure never
   * ahead of the truth. Without it the probe uses the figure at the moment it looks, which is right
   * for a sampler that reads synchronously. (Since 0.4.0.)
   */
  readonly handedBefore?: number | undefined
}

/**
 * A source of {@link TcpInfo} for the send-stall and peer-gone probes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Watchdog } from "effect-tether"
 *
 * const none: Watchdog.TcpProbeService = { sample: () => Effect.succeed(undefined), reads: () => 0 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface TcpProbeService {
  /**
   * The kernel's view of the transport's socket: its row; `"absent"` when the
   * kernel tables, read after the socket connected, no longer list it (the
   * kernel dropped the connection — a reset or a timeout — and a socket paused
   * by backpressure may never tell Node: {@link peerGone} reaps it); or
   * `undefined` when nothing can be said (not Linux, not a socket, no longer
   * connected). `notBefore` (Clock millis, the probe's tick) is how fresh the
   * sample must be: kernel tables read at or after it are reused, so one read
   * serves every probe of a tick. `"skipped"`: the socket needs no kernel
   * figures this tick — nothing queued or unacknowledged, reader flowing, last
   * row `ESTABLISHED` — so no table was read for it; the probe goes by Node's
   * view. (`"absent"` since 0.2.0, `"skipped"` since 0.2.0.)
   */
  readonly sample: (
    target: ProbeTarget,
    notBefore: number
  ) => Effect.Effect<TcpInfo | "absent" | "skipped" | undefined>
  /** How many times the kernel tables were read. */
  readonly reads: () => number
  /**
   * Whether `sample` would answer `"skipped"` for this target now, decided synchronously with no
   * read: the {@link Driver} walks every registered connection each tick and samples only those
   * this does not clear, so a tick where none needs kernel figures costs no effect per connection
   * and no table read. Optional: without it, every connection is sampled. (Since 0.3.0.)
   */
  readonly unsafeCanSkip?: ((target: ProbeTarget) => boolean) | undefined
}

/**
 * What a probe samples: anything with the transport's counters (a `Transport`, or the view a
 * watchdog builds from its connection's handle). Samplers may keep a memo per target object.
 *
 * @example
 * ```ts
 * import type { Transport, Watchdog } from "effect-tether"
 *
 * const target = (t: Transport.Transport): Watchdog.ProbeTarget => t
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface ProbeTarget {
  readonly stats: () => Transport.TransportStats
}

/**
 * Makes a probe over `/proc/net/tcp` and `/proc/net/tcp6` (or the given files)
 * that reads the tables at most once per tick for all connections.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Watchdog } from "effect-tether"
 *
 * const isolated = Effect.provideService(Watchdog.TcpProbe, Watchdog.makeProcNetProbe())
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeProcNetProbe = (files?: ReadonlyArray<string>): TcpProbeService =>
  probe.makeProcNetSampler(files)

/**
 * The kernel probe used by {@link sendStall}, {@link peerGone} and
 * {@link reaper}. It has a default — one process-wide `/proc/net/tcp` sampler
 * shared by every connection (a no-op returning `undefined` off Linux) — so
 * nothing needs to be provided; provide another one to replace it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Watchdog } from "effect-tether"
 *
 * const tableReads = Effect.map(Watchdog.TcpProbe, (p) => p.reads())
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export const TcpProbe: typeof internal.TcpProbe = internal.TcpProbe

/**
 * The identifier type of the {@link TcpProbe} reference.
 *
 * @example
 * ```ts
 * import type { Watchdog } from "effect-tether"
 *
 * type Probe = Watchdog.TcpProbe // the reference's identifier; its service is a Watchdog.TcpProbeService
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export type TcpProbe = internal.TcpProbe

/**
 * Parses the text of `/proc/net/tcp` or `/proc/net/tcp6` into {@link TcpInfo} rows.
 *
 * @example
 * ```ts
 * import { Watchdog } from "effect-tether"
 *
 * const rows = Watchdog.parseProcNetTcp(
 *   "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
 *     "   0: 0100007F:1F90 0100007F:C350 01 00000010:00000000 01:00000014 00000002     0        0 12345 1\n"
 * )
 * rows[0]?.state // "ESTABLISHED"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const parseProcNetTcp: (text: string) => Array<TcpInfo> = probe.parseProcNetTcp

/**
 * The `ip|port` form used in {@link TcpInfo} for an address as Node reports it.
 *
 * @example
 * ```ts
 * import { Watchdog } from "effect-tether"
 *
 * Watchdog.endpoint("::ffff:127.0.0.1", 80) // "127.0.0.1|80"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const endpoint: (ip: string, port: number) => string = probe.endpointKey

/**
 * Options of {@link sendStall}, {@link peerGone} and {@link reaper}.
 *
 * @example
 * ```ts
 * import type { Watchdog } from "effect-tether"
 *
 * const options: Watchdog.SendStallOptions = { probeInterval: "500 millis", stallTimeout: "10 seconds" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface SendStallOptions {
  /** How often the socket is sampled (default 1 s, or `TETHER_PROBE_INTERVAL`). */
  readonly probeInterval?: Duration.DurationInput | undefined
  /** How long bytes may stay queued with no acknowledgement progress (default 30 s, or `TETHER_STALL_TIMEOUT`). */
  readonly stallTimeout?: Duration.DurationInput | undefined
}

/**
 * The probe settings from the environment (Effect `Config`):
 * `TETHER_STALL_TIMEOUT` (default `30 seconds`) and `TETHER_PROBE_INTERVAL`
 * (default `1 second`). Used by {@link sendStall}, {@link peerGone} and
 * {@link reaper} for every option not given explicitly.
 *
 * @example
 * ```ts
 * import { ConfigProvider, Effect } from "effect"
 * import { Watchdog } from "effect-tether"
 *
 * const settings = Effect.withConfigProvider(
 *   Watchdog.sendStallConfig,
 *   ConfigProvider.fromMap(new Map([["TETHER_STALL_TIMEOUT", "10s"]]))
 * )
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export const sendStallConfig: Config.Config<{
  readonly stallTimeout: Duration.Duration
  readonly probeInterval: Duration.Duration
}> = internal.sendStallConfig

/**
 * What a {@link Driver} reports of itself.
 *
 * @example
 * ```ts
 * import type { Watchdog } from "effect-tether"
 *
 * const quiet = (s: Watchdog.DriverStats) => s.sampled === 0
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface DriverStats {
  /** Connections whose probe is registered now. */
  readonly registered: number
  /**
   * Of those, the ones parked at rest: a tick found nothing to ask the kernel about them, so no tick
   * walks them until their next activity (read, write, state change). (Since 0.4.0.)
   */
  readonly parked: number
  /** Ticks run (one per probe interval and distinct interval in use). */
  readonly ticks: number
  /** Probes that asked the sampler for kernel figures. */
  readonly sampled: number
  /** Probes run on Node's view alone, the sampler having said it needs no kernel figures. */
  readonly skipped: number
}

/**
 * Settings of one probe registered with a {@link Driver} (what {@link sendStall},
 * {@link peerGone} and {@link reaper} register).
 *
 * @example
 * ```ts
 * import { Watchdog } from "effect-tether"
 *
 * const probe: Watchdog.DriverProbe = {
 *   probeInterval: "1 second",
 *   stallTimeout: "30 seconds",
 *   stall: true,
 *   peerGone: true,
 *   sampler: Watchdog.makeProcNetProbe()
 * }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface DriverProbe {
  readonly probeInterval: Duration.DurationInput
  readonly stallTimeout: Duration.DurationInput
  /** Run the send-stall check. */
  readonly stall: boolean
  /** Run the peer-gone check. */
  readonly peerGone: boolean
  readonly sampler: TcpProbeService
}

/**
 * The service behind {@link Driver}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Watchdog } from "effect-tether"
 *
 * const registered = Effect.map(Watchdog.Driver, (d) => d.unsafeStats().registered)
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface DriverService {
  /** Registers a connection's probe; it is unregistered when the scope closes or the connection is Closed. */
  readonly register: (handle: Connection.Handle, probe: DriverProbe) => Effect.Effect<void, never, Scope.Scope>
  readonly unsafeStats: () => DriverStats
}

/**
 * One watchdog driver for many connections: with a `Driver` in the context,
 * {@link sendStall}, {@link peerGone}, {@link reaper} and {@link defaults}
 * register each connection's probe with it instead of forking a fiber per
 * connection. The driver runs one fiber per distinct probe interval (one with
 * the defaults); every tick it walks the registered connections in plain code
 * and asks the sampler for kernel figures only about those that can be stalled
 * or gone unnoticed — bytes queued in user space, bytes handed to the kernel
 * not yet acknowledged, a paused reader, a last row not `ESTABLISHED`, a state
 * other than `Active` — and a tick where none needs kernel figures reads no
 * table. A connection found at rest is parked: it leaves the walk, and its
 * next activity (a read or a wake-up of its reader, a write, a state change:
 * everything that could change the verdict) puts it back, so an idle
 * connection costs a map slot and one callback field, not a visit per tick.
 * The walk runs in slices of 1,000 connections with a turn of the event loop
 * between them, so it never blocks the loop for long. The
 * semantics are those of the per-connection probe: same ticks, same reaps,
 * same log lines.
 *
 * Production code provides {@link layerDriver} once (per process, or per
 * Listener / Hub). Without a `Driver` in the context each connection runs its
 * own probe fiber, as before 0.3.0 (fine for a few connections, costly for
 * thousands) — except a Listener's (and a WebSocket server's) sessions: since
 * 0.4.0 a listener with no `Driver` in its context makes one of its own.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection, Watchdog } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const conn = yield* Connection.connectTcp({ port: 7000, watchdogs: Watchdog.defaults() })
 *     yield* conn.closed
 *   })
 * ).pipe(Effect.provide(Watchdog.layerDriver))
 * ```
 *
 * @since 0.3.0
 * @category services
 */
export const Driver: typeof internal.Driver = internal.Driver

/**
 * The identifier type of the {@link Driver} tag.
 *
 * @example
 * ```ts
 * import type { Watchdog } from "effect-tether"
 *
 * type D = Watchdog.Driver
 * ```
 *
 * @since 0.3.0
 * @category services
 */
export type Driver = internal.Driver

/**
 * Makes a {@link Driver} whose fibers live in the current scope.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection, Watchdog } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const driver = yield* Watchdog.makeDriver
 *     const conn = yield* Connection.connectTcp({ port: 7000, watchdogs: Watchdog.defaults() }).pipe(
 *       Effect.provideService(Watchdog.Driver, driver)
 *     )
 *     yield* conn.closed
 *   })
 * )
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeDriver: Effect.Effect<DriverService, never, Scope.Scope> = internal.makeDriverService

/**
 * A {@link Driver} for the layer's lifetime.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection, Watchdog } from "effect-tether"
 *
 * const conn = Connection.connectTcp({ port: 7000, watchdogs: Watchdog.defaults() })
 * const program = Effect.scoped(Effect.flatMap(conn, (c) => c.closed)).pipe(Effect.provide(Watchdog.layerDriver))
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layerDriver: Layer.Layer<Driver> = Layer.scoped(Driver, makeDriver)



/**
 * The send-stall reaper. Every `probeInterval` it samples the bytes queued
 * toward the peer (Node's buffer plus, on Linux, the kernel's send queue from
 * `/proc/net/tcp{,6}`) and the bytes the peer has acknowledged (bytes handed to
 * the kernel minus the kernel's send queue; elsewhere, bytes handed to the
 * kernel). If bytes are queued and the acknowledged count has not moved for
 * `stallTimeout`, the connection is aborted with `SendStalled`: the socket is
 * destroyed, every waiting `send` fails with `ConnectionClosed` and the writer
 * exits. A slow peer whose acknowledgements keep moving, or an idle one with
 * nothing queued, is never reaped.
 *
 * Choosing `stallTimeout`: a peer whose receive window is full acknowledges in
 * steps, not byte by byte — the receiving kernel reopens its window only once
 * the reader has freed a sizeable part of its buffer (about 1/16 of it on
 * Linux: ~300 KiB steps on loopback, where the buffer grows to ~6 MiB). A
 * reader that takes `r` bytes a second therefore shows progress about every
 * `buffer / 16 / r` seconds; `stallTimeout` must be well above that for the
 * slowest reader you count as alive (the default 30 s: readers down to about
 * 10–15 KiB/s against a 6 MiB buffer).
 *
 * @example
 * ```ts
 * import { Connection, Watchdog } from "effect-tether"
 *
 * const conn = Connection.connectTcp({
 *   port: 7000,
 *   writeTimeout: "2 minutes",
 *   watchdogs: [Watchdog.sendStall({ stallTimeout: "30 seconds" })]
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const sendStall = (options?: SendStallOptions): Connection.Attachment => internal.probeAttachment(options, true, false)

/**
 * Peer-close detection from outside the read path: at the next probe after the
 * kernel reports the TCP state as no longer `ESTABLISHED`, or no longer lists
 * the connected socket at all (state `CLOSE`: the kernel drops a reset socket
 * from its tables at once), or Node reports a socket error or an EOF nobody has
 * read yet, while the connection is still `Active`, the connection is closed
 * with `PeerGone` — by abort when the connection is dead (reset, dropped by the
 * kernel, socket error), gracefully after a clean FIN (`CLOSE_WAIT`) — even if
 * no read is pending. A reset is caught within one probe interval even when the
 * reader is paused by backpressure and Node never hears of it. After a clean
 * FIN the probe waits while inbound frames are still being delivered (they
 * lead to the EOF by themselves) and acts at the first probe with none. The
 * reap's log line carries both views: `tcpState` (the kernel's row, `no row`,
 * or `unknown`) and `nodeState` (Node's error code or the transport state).
 *
 * @example
 * ```ts
 * import { Connection, Watchdog } from "effect-tether"
 *
 * const conn = Connection.connectTcp({ port: 7000, watchdogs: [Watchdog.peerGone({ probeInterval: "1 second" })] })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const peerGone = (options?: Pick<SendStallOptions, "probeInterval">): Connection.Attachment =>
  internal.probeAttachment(options, false, true)

/**
 * {@link sendStall} and {@link peerGone} in one probe fiber (one sample per tick).
 *
 * @example
 * ```ts
 * import { Connection, Watchdog } from "effect-tether"
 *
 * const conn = Connection.connectTcp({ port: 7000, watchdogs: [Watchdog.reaper({ stallTimeout: "20 seconds" })] })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const reaper = (options?: SendStallOptions): Connection.Attachment => internal.probeAttachment(options, true, true)

/**
 * Options of {@link defaults}: `false` leaves a watchdog out.
 *
 * @example
 * ```ts
 * import type { Watchdog } from "effect-tether"
 *
 * const options: Watchdog.DefaultsOptions = { liveness: { bound: "30 seconds" }, idle: { readIdle: "2 minutes" } }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DefaultsOptions {
  readonly liveness?: LivenessOptions | false | undefined
  readonly reaper?: SendStallOptions | false | undefined
  /** Not armed by default. */
  readonly idle?: IdleOptions | undefined
  /** Not armed by default. */
  readonly heartbeat?: HeartbeatOptions | undefined
}

/**
 * The recommended set: {@link liveness} and {@link reaper} (send-stall and
 * peer-gone), plus {@link idle} / {@link heartbeat} when their options are given.
 *
 * @example
 * ```ts
 * import { Connection, Watchdog } from "effect-tether"
 *
 * const conn = Connection.connectTcp({ port: 7000, watchdogs: Watchdog.defaults() })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = (options?: DefaultsOptions): Array<Connection.Attachment> => {
  const out: Array<Connection.Attachment> = []
  if (options?.liveness !== false) out.push(liveness(options?.liveness))
  if (options?.reaper !== false) out.push(reaper(options?.reaper))
  if (options?.idle !== undefined) out.push(idle(options.idle))
  if (options?.heartbeat !== undefined) out.push(heartbeat(options.heartbeat))
  return out
}

/**
 * Default settings of the watchdogs.
 *
 * @example
 * ```ts
 * import { Watchdog } from "effect-tether"
 *
 * Watchdog.defaultSettings.stallTimeout // "30 seconds"
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultSettings: {
  readonly livenessBound: "15 seconds"
  readonly probeInterval: "1 second"
  readonly stallTimeout: "30 seconds"
  readonly testRequestFactor: 1.2
} = internal.defaults
