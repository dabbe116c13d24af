/**
 * tether: Effect-based network connections that cannot wedge.
 *
 * @since 0.1.0
 */

/**
 * Scoped, framed connections: one writer fiber, a stop-gate, full shutdown.
 *
 * @since 0.1.0
 */
export * as Connection from "./Connection.js"

/**
 * Why a connection ended.
 *
 * @since 0.1.0
 */
export * as DisconnectReason from "./DisconnectReason.js"

/**
 * The message seam between a byte transport and a connection.
 *
 * @since 0.3.0
 */
export * as Framed from "./Framed.js"

/**
 * Incremental frame codecs.
 *
 * @since 0.1.0
 */
export * as Framing from "./Framing.js"

/**
 * Metrics of connections, watchdogs, dialers and backlogs.
 *
 * @since 0.1.0
 */
export * as Metrics from "./Metrics.js"

/**
 * Every option from Effect Config (environment variables by default).
 *
 * @since 0.1.0
 */
export * as Settings from "./Settings.js"

/**
 * The stop-gate and its gated bounded queue.
 *
 * @since 0.1.0
 */
export * as StopGate from "./StopGate.js"

/**
 * Byte-duplex transports: TCP, TLS, in-memory.
 *
 * @since 0.1.0
 */
export * as Transport from "./Transport.js"

/**
 * Watchdogs: idle and heartbeat timeouts, liveness outside Active, send-stall and peer-gone reaping.
 *
 * @since 0.1.0
 */
export * as Watchdog from "./Watchdog.js"

/**
 * Bounded reconnect backlogs: maxMessages, maxBytes, maxAge, rejectNew or dropOldest.
 *
 * @since 0.1.0
 */
export * as Backlog from "./Backlog.js"

/**
 * Outbound connections that reconnect by policy, within a session schedule.
 *
 * @since 0.1.0
 */
export * as Dialer from "./Dialer.js"

/**
 * Session windows (non-stop, daily, weekdays) in IANA time zones.
 *
 * @since 0.1.0
 */
export * as SessionSchedule from "./SessionSchedule.js"

/**
 * A registry of keyed peers (dialers and inbound connections): send by key, broadcast once.
 *
 * @since 0.1.0
 */
export * as Hub from "./Hub.js"

/**
 * Servers with seats, a live session registry and a bounded shutdown (TCP, TLS).
 *
 * @since 0.1.0
 */
export * as Listener from "./Listener.js"

/**
 * WebSocket client and server as connections: every frame written by the connection's writer fiber.
 *
 * @since 0.1.0
 */
export * as WebSocket from "./WebSocket.js"

/**
 * Outbound peers declared as data (a Schema spec), so any fleet node can take one over.
 *
 * @since 0.2.0
 */
export * as PeerKind from "./PeerKind.js"

/**
 * The service a FleetHub runs on: durable per-peer logs, leases, an inbound registry, node requests.
 *
 * @since 0.2.0
 */
export * as Engine from "./Engine.js"

/**
 * An Engine in memory, several nodes in one process, driven by the Clock.
 *
 * @since 0.2.0
 */
export * as MemoryEngine from "./MemoryEngine.js"

/**
 * One Hub across processes over an Engine: durable outbound logs, one holder per peer, routed inbound sends.
 *
 * @since 0.2.0
 */
export * as FleetHub from "./FleetHub.js"
