/**
 * Listener over loopback: seats, the session registry, handshake timeout and
 * the bounded shutdown; TestClock wherever a bound is checked.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Schedule, Stream, TestClock, Tracer } from "effect"
import * as Net from "node:net"
import * as Tls from "node:tls"
import * as Util from "node:util"
import type { Connection, DisconnectReason } from "effect-tether"
import { Framing, Listener, Watchdog } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { captureLogs, type LogLine } from "./helpers/logs.js"
import { selfSigned } from "./helpers/tls.js"

/** A plain client: collects what it reads, answers the server's FIN with its own (unless stubborn). */
class Client {
  received = 0
  data = Buffer.alloc(0)
  ended = false
  closed = false
  private waiters: Array<() => void> = []
  constructor(readonly socket: Net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.received += d.length
      if (this.data.length < 1 << 16) this.data = Buffer.concat([this.data, d])
      this.notify()
    })
    socket.on("end", () => {
      this.ended = true
      this.notify()
    })
    socket.on("close", () => {
      this.closed = true
      this.notify()
    })
    socket.on("error", () => {})
  }
  private notify() {
    const ws = this.waiters
    this.waiters = []
    for (const w of ws) w()
  }
  until(pred: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (pred() ? resolve() : this.waiters.push(check))
      check()
    })
  }
}

const connect = (port: number, options?: { stubborn?: boolean }) =>
  Effect.acquireRelease(
    Effect.async<Client>((resume) => {
      // stubborn: allowHalfOpen, so the server's FIN is never answered
      const socket = Net.connect({ host: "127.0.0.1", port, allowHalfOpen: options?.stubborn ?? false })
      const client = new Client(socket)
      socket.once("connect", () => resume(Effect.succeed(client)))
    }),
    (c) => Effect.sync(() => c.socket.destroy())
  )

const until = (c: Client, pred: () => boolean) => Effect.promise(() => c.until(pred))

const registryUntil = Testing.awaitSessions

const sleeperAt = (at: number) => Testing.awaitSleeper(at)

const lp = (s: string) => Framing.encode(Framing.lengthPrefixed(), Framing.utf8(s))

