/**
 * Metrics move with the connection's life; logs come once per event with the
 * connection's annotations; options load from Config with errors that name the key.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either, Logger, LogLevel, Metric, MetricLabel, Schedule, Stream, TestClock } from "effect"
import { Backlog, Connection, Dialer, Framing, Listener, Metrics, Transport, Watchdog, WebSocket } from "effect-tether"
import { captureLogs } from "./helpers/logs.js"

const counter = (metric: Metric.Metric.Counter<number>, tags: ReadonlyArray<MetricLabel.MetricLabel>) =>
  Effect.map(Metric.value(Metric.taggedWithLabels(metric, tags)), (s) => s.count)
const gauge = (metric: Metric.Metric.Gauge<number>, tags: ReadonlyArray<MetricLabel.MetricLabel>) =>
  Effect.map(Metric.value(Metric.taggedWithLabels(metric, tags)), (s) => s.value)

/** Polls a metric until it reaches `n`, bounded (5 s): `n`, or -1 when it did not get there. */
const reaches = (read: Effect.Effect<number>, n: number) =>
  Effect.flatMap(Effect.repeat(Effect.zipLeft(read, Effect.sleep("5 millis")), { until: (v) => v === n }), () => read).pipe(
    Effect.timeoutTo({ duration: "5 seconds", onSuccess: (v) => v, onTimeout: () => -1 })
  )

