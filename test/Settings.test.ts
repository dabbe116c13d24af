/**
 * Every module's options load from Config; unset keys keep defaults; bad values
 * name the key and the value.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either } from "effect"
import { Settings } from "effect-tether"

const provider = (entries: Record<string, string>) =>
  ConfigProvider.fromMap(new Map(Object.entries(entries)), { pathDelim: "_" })
const load = <A>(config: import("effect").Config.Config<A>, entries: Record<string, string>) =>
  Effect.either(Effect.withConfigProvider(config, provider(entries)))
const ms = (d: Duration.DurationInput | undefined) => (d === undefined ? undefined : Duration.toMillis(d))

describe("Settings", () => {
  it.effect("nothing set: every module keeps its defaults", () =>
    Effect.gen(function*() {
      const empty = {}
      expect(Either.getOrThrow(yield* load(Settings.listener, empty)).maxConnections).toBeUndefined()
      const wd = Either.getOrThrow(yield* load(Settings.watchdog, empty))
      expect(wd.idle).toBeUndefined()
      expect(wd.reaper.stallTimeout).toBeUndefined()
      expect(Either.getOrThrow(yield* load(Settings.dialer, empty)).backoff).toBeUndefined()
      expect(Either.isLeft(yield* load(Settings.heartbeat, empty))).toBe(true) // the interval is required
    }))

  it.effect("each module reads its keys", () =>
    Effect.gen(function*() {
      const env = {
        TETHER_STALL_TIMEOUT: "2 seconds",
        TETHER_PROBE_INTERVAL: "250 millis",
        TETHER_LIVENESS_BOUND: "12 seconds",
        TETHER_READ_IDLE: "1 minute",
        TETHER_HEARTBEAT_INTERVAL: "30 seconds",
        TETHER_LISTENER_PORT: "7000",
        TETHER_LISTENER_MAX_CONNECTIONS: "5000",
        TETHER_LISTENER_SHUTDOWN_TIMEOUT: "3 seconds",
        TETHER_LINGER_TIMEOUT: "1 second",
        TETHER_WS_PATH: "/feed",
        TETHER_WS_MAX_PAYLOAD: "1 MiB",
        TETHER_WS_HEARTBEAT_INTERVAL: "20 seconds",
        TETHER_WS_HANDSHAKE_TIMEOUT: "5 seconds",
        TETHER_BACKLOG_MAX_MESSAGES: "10000",
        TETHER_BACKLOG_MAX_BYTES: "8 MiB",
        TETHER_BACKLOG_MAX_AGE: "1 minute",
        TETHER_BACKLOG_POLICY: "dropOldest",
        TETHER_DIALER_PORT: "9876",
        TETHER_DIALER_BACKOFF_BASE: "200 millis",
        TETHER_DIALER_BACKOFF_MAX: "5 seconds"
      }
      const wd = Either.getOrThrow(yield* load(Settings.watchdog, env))
      expect(ms(wd.reaper.stallTimeout)).toBe(2000)
      expect(ms(wd.reaper.probeInterval)).toBe(250)
      expect(ms(wd.liveness.bound)).toBe(12000)
      expect(ms(wd.idle?.readIdle)).toBe(60000)
      expect(wd.idle?.writeIdle).toBeUndefined()
      const hb = Either.getOrThrow(yield* load(Settings.heartbeat, env))
      expect([ms(hb.interval), hb.testRequestFactor]).toEqual([30000, 1.2])
      const l = Either.getOrThrow(yield* load(Settings.listener, env))
      expect([l.port, l.maxConnections, ms(l.shutdownTimeout), ms(l.lingerTimeout)]).toEqual([7000, 5000, 3000, 1000])
      const ws = Either.getOrThrow(yield* load(Settings.webSocketServer, env))
      expect([ws.path, ws.maxPayload, ws.port]).toEqual(["/feed", 1024 * 1024, 7000])
      expect(ws.heartbeat && ms(ws.heartbeat.interval)).toBe(20000)
      const wsc = Either.getOrThrow(yield* load(Settings.webSocketClient, env))
      expect(ms(wsc.handshakeTimeout)).toBe(5000)
      const b = Either.getOrThrow(yield* load(Settings.backlog, env))
      expect([b.maxMessages, b.maxBytes, ms(b.maxAge), b.policy]).toEqual([10000, 8 * 1024 * 1024, 60000, "dropOldest"])
      const d = Either.getOrThrow(yield* load(Settings.dialer, env))
      expect(d.port).toBe(9876)
      expect(d.backoff).toBeDefined()
      expect(d.backlog.policy).toBe("dropOldest")
    }))

  it.effect("bad values: the error names the key and the value", () =>
    Effect.gen(function*() {
      const cases: Array<[import("effect").Config.Config<unknown>, string, string]> = [
        [Settings.watchdog, "TETHER_STALL_TIMEOUT", "forever"],
        [Settings.listener, "TETHER_LISTENER_MAX_CONNECTIONS", "0"],
        [Settings.listener, "TETHER_LISTENER_PORT", "99999"],
        [Settings.webSocketServer, "TETHER_WS_MAX_PAYLOAD", "huge"],
        [Settings.backlog, "TETHER_BACKLOG_POLICY", "dropNewest"],
        [Settings.dialer, "TETHER_DIALER_BACKOFF_MAX", "later"],
        [Settings.heartbeat, "TETHER_HEARTBEAT_INTERVAL", "often"]
      ]
      for (const [config, key, value] of cases) {
        const result = yield* load(config, { [key]: value })
        expect(Either.isLeft(result)).toBe(true)
        const text = Either.isLeft(result) ? String(result.left) : ""
        expect(text).toContain(key.replace(/^TETHER_((LISTENER|WS|BACKLOG|DIALER)_)?/, (_, __, m) => m ? `TETHER.${m}.` : "TETHER."))
        if (!key.endsWith("POLICY") && !key.endsWith("_PORT")) expect(text).toContain(value)
      }
    }))
})