describe("Listener", () => {
  it.live("the sessions' probes run on one watchdog driver of the listener's own (no probe fiber per session), or on the application's", () =>
    Effect.gen(function*() {
      // a sampler that tells who asks: only a driver calls `unsafeCanSkip`; a per-session probe fiber calls `sample`
      let asked = 0
      let sampled = 0
      const probe: Watchdog.TcpProbeService = {
        sample: () => Effect.sync(() => void sampled++),
        unsafeCanSkip: () => {
          asked++
          return true
        },
        reads: () => sampled
      }
      const options = { port: 0, watchdogs: [Watchdog.reaper({ probeInterval: "50 millis", stallTimeout: "5 seconds" })] }
      const handler = (conn: Connection.Connection) => Effect.asVoid(conn.closed)
      const poll = (cond: () => boolean) =>
        Effect.repeat(Effect.sync(cond), { schedule: Schedule.spaced("10 millis"), until: (ok) => ok }).pipe(
          Effect.timeout("5 seconds")
        )
      // no Driver in the context: the listener makes its own
      const own = yield* Listener.serve(options, handler).pipe(Effect.provideService(Watchdog.TcpProbe, probe))
      for (let i = 0; i < 3; i++) yield* connect(own.address.port)
      yield* registryUntil(own, (rows) => rows.length === 3).pipe(Effect.timeout("5 seconds"))
      yield* poll(() => asked >= 3)
      expect(sampled).toBe(0)
      // the application's driver: used as it is
      const driver = yield* Watchdog.makeDriver
      const app = yield* Listener.serve(options, handler).pipe(
        Effect.provideService(Watchdog.TcpProbe, probe),
        Effect.provideService(Watchdog.Driver, driver)
      )
      for (let i = 0; i < 2; i++) yield* connect(app.address.port)
      yield* registryUntil(app, (rows) => rows.length === 2).pipe(Effect.timeout("5 seconds"))
      yield* poll(() => driver.unsafeStats().registered === 2)
      expect(sampled).toBe(0)
    }).pipe(Effect.scoped))

  it.live("seats: maxConnections 1 → a second client is refused; the first, stalled, is reaped and the seat is free", () =>
    Effect.gen(function*() {
      const conns: Array<Connection.Connection> = []
      const big = new Uint8Array(64 * 1024)
      const server = yield* Listener.serve({
        port: 0,
        maxConnections: 1,
        writeTimeout: "1 minute", // the reaper, not the write deadline, must end the stalled session
        watchdogs: [Watchdog.sendStall({ probeInterval: "50 millis", stallTimeout: "300 millis" })]
      }, (conn) =>
        Effect.gen(function*() {
          conns.push(conn)
          // flood the client until it stops reading
          for (;;) yield* conn.send(big)
        }).pipe(Effect.ignore))
      const first = yield* connect(server.address.port)
      yield* until(first, () => first.received > 0).pipe(Effect.timeout("5 seconds"))
      first.socket.pause() // stops reading: the kernel buffers fill, then our queue stalls
      const second = yield* connect(server.address.port)
      yield* until(second, () => second.ended || second.closed).pipe(Effect.timeout("5 seconds"))
      expect(second.received).toBe(0)
      expect((yield* server.stats).refused).toBe(1)
      expect((yield* server.sessions).length).toBe(1)
      // the stall watchdog reaps the first session; its seat is free at once
      yield* registryUntil(server, (rows) => rows.length === 0).pipe(Effect.timeout("10 seconds"))
      expect(conns.length).toBe(1)
      expect((yield* conns[0]!.closed)._tag).toBe("SendStalled")
      expect((yield* server.stats).active).toBe(0)
      const third = yield* connect(server.address.port)
      yield* until(third, () => third.received > 0).pipe(Effect.timeout("5 seconds"))
      const stats = yield* server.stats
      expect(stats).toMatchObject({ accepted: 2, refused: 1, active: 1 })
    }).pipe(Effect.scoped))

  it.live("shutdown with 100 live sessions, 10 stubborn: done within the shutdown timeout, every socket destroyed", () =>
    Effect.gen(function*() {
      const conns: Array<Connection.Connection> = []
      const server = yield* Listener.serve({
        port: 0,
        shutdownTimeout: "2 seconds",
        lingerTimeout: "1 minute" // a stubborn client could hold a graceful close this long
      }, (conn) =>
        Effect.zipRight(
          Effect.sync(() => conns.push(conn)),
          Stream.runForEach(conn.incoming, (f) => conn.send(f)).pipe(Effect.ignore)
        ))
      const clients: Array<Client> = []
      for (let i = 0; i < 100; i++) clients.push(yield* connect(server.address.port, { stubborn: i % 10 === 0 }))
      yield* registryUntil(server, (rows) => rows.length === 100).pipe(Effect.timeout("10 seconds"))
      // every session is live: one round trip each
      for (const c of clients) c.socket.write(lp("ping"))
      yield* Effect.promise(() => Promise.all(clients.map((c) => c.until(() => c.received >= 8))))
        .pipe(Effect.timeout("10 seconds"))

      const started = performance.now()
      const report = yield* server.shutdown
      const elapsed = performance.now() - started
      expect(report.sessions).toBe(100)
      // the stubborn ten can only end by the abort at the bound (the exact split, in virtual time, is the next test;
      // on a starved CPU a well-behaved client may also miss the bound)
      expect(report.aborted).toBeGreaterThanOrEqual(10)
      expect(report.graceful + report.aborted).toBe(100)
      expect(elapsed).toBeGreaterThanOrEqual(1950)
      expect(elapsed).toBeLessThan(2000 + 1500)
      expect(conns.length).toBe(100)
      for (const conn of conns) {
        expect(conn.unsafeStats().transport.socket?.destroyed).toBe(true)
        expect(conn.unsafeStats().state).toBe("Closed")
      }
      expect(yield* server.sessions).toEqual([])
      expect((yield* server.stats).active).toBe(0)
      // every client saw the end of its session
      yield* Effect.promise(() => Promise.all(clients.map((c) => c.until(() => c.ended || c.closed))))
        .pipe(Effect.timeout("5 seconds"))
      // and nothing is accepted any more
      const late = yield* Effect.either(
        Effect.async<void, Error>((resume) => {
          const s = Net.connect({ host: "127.0.0.1", port: server.address.port })
          s.once("connect", () => {
            s.destroy()
            resume(Effect.void)
          })
          s.once("error", (e) => resume(Effect.fail(e)))
        })
      )
      expect(late._tag).toBe("Left")
    }).pipe(Effect.scoped))

  it.scoped("shutdown is bounded by shutdownTimeout (TestClock): graceful sessions go at once, stubborn ones are aborted", () =>
    Effect.gen(function*() {
      const server = yield* Listener.serve(
        { port: 0, shutdownTimeout: "1 second", lingerTimeout: "1 minute" },
        (conn) => Effect.asVoid(conn.closed)
      )
      for (let i = 0; i < 5; i++) yield* connect(server.address.port, { stubborn: i < 2 })
      yield* registryUntil(server, (rows) => rows.length === 5)
      const shutdown = yield* Effect.fork(server.shutdown)
      // the three well-behaved clients answer our FIN: their sessions end without any time passing
      yield* registryUntil(server, (rows) => rows.length === 2 && rows.every((r) => r.state === "Closing"))
      yield* sleeperAt(1000)
      yield* TestClock.adjust("999 millis")
      expect(shutdown.unsafePoll()).toBeNull()
      expect((yield* server.sessions).length).toBe(2)
      yield* TestClock.adjust("1 millis")
      const report = yield* Fiber.join(shutdown)
      expect(report).toEqual({ sessions: 5, graceful: 3, aborted: 2, millis: 1000 })
      expect(yield* server.sessions).toEqual([])
      // idempotent
      expect(yield* server.shutdown).toEqual(report)
    }))

  it.scoped("shutdown: each stubborn session's linger ends exactly at lingerTimeout, all on the listener's shared timers (TestClock)", () =>
    Effect.gen(function*() {
      const server = yield* Listener.serve(
        { port: 0, shutdownTimeout: "10 seconds", lingerTimeout: "3 seconds", sessionGrace: "10 seconds" },
        (conn) => Stream.runDrain(conn.incoming)
      )
      for (let i = 0; i < 5; i++) yield* connect(server.address.port, { stubborn: i < 3 })
      yield* registryUntil(server, (rows) => rows.length === 5)
      const shutdown = yield* Effect.fork(server.shutdown)
      // the cooperative clients answer our FIN at once; the stubborn ones linger
      yield* registryUntil(server, (rows) => rows.length === 3 && rows.every((r) => r.state === "Closing"))
      yield* sleeperAt(3000) // one sleeper for the three lingers
      yield* TestClock.adjust("2999 millis")
      expect(shutdown.unsafePoll()).toBeNull()
      expect((yield* server.sessions).length).toBe(3)
      yield* TestClock.adjust("1 millis")
      const report = yield* Fiber.join(shutdown)
      expect(report).toEqual({ sessions: 5, graceful: 5, aborted: 0, millis: 3000 })
      expect(yield* server.sessions).toEqual([])
    }))

  it.scoped("a shutdown run by an interrupted fiber (the app's scope closing on SIGINT) is still graceful, bounded and reported (TestClock)", () =>
    Effect.gen(function*() {
      const ready = yield* Deferred.make<Listener.Server>()
      const app = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const server = yield* Listener.serve(
          { port: 0, shutdownTimeout: "1 second", lingerTimeout: "1 minute" },
          (conn) => Effect.asVoid(conn.closed)
        )
        yield* Deferred.succeed(ready, server)
        return yield* Effect.never
      })))
      const server = yield* Deferred.await(ready)
      const good = yield* connect(server.address.port)
      const stubborn = yield* connect(server.address.port, { stubborn: true })
      yield* registryUntil(server, (rows) => rows.length === 2)
      // interrupting the app closes its scope: the listener's finalizer runs the shutdown on an interrupted fiber
      const stop = yield* Effect.fork(Fiber.interrupt(app))
      yield* until(good, () => good.ended) // our FIN reached the cooperative client
      yield* registryUntil(server, (rows) => rows.length === 1)
      yield* sleeperAt(1000)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(stop)
      yield* until(stubborn, () => stubborn.ended) // aborted: its socket was destroyed
      // the shutdown ran to its end and reported (a skipped one would leave this waiting forever)
      expect(yield* server.shutdown).toEqual({ sessions: 2, graceful: 1, aborted: 1, millis: 1000 })
    }))

  it.scoped("handshakeTimeout (TestClock): a session that does not complete its handshake is closed, with a warning annotated as the session's", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const reasons = new Map<string, DisconnectReason.DisconnectReason>()
      const server = yield* Listener.serve({ port: 0, handshakeTimeout: "5 seconds" }, (conn) =>
        Effect.gen(function*() {
          yield* Effect.forkScoped(Effect.flatMap(conn.closed, (r) => Effect.sync(() => reasons.set(conn.id, r))))
          yield* Stream.runForEach(conn.incoming, (frame) =>
            Framing.text(frame) === "hello"
              ? Effect.zipRight(Listener.handshakeDone, conn.send(Framing.utf8("welcome")))
              : conn.send(frame))
        }).pipe(Effect.scoped, Effect.ignore))
      const polite = yield* connect(server.address.port)
      const silent = yield* connect(server.address.port)
      const silentPort = silent.socket.localPort
      yield* registryUntil(server, (rows) => rows.length === 2 && rows.every((r) => r.state === "Handshaking"))
      polite.socket.write(lp("hello"))
      yield* until(polite, () => polite.received >= 11)
      const rows = yield* registryUntil(server, (rows) => rows.some((r) => r.handshakeDone))
      const politeId = rows.find((r) => r.handshakeDone)!.id
      yield* TestClock.adjust("4999 millis")
      expect((yield* server.sessions).length).toBe(2)
      yield* TestClock.adjust("1 millis")
      yield* until(silent, () => silent.ended || silent.closed)
      yield* registryUntil(server, (rows) => rows.length === 1)
      const [survivor] = yield* server.sessions
      expect(survivor!.id).toBe(politeId)
      expect(survivor!.state).toBe("Active")
      expect([...reasons.values()].map((r) => r._tag)).toEqual(["HandshakeTimeout"])
      expect((yield* server.stats).handshakeTimeouts).toBe(1)
      // the warning carries the session's annotations (the timer runs in the listener's fiber, not the session's)
      const silentId = [...reasons.keys()][0]!
      const isWarning = (l: LogLine) => l.level === "WARN" && l.message.startsWith("handshake not completed")
      yield* Testing.eventually(() => logs.lines.some(isWarning), { what: "the handshake warning" })
      const warning = logs.lines.find(isWarning)!
      expect(warning.message).toBe("handshake not completed within 5s")
      expect(warning.annotations).toMatchObject({
        session: silentId,
        connection: silentId,
        reason: "HandshakeTimeout",
        remote: `127.0.0.1:${silentPort}`
      })
      // the polite session is still served
      polite.socket.write(lp("again"))
      yield* until(polite, () => polite.received >= 11 + 9)
    }).pipe(Effect.provide(logs.layer))
  })

  it.live("registry: a snapshot with counters, and a stream of changes from Active to gone", () =>
    Effect.gen(function*() {
      const server = yield* Listener.serve({ port: 0 }, (conn) =>
        Stream.runForEach(conn.incoming, (f) => conn.send(f)).pipe(Effect.ignore))
      const seen: Array<ReadonlyArray<Listener.SessionInfo>> = []
      const watcher = yield* Effect.fork(
        Stream.runForEach(server.sessionChanges, (rows) => Effect.sync(() => seen.push(rows)))
      )
      const c = yield* connect(server.address.port)
      c.socket.write(lp("abc"))
      yield* until(c, () => c.received >= 7).pipe(Effect.timeout("5 seconds"))
      // the writer counts its bytes when the write completes, a moment after the client may have them
      yield* Effect.repeat(server.sessions, {
        schedule: Schedule.spaced("5 millis"),
        until: (rows) => rows[0]?.bytesOut === 7
      }).pipe(Effect.timeout("5 seconds"))
      const [row] = yield* server.sessions
      expect(row).toMatchObject({ kind: "tcp", state: "Active", bytesIn: 7, bytesOut: 7, queueDepth: 0 })
      expect(row!.remoteAddress).toBe(`127.0.0.1:${c.socket.localPort}`)
      c.socket.end()
      yield* registryUntil(server, (rows) => rows.length === 0).pipe(Effect.timeout("5 seconds"))
      yield* Fiber.interrupt(watcher)
      const states = seen.map((rows) => rows.map((r) => r.state).join(","))
      expect(states[0]).toBe("")
      expect(states).toContain("Active")
      expect(states.at(-1)).toBe("")
      expect(states.indexOf("Active")).toBeLessThan(states.lastIndexOf(""))
    }).pipe(Effect.scoped))

  it.live("TLS: sessions over TLS, and the Listener as a Layer", () =>
    Effect.gen(function*() {
      const { cert, key } = selfSigned()
      const layer = Listener.layer({ port: 0, tls: { cert, key } }, (conn) =>
        Stream.runForEach(conn.incoming, (f) => conn.send(f)).pipe(Effect.ignore))
      const context = yield* Layer.build(layer)
      const server = yield* Effect.provide(Listener.Listener, context)
      const reply = yield* Effect.async<Buffer, Error>((resume) => {
        const s = Tls.connect({ host: "127.0.0.1", port: server.address.port, ca: [cert], servername: "localhost" })
        let acc = Buffer.alloc(0)
        s.on("data", (d: Buffer) => {
          acc = Buffer.concat([acc, d])
          if (acc.length >= 9) {
            s.end()
            resume(Effect.succeed(acc))
          }
        })
        s.once("secureConnect", () => s.write(lp("hello")))
        s.once("error", (e) => resume(Effect.fail(e)))
      }).pipe(Effect.timeout("5 seconds"))
      expect(reply.subarray(4).toString()).toBe("hello")
      const rows = yield* server.sessions
      expect(rows.length <= 1).toBe(true)
      expect((yield* server.stats).accepted).toBe(1)
    }).pipe(Effect.scoped))

  it.live("a failing handler ends its session, not the server", () =>
    Effect.gen(function*() {
      const server = yield* Listener.serve({ port: 0 }, () => Effect.fail("boom"))
      const c = yield* connect(server.address.port)
      yield* until(c, () => c.ended || c.closed).pipe(Effect.timeout("5 seconds"))
      yield* registryUntil(server, (rows) => rows.length === 0).pipe(Effect.timeout("5 seconds"))
      const d = yield* connect(server.address.port)
      yield* until(d, () => d.ended || d.closed).pipe(Effect.timeout("5 seconds"))
      yield* registryUntil(server, (rows) => rows.length === 0).pipe(Effect.timeout("5 seconds"))
      expect((yield* server.stats)).toMatchObject({ accepted: 2, completed: 2, active: 0 })
    }).pipe(Effect.scoped))

  it.live("a server is told by Listener.isServer, and shows its address and counters (toJSON, toString, inspect)", () =>
    Effect.gen(function*() {
      const server = yield* Listener.serve({ port: 0 }, (conn) => Stream.runDrain(conn.incoming).pipe(Effect.ignore))
      expect(Listener.isServer(server)).toBe(true)
      expect(server[Listener.TypeId]).toBe(Listener.TypeId)
      for (const other of [undefined, null, 0, "server", {}, { address: server.address }, { ...server }]) {
        expect(Listener.isServer(other)).toBe(false)
      }
      const c = yield* connect(server.address.port)
      yield* registryUntil(server, (rows) => rows.length === 1).pipe(Effect.timeout("5 seconds"))
      const json = server.toJSON()
      expect(json).toEqual({
        _id: "Server",
        address: { host: "127.0.0.1", port: server.address.port },
        stats: { ...server.unsafeStats(), active: 1, accepted: 1, completed: 0 }
      })
      expect(JSON.parse(JSON.stringify(server))).toEqual(json)
      expect(JSON.parse(String(server))).toEqual(json)
      expect(Util.inspect(server)).toBe(Util.inspect(json))
      c.socket.end()
      yield* registryUntil(server, (rows) => rows.length === 0).pipe(Effect.timeout("5 seconds"))
      expect(server.toJSON()).toMatchObject({ stats: { active: 0, completed: 1 } })
    }).pipe(Effect.scoped))

  it.live("spans: the handler runs under tether.session, the parent of tether.handshake (ended by handshakeDone) and of the connection's tether.close.graceful", () =>
    Effect.gen(function*() {
      const spans: Array<Tracer.Span> = []
      const native = yield* Effect.tracer
      const tracer = Tracer.make({
        span: (...args) => {
          const span = native.span(...args)
          spans.push(span)
          return span
        },
        context: native.context
      })
      const handlerSpan = yield* Deferred.make<string>()
      const server = yield* Listener.serve({ port: 0, handshakeTimeout: "5 seconds" }, (conn) =>
        Effect.gen(function*() {
          yield* Deferred.succeed(handlerSpan, (yield* Effect.currentSpan).name)
          yield* Listener.handshakeDone
          yield* Stream.runDrain(conn.incoming)
        }).pipe(Effect.ignore)).pipe(Effect.withTracer(tracer))
      const c = yield* connect(server.address.port)
      expect(yield* Deferred.await(handlerSpan).pipe(Effect.timeout("5 seconds"))).toBe("tether.session")
      c.socket.end()
      yield* registryUntil(server, (rows) => rows.length === 0).pipe(Effect.timeout("5 seconds"))
      const byName = (name: string) => spans.find((s) => s.name === name)!
      const parentName = (s: Tracer.Span) => Option.getOrUndefined(Option.map(s.parent, (p) => (p as Tracer.Span).name))
      const session = byName("tether.session")
      expect(session.attributes.get("tether.role")).toBe("server")
      expect(session.attributes.get("tether.connection")).toBe("session-1")
      expect(parentName(byName("tether.handshake"))).toBe("tether.session")
      expect(parentName(byName("tether.close.graceful"))).toBe("tether.session")
      for (const s of [session, byName("tether.handshake"), byName("tether.close.graceful")]) {
        expect(s.status._tag === "Ended" && s.status.exit._tag).toBe("Success")
      }
    }).pipe(Effect.scoped))

  it.live("Listener.Session: its id, remote address, connection and handshakeDone; it shows those (toJSON, toString, inspect), not the listener's internals", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<{ session: Listener.Session; conn: Connection.Connection }>()
      const server = yield* Listener.serve({ port: 0 }, (conn) =>
        Effect.flatMap(Listener.Session, (session) =>
          Effect.zipRight(Deferred.succeed(seen, { session, conn }), Stream.runDrain(conn.incoming))).pipe(Effect.ignore))
      const c = yield* connect(server.address.port)
      const { conn, session } = yield* Deferred.await(seen).pipe(Effect.timeout("5 seconds"))
      expect(session.id).toBe(conn.id)
      expect(session.remoteAddress).toBe(`127.0.0.1:${c.socket.localPort}`)
      expect(session.connection).toBe(conn)
      yield* session.handshakeDone // no handshake timeout: nothing to do
      const json = { _id: "Session", id: conn.id, remoteAddress: session.remoteAddress, connection: JSON.parse(JSON.stringify(conn)) }
      expect(JSON.parse(JSON.stringify(session))).toEqual(json)
      expect(JSON.parse(String(session))).toEqual(json)
      expect(Util.inspect(session)).toBe(Util.inspect({ ...json, connection: conn }))
    }).pipe(Effect.scoped))
})
