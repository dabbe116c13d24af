/**
 * The WebSocket HTTP upgrade is bounded and holds a seat (issue 12 §5): a client that connects and never
 * sends its upgrade request, or sends half the headers (slowloris), is closed at `upgradeTimeout` and
 * counts against `maxConnections`; the client's handshake has a default bound too.
 */
import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Either, Fiber, Logger, LogLevel, Schedule, Stream, TestClock, TestServices } from "effect"
import * as Net from "node:net"
import { WebSocket } from "effect-tether"

/** A raw client socket on loopback: `closed` completes when the server closes or destroys it. */
interface RawClient {
  readonly socket: Net.Socket
  readonly closed: Promise<void>
  readonly received: () => string
}

const rawClient = (port: number, send?: string) =>
  Effect.acquireRelease(
    Effect.async<RawClient>((resume) => {
      const socket = Net.connect({ host: "127.0.0.1", port })
      let data = ""
      socket.setEncoding("utf8")
      socket.on("data", (d: string) => {
        data += d
      })
      socket.on("error", () => {})
      const closed = new Promise<void>((res) => socket.once("close", () => res()))
      socket.once("connect", () => {
        if (send !== undefined) socket.write(send)
        resume(Effect.succeed({ socket, closed, received: () => data }))
      })
    }),
    (c) => Effect.sync(() => c.socket.destroy())
  )

/** Waits for the socket to be closed by the server, bounded on the live clock. */
const closedWithin = (c: RawClient, bound: Duration.DurationInput) =>
  Effect.raceFirst(
    Effect.as(Effect.promise(() => c.closed), true),
    TestServices.provideLive(Effect.as(Effect.sleep(bound), false))
  )

/** Polls a condition on the live clock, bounded (for counters the server moves on socket events). */
const eventually = (cond: () => boolean) =>
  TestServices.provideLive(
    Effect.repeat(Effect.sync(cond), { until: (ok) => ok, schedule: Schedule.spaced("5 millis") }).pipe(
      Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("condition not met within 5 s") })
    )
  )

const HALF_HEADERS = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"

const serve = (options: WebSocket.ServerOptions) =>
  WebSocket.serve({ port: 0, ...options }, (conn) => Stream.runDrain(conn.incoming))

describe("WebSocket upgrade bound and seats", () => {
  it.scopedLive("a silent client (TCP connect, no request) is closed at upgradeTimeout and counted", () =>
    Effect.gen(function*() {
      const server = yield* serve({ upgradeTimeout: "300 millis" })
      const c = yield* rawClient(server.address.port)
      expect(yield* closedWithin(c, "5 seconds")).toBe(true)
      yield* eventually(() => server.unsafeStats().upgradeTimeouts === 1)
      expect(server.unsafeStats()).toMatchObject({ pending: 0, accepted: 0, active: 0 })
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scopedLive("a half-header client (slowloris) is answered 408 and closed at upgradeTimeout", () =>
    Effect.gen(function*() {
      const server = yield* serve({ upgradeTimeout: "300 millis" })
      const c = yield* rawClient(server.address.port, HALF_HEADERS)
      expect(yield* closedWithin(c, "5 seconds")).toBe(true)
      expect(c.received()).toMatch(/^HTTP\/1\.1 408 /)
      yield* eventually(() => server.unsafeStats().upgradeTimeouts === 1)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scopedLive("pending upgrades hold seats: beyond maxConnections a new socket is refused at once", () =>
    Effect.gen(function*() {
      const server = yield* serve({ maxConnections: 2, upgradeTimeout: "1 minute" })
      const a = yield* rawClient(server.address.port)
      const b = yield* rawClient(server.address.port, HALF_HEADERS)
      yield* eventually(() => server.unsafeStats().pending === 2)
      const c = yield* rawClient(server.address.port)
      expect(yield* closedWithin(c, "5 seconds")).toBe(true)
      expect(server.unsafeStats()).toMatchObject({ pending: 2, refused: 1 })
      // a seat frees when a pending client goes away; a real client then upgrades
      a.socket.destroy()
      yield* eventually(() => server.unsafeStats().pending === 1)
      const conn = yield* WebSocket.connect(`ws://127.0.0.1:${server.address.port}/`)
      expect(conn.unsafeStats().state).toBe("Active")
      yield* eventually(() => server.unsafeStats().active === 1)
      expect(server.unsafeStats()).toMatchObject({ pending: 1, refused: 1, accepted: 1 })
      b.socket.destroy()
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("TestClock: the default upgrade bound is 10 s", () =>
    Effect.gen(function*() {
      const server = yield* serve({})
      const c = yield* rawClient(server.address.port, HALF_HEADERS)
      yield* eventually(() => server.unsafeStats().pending === 1)
      yield* TestClock.adjust("9999 millis")
      expect(yield* closedWithin(c, "200 millis")).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect(yield* closedWithin(c, "5 seconds")).toBe(true)
      expect(server.unsafeStats()).toMatchObject({ pending: 0, upgradeTimeouts: 1 })
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("TestClock: upgradeTimeout also bounds a slow upgrade hook (the seat is released)", () =>
    Effect.gen(function*() {
      let hookCalled = false
      const server = yield* serve({
        upgradeTimeout: "2 seconds",
        upgrade: () => Effect.suspend(() => {
          hookCalled = true
          return Effect.never
        })
      })
      const client = yield* Effect.fork(
        WebSocket.connect(`ws://127.0.0.1:${server.address.port}/`, { handshakeTimeout: "1 minute" }).pipe(
          Effect.either
        )
      )
      yield* eventually(() => hookCalled)
      expect(server.unsafeStats()).toMatchObject({ pending: 0, active: 1 })
      yield* TestClock.adjust("2 seconds")
      yield* eventually(() => server.unsafeStats().active === 0)
      expect(server.unsafeStats()).toMatchObject({ upgradeTimeouts: 1, rejected: 1, accepted: 0 })
      const r = yield* TestServices.provideLive(Fiber.join(client).pipe(Effect.timeout("5 seconds")))
      expect(Either.isLeft(r)).toBe(true)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scoped("TestClock: WebSocket.connect against a silent server fails at the default 10 s handshake bound", () =>
    Effect.gen(function*() {
      const silent = Net.createServer(() => {})
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void silent.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => silent.close())
      )
      let sockets = 0
      silent.on("connection", (s) => {
        sockets++
        s.on("error", () => {})
      })
      const port = (silent.address() as Net.AddressInfo).port
      const client = yield* Effect.fork(Effect.scoped(WebSocket.connect(`ws://127.0.0.1:${port}/`)))
      yield* eventually(() => sockets === 1)
      yield* TestClock.adjust("9999 millis")
      expect(client.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const r = yield* TestServices.provideLive(Fiber.join(client).pipe(Effect.either, Effect.timeout("5 seconds")))
      expect(Either.isLeft(r) && r.left._tag === "TransportError" && r.left.reason).toBe("ConnectTimeout")
    }))
})
