/**
 * Every module's options load from Config; unset keys keep defaults; bad values
 * name the key and the value.
 */
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Context, Duration, Effect, Either, Layer, Option, Queue, Stream } from "effect"
import { Dialer, Framing, Hub, Listener, Settings, Watchdog, WebSocket } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { duration as exampleFlag } from "../examples/cli.js"
import { parseDuration as fixFlag } from "../examples/fix/cli.js"

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
        TETHER_WS_UPGRADE_TIMEOUT: "4 seconds",
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
      expect(ms(ws.upgradeTimeout)).toBe(4000)
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
        expect(text).toContain(key) // the variable the user sets, not a dotted path
        if (!key.endsWith("POLICY") && !key.endsWith("_PORT")) expect(text).toContain(value)
      }
    }))

  // -------------------------------------------------------------------------
  // providers as users write them

  const env = {
    TETHER_WRITE_TIMEOUT: "3s",
    TETHER_STALL_TIMEOUT: "2 seconds",
    TETHER_LISTENER_MAX_CONNECTIONS: "5",
    TETHER_WS_PATH: "/feed",
    TETHER_BACKLOG_MAX_AGE: "1m",
    TETHER_DIALER_PORT: "9876",
    TETHER_HUB_EVENTS_CAPACITY: "64"
  }
  const providers: ReadonlyArray<[string, ConfigProvider.ConfigProvider]> = [
    ["fromMap (default pathDelim)", ConfigProvider.fromMap(new Map(Object.entries(env)))],
    ["fromMap with pathDelim _", ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })],
    ["fromJson", ConfigProvider.fromJson(env)]
  ]
  for (const [name, p] of providers) {
    it.effect(`the documented key names work with ConfigProvider.${name}`, () =>
      Effect.gen(function*() {
        const get = <A>(config: Config.Config<A>) => Effect.withConfigProvider(config, p)
        expect(ms((yield* get(Settings.connection)).writeTimeout)).toBe(3000)
        expect(ms((yield* get(Settings.watchdog)).reaper.stallTimeout)).toBe(2000)
        expect(Duration.toMillis((yield* get(Watchdog.sendStallConfig)).stallTimeout)).toBe(2000)
        expect((yield* get(Settings.listener)).maxConnections).toBe(5)
        expect((yield* get(Settings.webSocketServer)).path).toBe("/feed")
        expect(ms((yield* get(Settings.backlog)).maxAge)).toBe(60_000)
        expect((yield* get(Settings.dialer)).port).toBe(9876)
        expect((yield* get(Settings.hub)).eventsCapacity).toBe(64)
      }))
  }

  it.effect("a bad value names the environment variable (TETHER_WRITE_TIMEOUT, not TETHER.WRITE_TIMEOUT) under every provider", () =>
    Effect.gen(function*() {
      for (const p of [ConfigProvider.fromMap(new Map([["TETHER_WRITE_TIMEOUT", "soon"]])), ConfigProvider.fromJson({ TETHER_WRITE_TIMEOUT: "soon" })]) {
        const text = String(Either.flip(yield* Effect.either(Effect.withConfigProvider(Settings.connection, p))).pipe(Either.getOrThrow))
        expect(text).toContain("TETHER_WRITE_TIMEOUT")
        expect(text).not.toContain("TETHER.WRITE_TIMEOUT")
        expect(text).toContain("soon")
      }
      const missing = yield* load(Settings.heartbeat, {})
      expect(String(Either.flip(missing).pipe(Either.getOrThrow))).toContain("TETHER_HEARTBEAT_INTERVAL")
    }))

  it.effect("a prefix is an ordinary Config.nested: PRIMARY_TETHER_DIALER_PORT in the environment", () =>
    Effect.gen(function*() {
      const d = yield* Effect.withConfigProvider(
        Config.nested(Settings.dialer, "PRIMARY"),
        ConfigProvider.fromMap(new Map([["PRIMARY_TETHER_DIALER_PORT", "7001"]]), { pathDelim: "_" })
      )
      expect(d.port).toBe(7001)
    }))

  // -------------------------------------------------------------------------
  // one duration syntax

  const same: ReadonlyArray<[string, number]> = [
    ["10s", 10_000],
    ["10 seconds", 10_000],
    ["10 s", 10_000],
    ["1 second", 1000],
    ["500ms", 500],
    ["500 millis", 500],
    ["1.5s", 1500],
    ["1m", 60_000],
    ["2 minutes", 120_000],
    ["2h", 7_200_000],
    ["250", 250]
  ]

  it.effect("durations: the short form and Effect's form, in every key, Settings.parseDuration and the example flags", () =>
    Effect.gen(function*() {
      for (const [text, millis] of same) {
        expect(ms(Either.getOrThrow(yield* load(Settings.connection, { TETHER_WRITE_TIMEOUT: text })).writeTimeout)).toBe(millis)
        expect(Duration.toMillis(Either.getOrThrow(yield* load(Watchdog.sendStallConfig, { TETHER_STALL_TIMEOUT: text })).stallTimeout)).toBe(millis)
        expect(ms(Either.getOrThrow(yield* load(Settings.dialer, { TETHER_DIALER_CONNECT_TIMEOUT: text })).connectTimeout)).toBe(millis)
        expect(Option.map(Settings.parseDuration(text), Duration.toMillis)).toEqual(Option.some(millis))
        expect(Duration.toMillis(exampleFlag("--timeout", text))).toBe(millis)
        expect(Duration.toMillis(fixFlag("--linger", text))).toBe(millis)
      }
      for (const bad of ["soon", "", "10 parsecs", "-1s", "1s2"]) {
        expect(Settings.parseDuration(bad)).toEqual(Option.none())
        expect(Either.isLeft(yield* load(Settings.connection, { TETHER_WRITE_TIMEOUT: bad }))).toBe(true)
        expect(() => exampleFlag("--timeout", bad)).toThrow(/--timeout/)
      }
    }))

  // -------------------------------------------------------------------------
  // layerConfig

  it.live("Listener.layerConfig(Settings.listener, handler): listens where the config says; a bad key fails the layer naming it", () =>
    Effect.gen(function*() {
      const port = yield* Testing.freePort()
      const layer = Listener.layerConfig(Settings.listener, (conn) =>
        Stream.runForEach(conn.incoming, (frame) => conn.send(frame)).pipe(Effect.orDie))
      const server = yield* Effect.scoped(
        Effect.map(Layer.build(layer), (ctx) => Context.get(ctx, Listener.Listener).address.port).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["TETHER_LISTENER_PORT", String(port)]])))
        )
      )
      expect(server).toBe(port)
      const bad = yield* Effect.either(Effect.scoped(Layer.build(layer)).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["TETHER_LISTENER_MAX_CONNECTIONS", "none"]])))
      ))
      expect(Either.isLeft(bad) && String(bad.left)).toContain("TETHER_LISTENER_MAX_CONNECTIONS")
    }))

  it.live("WebSocket.layerConfig(Settings.webSocketServer, handler) reads TETHER_WS_PATH", () =>
    Effect.gen(function*() {
      const layer = WebSocket.layerConfig(Settings.webSocketServer, (conn) =>
        Stream.runForEach(conn.incoming, conn.send).pipe(Effect.orDie))
      yield* Effect.scoped(Effect.gen(function*() {
        const ctx = yield* Layer.build(layer)
        const { port } = Context.get(ctx, WebSocket.Server).address
        const conn = yield* WebSocket.connect(`ws://127.0.0.1:${port}/feed`)
        yield* conn.send(WebSocket.text("hi"))
        const echoed = yield* Testing.within("2 seconds", "the echo", Stream.runHead(WebSocket.messages(conn)))
        expect(Option.map(echoed, (m) => m._tag === "Text" ? m.text : "")).toEqual(Option.some("hi"))
        const wrongPath = yield* Effect.either(WebSocket.connect(`ws://127.0.0.1:${port}/other`))
        expect(Either.isLeft(wrongPath)).toBe(true)
      }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["TETHER_WS_PATH", "/feed"]])))))
    }))

  it.live("Dialer.layerConfig: Settings.dialer, or a record of Configs", () =>
    Effect.gen(function*() {
      const frames = yield* Queue.unbounded<string>()
      const peer = yield* Testing.peer({
        onSocket: (socket) => socket.on("data", (d: Buffer) => Testing.decodeFrames(d).forEach((f) => Queue.unsafeOffer(frames, f)))
      })
      const provider = ConfigProvider.fromMap(new Map([["TETHER_DIALER_PORT", String(peer.port)], ["UPSTREAM", String(peer.port)]]))
      for (const layer of [Dialer.layerConfig(Settings.dialer), Dialer.layerConfig({ port: Config.port("UPSTREAM") })]) {
        yield* Effect.scoped(Effect.gen(function*() {
          const dialer = Context.get(yield* Layer.build(layer), Dialer.Tag)
          yield* dialer.send(Framing.utf8("over config"))
          expect(yield* Testing.within("2 seconds", "the frame", Queue.take(frames))).toBe("over config")
        })).pipe(Effect.withConfigProvider(provider))
      }
    }).pipe(Effect.scoped))

  it.effect("Hub.layerConfig(Settings.hub) builds a hub; a bad TETHER_HUB_EVENTS_CAPACITY fails naming it", () =>
    Effect.gen(function*() {
      const keys = yield* Effect.scoped(Effect.flatMap(Layer.build(Hub.layerConfig(Settings.hub)), (ctx) => Context.get(ctx, Hub.Tag).keys)).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["TETHER_HUB_EVENTS_CAPACITY", "16"]])))
      )
      expect(keys).toEqual([])
      const bad = yield* Effect.either(Effect.scoped(Layer.build(Hub.layerConfig(Settings.hub)))).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["TETHER_HUB_EVENTS_CAPACITY", "0"]])))
      )
      expect(Either.isLeft(bad) && String(bad.left)).toContain("TETHER_HUB_EVENTS_CAPACITY")
    }))
})
