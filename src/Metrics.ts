/**
 * tether's metrics, as Effect `Metric`s. Read them with `Metric.value`, or
 * export them with @effect/opentelemetry (see examples/metrics).
 *
 * Every metric carries the labels `role` (client / server / a name of yours)
 * and `endpoint` (a name you give; never a raw address, to keep cardinality
 * bounded), set through the `labels` option of `Connection.make`.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"

/**
 * Labels attached to every metric of a connection.
 *
 * @example
 * ```ts
 * import { Connection } from "effect-tether"
 *
 * const options: Connection.Options = { labels: { role: "client", endpoint: "pricing" } }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Labels {
  readonly role?: string | undefined
  readonly endpoint?: string | undefined
}

/**
 * The label set for a connection (stable array: Effect caches metric hooks per label array).
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const tags = Metrics.labelsOf({ role: "client", endpoint: "pricing" })
 * const value = Metric.value(Metric.taggedWithLabels(Metrics.connects, tags))
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const labelsOf = (labels: Labels | undefined): ReadonlyArray<MetricLabel.MetricLabel> => [
  MetricLabel.make("role", labels?.role ?? "client"),
  MetricLabel.make("endpoint", labels?.endpoint ?? "default")
]

const seconds = MetricBoundaries.exponential({ start: 0.00005, factor: 2, count: 20 }) // 50 µs … ~26 s

/**
 * Connections by state (`Active`, `Draining`, `Closing`), label `state`.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const active = Metric.value(Metric.tagged(Metrics.connections, "state", "Active"))
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const connections = Metric.gauge("tether_connections", { description: "connections by state" })

/**
 * Connections opened.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const opened = Metric.value(Metrics.connects)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const connects = Metric.counter("tether_connects_total", {
  description: "connections opened",
  incremental: true
})

/**
 * Connections closed, label `reason` (the DisconnectReason tag).
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const timeouts = Metric.value(Metric.tagged(Metrics.disconnects, "reason", "WriteTimeout"))
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const disconnects = Metric.counter("tether_disconnects_total", {
  description: "connections closed, by reason",
  incremental: true
})

/**
 * Bytes read from peers.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const bytes = Metric.value(Metrics.bytesIn)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const bytesIn = Metric.counter("tether_bytes_in_total", { description: "bytes read", incremental: true })

/**
 * Bytes handed to the kernel.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const bytes = Metric.value(Metrics.bytesOut)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const bytesOut = Metric.counter("tether_bytes_out_total", { description: "bytes written", incremental: true })

/**
 * Frames delivered to consumers.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const frames = Metric.value(Metrics.framesIn)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const framesIn = Metric.counter("tether_frames_in_total", { description: "frames received", incremental: true })

/**
 * Frames handed to the kernel.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const frames = Metric.value(Metrics.framesOut)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const framesOut = Metric.counter("tether_frames_out_total", { description: "frames written", incremental: true })

/**
 * Frames accepted by `send` and not yet taken by a writer, summed over connections
 * (updated once per write batch).
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const depth = Metric.value(Metrics.sendQueueDepth)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const sendQueueDepth = Metric.gauge("tether_send_queue_depth", { description: "frames waiting for the writer" })

/**
 * Seconds each transport write (one batch) took to reach the kernel.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const latency = Metric.value(Metrics.writeLatency)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const writeLatency = Metric.histogram("tether_write_latency_seconds", seconds, "write batch latency")

/**
 * Seconds a graceful close spent draining the send queue.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const drains = Metric.value(Metrics.drainDuration)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const drainDuration = Metric.histogram("tether_drain_duration_seconds", seconds, "drain duration")

/**
 * Seconds from a close request to the socket being destroyed.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const closes = Metric.value(Metrics.closeDuration)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const closeDuration = Metric.histogram("tether_close_duration_seconds", seconds, "close duration")

/**
 * Connections reaped by a watchdog, label `reason`.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const stalls = Metric.value(Metric.tagged(Metrics.reaps, "reason", "SendStalled"))
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const reaps = Metric.counter("tether_reaps_total", { description: "connections reaped", incremental: true })

/**
 * Reconnect attempts made by dialers.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const attempts = Metric.value(Metrics.reconnectAttempts)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const reconnectAttempts = Metric.counter("tether_reconnect_attempts_total", {
  description: "reconnect attempts",
  incremental: true
})

/**
 * Frames held in reconnect backlogs.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const held = Metric.value(Metrics.backlogDepth)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const backlogDepth = Metric.gauge("tether_backlog_depth", { description: "frames held in backlogs" })

/**
 * Age in seconds of the oldest frame of a backlog (label `endpoint`), 0 when empty.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const age = Metric.value(Metrics.backlogOldestAge)
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const backlogOldestAge = Metric.gauge("tether_backlog_oldest_age_seconds", {
  description: "age of the oldest backlog frame"
})

/**
 * Frames a backlog refused, evicted or expired, label `outcome` (`rejected`, `evicted`, `expired`).
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Metrics } from "effect-tether"
 *
 * const expired = Metric.value(Metric.tagged(Metrics.backlogDropped, "outcome", "expired"))
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const backlogDropped = Metric.counter("tether_backlog_dropped_total", {
  description: "backlog frames rejected, evicted or expired",
  incremental: true
})