describe("Observability", () => {
  it.scoped("metrics move on connect, send and close", () =>
    Effect.gen(function*() {
      const labels = { role: "client", endpoint: "metrics-test-1" }
      const tags = Metrics.labelsOf(labels)
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, { labels })
      expect(yield* counter(Metrics.connects, tags)).toBe(1)
      expect(yield* gauge(Metrics.connections, [...tags, MetricLabel.make("state", "Active")])).toBe(1)
      yield* conn.sendAll([Framing.utf8("a"), Framing.utf8("bc")])
      yield* peer.write(Framing.encode(conn.codec, Framing.utf8("in")))
      while (conn.unsafeStats().framesOut < 2 || conn.unsafeStats().framesIn < 1) yield* Effect.yieldNow()
      expect(yield* counter(Metrics.framesOut, tags)).toBe(2)
      expect(yield* counter(Metrics.bytesOut, tags)).toBe(4 + 1 + 4 + 2)
      expect(yield* counter(Metrics.framesIn, tags)).toBe(1)
      expect(yield* counter(Metrics.bytesIn, tags)).toBe(6)
      const latency = yield* Metric.value(Metric.taggedWithLabels(Metrics.writeLatency, tags))
      expect(latency.count).toBeGreaterThanOrEqual(1)
      yield* conn.close()
      expect(yield* counter(Metrics.disconnects, [...tags, MetricLabel.make("reason", "LocalClose")])).toBe(1)
      expect(yield* gauge(Metrics.connections, [...tags, MetricLabel.make("state", "Active")])).toBe(0)
      expect(yield* gauge(Metrics.connections, [...tags, MetricLabel.make("state", "Closing")])).toBe(0)
      const closes = yield* Metric.value(Metric.taggedWithLabels(Metrics.closeDuration, tags))
      expect(closes.count).toBe(1)
      expect(yield* gauge(Metrics.sendQueueDepth, tags)).toBe(0)
    }))

  it.scoped("a write timeout is logged once, at warning, with the connection's annotations", () => {
    const { lines: entries, layer } = captureLogs()
    return Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 1 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, { id: "log-test", writeTimeout: "1 second", labels: { endpoint: "log" } })
      yield* conn.send(new Uint8Array(64))
      yield* TestClock.adjust("1 second")
      expect((yield* conn.closed)._tag).toBe("WriteTimeout")
      const closed = entries.filter((e) => e.message.startsWith("closed:"))
      expect(closed).toHaveLength(1)
      expect(closed[0]).toMatchObject({
        level: "WARN",
        annotations: { connection: "log-test", remote: "memory:peer", reason: "WriteTimeout" }
      })
      expect(closed[0]!.message).toContain("write timeout after 1s")
    }).pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Debug))
  })

  it.scoped("a reap moves the reaps metric and is logged once, with the figures that decided it", () => {
    const { lines: entries, layer } = captureLogs()
    return Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 16 })
      peer.setReading(false)
      const conn = yield* Connection.make(t, {
        id: "reap-test",
        writeTimeout: "1 minute",
        watchdogs: [Watchdog.sendStall({ probeInterval: "1 second", stallTimeout: "3 seconds" })]
      })
      yield* conn.send(new Uint8Array(1024))
      yield* TestClock.adjust("10 seconds")
      expect((yield* conn.closed)._tag).toBe("SendStalled")
      const reaps = entries.filter((e) => e.level === "WARN" && e.message.includes("reaping"))
      expect(reaps).toHaveLength(1)
      expect(reaps[0]!.annotations).toMatchObject({ connection: "reap-test", watchdog: "send-stall", reason: "SendStalled" })
      expect(
        yield* counter(Metrics.reaps, [MetricLabel.make("reason", "SendStalled"), MetricLabel.make("watchdog", "send-stall")])
      ).toBe(1)
    }).pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Debug))
  })

  it.scoped("backlog depth, oldest age and dropped frames are metered", () =>
    Effect.gen(function*() {
      const labels = { role: "client", endpoint: "backlog-metrics" }
      const tags = Metrics.labelsOf(labels)
      const backlog = yield* Backlog.make({ labels, maxMessages: 2, policy: "dropOldest", maxAge: "1 minute" })
      for (const n of [1, 2, 3]) yield* backlog.offer(new Uint8Array([n]))
      expect(yield* gauge(Metrics.backlogDepth, tags)).toBe(2)
      expect(yield* counter(Metrics.backlogDropped, [...tags, MetricLabel.make("outcome", "evicted")])).toBe(1)
      yield* TestClock.adjust("5 seconds")
      yield* backlog.expire // any change (or expiry pass) samples the oldest frame's age
      expect(yield* gauge(Metrics.backlogOldestAge, tags)).toBe(5)
      yield* TestClock.adjust("1 minute")
      expect(yield* counter(Metrics.backlogDropped, [...tags, MetricLabel.make("outcome", "expired")])).toBe(2)
      expect(yield* gauge(Metrics.backlogDepth, tags)).toBe(0)
    }))

  it.scoped("reconnect attempts are counted", () =>
    Effect.gen(function*() {
      const dialer = yield* Dialer.make({
        id: "reconnect-metrics",
        connect: Effect.fail(new Transport.TransportError({ reason: "Connect", message: "refused" })),
        backoff: Schedule.spaced("1 second")
      })
      yield* TestClock.adjust("3500 millis")
      const tags = Metrics.labelsOf({ role: "client", endpoint: "reconnect-metrics" })
      expect(yield* counter(Metrics.reconnectAttempts, tags)).toBe(3)
      yield* dialer.stop("done")
    }))

  it.effect("options load from Config (environment variables by default)", () =>
    Effect.gen(function*() {
      const options = yield* Connection.config.pipe(
        Effect.withConfigProvider(
          ConfigProvider.fromMap(
            new Map([
              ["TETHER_LINGER_TIMEOUT", "2 seconds"],
              ["TETHER_MAX_BATCH_BYTES", "64 KiB"],
              ["TETHER_SEND_QUEUE_CAPACITY", "4096"],
              ["TETHER_FRAMING", "newline"],
              ["TETHER_MAX_FRAME_BYTES", "1 MiB"]
            ]),
            { pathDelim: "_" }
          )
        )
      )
      expect(Duration.toMillis(options.lingerTimeout as Duration.Duration)).toBe(2000)
      expect(options.maxBatchBytes).toBe(64 * 1024)
      expect(options.sendQueueCapacity).toBe(4096)
      expect(options.codec?.name).toBe("newline")
      expect(options.codec?.maxFrameBytes).toBe(1024 * 1024)
      expect(options.writeTimeout).toBeUndefined() // unset: the default applies
    }))

  it.effect("a bad config value fails with an error naming the key and the value", () =>
    Effect.gen(function*() {
      const load = (entries: Array<[string, string]>) =>
        Effect.either(
          Connection.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(entries), { pathDelim: "_" })))
        )
      const badDuration = yield* load([["TETHER_WRITE_TIMEOUT", "soon"]])
      expect(Either.isLeft(badDuration) && String(badDuration.left)).toContain("TETHER_WRITE_TIMEOUT")
      expect(Either.isLeft(badDuration) && String(badDuration.left)).toContain('"soon"')
      const badInt = yield* load([["TETHER_SEND_QUEUE_CAPACITY", "-3"]])
      expect(Either.isLeft(badInt) && String(badInt.left)).toMatch(/TETHER_SEND_QUEUE_CAPACITY.*"-3"/)
      const badBytes = yield* load([["TETHER_MAX_FRAME_BYTES", "lots"]])
      expect(Either.isLeft(badBytes) && String(badBytes.left)).toMatch(/TETHER_MAX_FRAME_BYTES.*"lots"/)
      const badFraming = yield* load([["TETHER_FRAMING", "xml"]])
      expect(Either.isLeft(badFraming) && String(badFraming.left)).toContain("TETHER_FRAMING")
    }))
  it.live("accepted sessions are labelled role=\"server\" in every metric (TCP and WebSocket); the dialing side stays \"client\"", () =>
    Effect.gen(function*() {
      const endpoint = "role-test"
      const server = yield* Listener.serve({ port: 0, labels: { endpoint } }, (conn) =>
        Stream.runForEach(conn.incoming, (f) => conn.send(f)).pipe(Effect.orDie))
      const wsServer = yield* WebSocket.serve({ port: 0, labels: { endpoint: "role-test-ws" } }, (conn) =>
        Stream.runForEach(conn.incoming, (f) => conn.send(f)).pipe(Effect.orDie))
      const client = yield* Connection.connectTcp({ port: server.address.port, labels: { endpoint } })
      yield* client.send(Framing.utf8("ping"))
      yield* Stream.runHead(client.incoming)
      const ws = yield* WebSocket.connect(`ws://127.0.0.1:${wsServer.address.port}/`, { labels: { endpoint: "role-test-ws" } })
      yield* ws.send(WebSocket.text("ping"))
      yield* Stream.runHead(ws.incoming)
      for (const e of [endpoint, "role-test-ws"]) {
        const serverTags = Metrics.labelsOf({ role: "server", endpoint: e })
        const clientTags = Metrics.labelsOf({ role: "client", endpoint: e })
        // counters move on socket events that may land just after the peer saw the reply: await them (bounded)
        expect(yield* reaches(counter(Metrics.connects, serverTags), 1), e).toBe(1)
        expect(yield* reaches(counter(Metrics.connects, clientTags), 1), e).toBe(1)
        expect(yield* reaches(counter(Metrics.framesIn, serverTags), 1), e).toBe(1)
        expect(yield* reaches(counter(Metrics.framesOut, serverTags), 1), e).toBe(1)
        expect(yield* reaches(counter(Metrics.framesOut, clientTags), 1), e).toBe(1)
        expect(yield* reaches(gauge(Metrics.connections, [...serverTags, MetricLabel.make("state", "Active")]), 1), e).toBe(1)
      }
      // an application's own role is kept
      const named = yield* Listener.serve({ port: 0, labels: { role: "gateway", endpoint: "role-test-named" } }, (conn) =>
        Stream.runDrain(conn.incoming))
      yield* Connection.connectTcp({ port: named.address.port, labels: { endpoint: "role-test-named" } })
      const gatewayTags = Metrics.labelsOf({ role: "gateway", endpoint: "role-test-named" })
      expect(yield* reaches(counter(Metrics.connects, gatewayTags), 1)).toBe(1)
    }).pipe(Effect.scoped))
})
