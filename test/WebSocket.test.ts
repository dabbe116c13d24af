/**
 * WebSocket over loopback: the server side is checked with a raw client that
 * parses every byte itself; the client side against our own server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Logger, Option, Queue, Stream, TestClock } from "effect"
import { Connection, DisconnectReason, type Framed, Listener, Watchdog, WebSocket } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { selfSigned } from "./helpers/tls.js"
import { connectRaw, OP_BINARY, OP_CLOSE, OP_PONG, OP_TEXT, type RawWs } from "./helpers/wsRaw.js"

const raw = (port: number, options?: Parameters<typeof connectRaw>[1]) =>
  Effect.promise(() => connectRaw(port, options))

const rawWs = (port: number, options?: Parameters<typeof connectRaw>[1]) =>
  Effect.flatMap(raw(port, options), (r) => {
    if (r.ws === undefined) return Effect.dieMessage(`upgrade failed: ${r.status}`)
    const ws = r.ws
    return Effect.acquireRelease(Effect.succeed(ws), () => Effect.sync(() => ws.socket.destroy()))
  })

const until = (ws: RawWs, pred: () => boolean) => Effect.promise(() => ws.until(pred))

/** Waits (on events, not time) until the registry satisfies `pred`. */
const registryUntil = Testing.awaitSessions

/**
 * Waits until some fiber sleeps until `at` (TestClock millis): a fiber forked or
 * woken just now may not have reached its next sleep yet.
 */
const sleeperAt = (at: number) => Testing.awaitSleeper(at)

const texts = (ws: RawWs) => ws.frames.filter((f) => f.opcode === OP_TEXT).map((f) => f.payload.toString())

const echo = (conn: WebSocket.Connection) =>
  Stream.runForEach(WebSocket.messages(conn), (m) =>
    conn.send(m._tag === "Text" ? WebSocket.text(`echo:${m.text}`) : WebSocket.binary(m.data))).pipe(Effect.orDie)

describe("WebSocket server (raw client)", () => {
  it.live("two writers regression: 200 concurrent sends and 200 client pings → every frame parses, order kept, one pong each", () =>
    Effect.gen(function*() {
      const server = yield* WebSocket.serve({ port: 0 }, (conn) =>
        Effect.gen(function*() {
          // 10 concurrent sender fibers, 20 sends each; send k is released by the client's trigger "go-k",
          // which the client writes right after its ping "p-k": data and pongs are in flight together
          const triggers = yield* Effect.forEach(Array.from({ length: 10 }), () => Queue.bounded<number>(32))
          for (let f = 0; f < 10; f++) {
            yield* Effect.forkScoped(Effect.gen(function*() {
              for (let j = 0; j < 20; j++) {
                yield* Queue.take(triggers[f]!)
                yield* conn.send(WebSocket.text(`msg-${f}-${j}`))
              }
            }))
          }
          yield* Stream.runForEach(WebSocket.messages(conn), (m) => {
            if (m._tag === "Text" && m.text.startsWith("go-")) {
              const k = Number(m.text.slice(3))
              return Queue.offer(triggers[k % 10]!, k)
            }
            return conn.send(m._tag === "Text" ? WebSocket.text(`echo:${m.text}`) : WebSocket.binary(m.data))
          })
        }).pipe(Effect.scoped, Effect.orDie))
      const ws = yield* rawWs(server.address.port)
      yield* Effect.promise(async () => {
        for (let k = 0; k < 200; k++) {
          ws.ping(`p-${k}`)
          ws.sendText(`go-${k}`)
          if (k % 10 === 9) await new Promise((r) => setImmediate(r))
        }
      })
      yield* until(ws, () => ws.frames.length >= 400 || ws.parseError !== undefined).pipe(Effect.timeout("10 seconds"))
      expect(ws.parseError).toBeUndefined()
      expect(ws.leftover).toBe(0)
      expect(ws.frames.length).toBe(400)
      expect(ws.frames.every((f) => f.fin && (f.opcode === OP_TEXT || f.opcode === OP_PONG))).toBe(true)
      // every send arrived exactly once, and each sender's messages in its send order
      const got = texts(ws)
      expect(new Set(got).size).toBe(200)
      for (let f = 0; f < 10; f++) {
        expect(got.filter((t) => t.startsWith(`msg-${f}-`))).toEqual(Array.from({ length: 20 }, (_, j) => `msg-${f}-${j}`))
      }
      // each ping answered by exactly one pong, ahead of the data it preceded on the wire
      const payloads = ws.frames.map((f) => f.payload.toString())
      const pongs = ws.frames.filter((f) => f.opcode === OP_PONG).map((f) => f.payload.toString())
      expect(pongs.length).toBe(200)
      expect(new Set(pongs)).toEqual(new Set(Array.from({ length: 200 }, (_, k) => `p-${k}`)))
      for (let k = 0; k < 200; k++) {
        expect(payloads.indexOf(`p-${k}`)).toBeLessThan(payloads.indexOf(`msg-${k % 10}-${Math.floor(k / 10)}`))
      }
      // healthy after: a round trip still works and the session is active
      ws.sendText("after")
      yield* until(ws, () => texts(ws).includes("echo:after")).pipe(Effect.timeout("5 seconds"))
      const rows = yield* server.sessions
      expect(rows.map((r) => r.state)).toEqual(["Active"])
      expect(ws.parseError).toBeUndefined()
      // a WebSocket server is a Listener.Server like any other, and shows its address and counters
      expect(Listener.isServer(server)).toBe(true)
      expect(server.toJSON()).toEqual({ _id: "Server", address: server.address, stats: server.unsafeStats() })
      expect(server.unsafeStats()).toMatchObject({ active: 1, accepted: 1 })
    }).pipe(Effect.scoped))

  it.scoped("stale deadline: idle far beyond writeTimeout, then a ping → pong, session survives (twice)", () =>
    Effect.gen(function*() {
      const server = yield* WebSocket.serve({ port: 0, writeTimeout: "1 second" }, echo)
      const ws = yield* rawWs(server.address.port)
      ws.sendText("x")
      yield* until(ws, () => texts(ws).includes("echo:x"))
      for (const round of [1, 2]) {
        yield* TestClock.adjust("10 seconds") // idle for 10× the write timeout
        ws.ping(`stale-${round}`)
        yield* until(ws, () => ws.frames.some((f) => f.opcode === OP_PONG && f.payload.toString() === `stale-${round}`))
        const rows = yield* server.sessions
        expect(rows.length).toBe(1)
        expect(rows[0]!.state).toBe("Active")
      }
      expect(ws.frames.filter((f) => f.opcode === OP_PONG).length).toBe(2)
      ws.sendText("y")
      yield* until(ws, () => texts(ws).includes("echo:y"))
      expect(ws.closed).toBe(false)
    }))

  it.live("batching: 1000 queued messages leave in a handful of writes through the Framed seam, in order", () =>
    Effect.gen(function*() {
      const got: Array<string> = []
      const all = yield* Deferred.make<void>()
      const server = yield* WebSocket.serve({ port: 0 }, (conn) =>
        Stream.runForEach(conn.incoming, (m) =>
          Effect.suspend(() => {
            if (m._tag === "Text") got.push(m.text)
            return got.length === 1000 ? Deferred.succeed(all, undefined) : Effect.void
          })))
      // the client's seam, counted: every `write` is one batch handed to the socket at once
      const framed = yield* WebSocket.connectFramed(`ws://127.0.0.1:${server.address.port}/`)
      let writes = 0
      // a decorator of the write overrides both forms of it (the connection's writer uses `unsafeWrite` if present)
      const counted: Framed.Framed<WebSocket.Message, WebSocket.Message> = {
        ...framed,
        write: (batch) => Effect.suspend(() => (writes++, framed.write(batch))),
        unsafeWrite: (batch, callback) => {
          writes++
          framed.unsafeWrite!(batch, callback)
        }
      }
      const conn = yield* Connection.fromFramed(counted)
      yield* conn.sendAll(Array.from({ length: 1000 }, (_, i) => WebSocket.text(`b-${i}`)))
      yield* Deferred.await(all).pipe(Effect.timeout("5 seconds"))
      expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => `b-${i}`))
      expect(writes).toBeGreaterThan(0)
      expect(writes).toBeLessThanOrEqual(20)
    }).pipe(Effect.scoped))

  it.live("text and binary messages keep their kind both ways", () =>
    Effect.gen(function*() {
      const server = yield* WebSocket.serve({ port: 0 }, echo)
      const ws = yield* rawWs(server.address.port)
      ws.sendText("héllo")
      ws.send(OP_BINARY, Buffer.from([0, 1, 2, 255]))
      yield* until(ws, () => ws.frames.length >= 2).pipe(Effect.timeout("5 seconds"))
      expect(ws.frames[0]!.opcode).toBe(OP_TEXT)
      expect(ws.frames[0]!.payload.toString()).toBe("echo:héllo")
      expect(ws.frames[1]!.opcode).toBe(OP_BINARY)
      expect([...ws.frames[1]!.payload]).toEqual([0, 1, 2, 255])
    }).pipe(Effect.scoped))

  it.live("bad input: an oversized message → Close 1009, session ends with FrameTooLarge", () =>
    Effect.gen(function*() {
      const closed = yield* Deferred.make<DisconnectReason.DisconnectReason>()
      const server = yield* WebSocket.serve({ port: 0, maxPayload: 1024 }, (conn) =>
        Effect.zipRight(Effect.forkScoped(echo(conn)), Effect.flatMap(conn.closed, (r) => Deferred.succeed(closed, r)))
          .pipe(Effect.scoped))
      const ws = yield* rawWs(server.address.port)
      ws.sendText("a".repeat(1019)) // echoed as "echo:" + 1019 = exactly the limit: fine
      yield* until(ws, () => texts(ws).length === 1).pipe(Effect.timeout("5 seconds"))
      ws.sendText("b".repeat(1025))
      yield* until(ws, () => ws.closeFrame() !== undefined).pipe(Effect.timeout("5 seconds"))
      expect(ws.closeFrame()!.code).toBe(1009)
      ws.close(1009)
      ws.socket.end() // a well-behaved client closes TCP after the close handshake
      const reason = yield* Deferred.await(closed).pipe(Effect.timeout("5 seconds"))
      expect(reason._tag).toBe("FrameTooLarge")
      yield* until(ws, () => ws.ended || ws.closed).pipe(Effect.timeout("5 seconds"))
      expect(ws.parseError).toBeUndefined()
    }).pipe(Effect.scoped))

  it.live("bad input: invalid UTF-8 in a text message → Close 1007, session ends with MalformedFrame", () =>
    Effect.gen(function*() {
      const closed = yield* Deferred.make<DisconnectReason.DisconnectReason>()
      const server = yield* WebSocket.serve({ port: 0 }, (conn) =>
        Effect.zipRight(Effect.forkScoped(echo(conn)), Effect.flatMap(conn.closed, (r) => Deferred.succeed(closed, r)))
          .pipe(Effect.scoped))
      const ws = yield* rawWs(server.address.port)
      ws.send(OP_TEXT, Buffer.from([0x68, 0xff, 0xfe, 0x69]))
      yield* until(ws, () => ws.closeFrame() !== undefined).pipe(Effect.timeout("5 seconds"))
      expect(ws.closeFrame()!.code).toBe(1007)
      ws.close(1007)
      ws.socket.end()
      const reason = yield* Deferred.await(closed).pipe(Effect.timeout("5 seconds"))
      expect(reason._tag).toBe("MalformedFrame")
      yield* until(ws, () => ws.ended || ws.closed).pipe(Effect.timeout("5 seconds"))
    }).pipe(Effect.scoped))

  it.live("bad input: a failed upgrade hook → its HTTP status, no session created", () =>
    Effect.gen(function*() {
      let handled = 0
      const server = yield* WebSocket.serve({
        port: 0,
        upgrade: (req) =>
          req.headers["authorization"] === "Bearer ok"
            ? Effect.void
            : Effect.fail(new WebSocket.UpgradeRejected({ status: 403, message: "forbidden" }))
      }, () => Effect.sync(() => handled++))
      const refused = yield* raw(server.address.port)
      expect(refused.status).toBe(403)
      expect(refused.ws).toBeUndefined()
      expect(handled).toBe(0)
      expect(yield* server.sessions).toEqual([])
      const stats = yield* server.stats
      expect(stats).toMatchObject({ accepted: 0, rejected: 1, active: 0 })
      // with the right credentials the upgrade goes through
      const ok = yield* raw(server.address.port, { headers: { authorization: "Bearer ok" } })
      expect(ok.status).toBe(101)
      ok.ws?.socket.destroy()
    }).pipe(Effect.scoped))

  it.live("the peer's Close is the read EOF: queued messages go out first, then our Close (through the writer)", () =>
    Effect.gen(function*() {
      const outcome = yield* Deferred.make<Connection.CloseOutcome<WebSocket.Message>>()
      let accepted = 0
      const server = yield* WebSocket.serve({ port: 0 }, (conn) =>
        Effect.gen(function*() {
          // sends until the peer's Close closes the gate
          for (let i = 0; i < 5000; i++) {
            const ok = yield* conn.send(WebSocket.text(`m-${i}-${"x".repeat(500)}`)).pipe(Effect.isSuccess)
            if (!ok) break
            accepted++
          }
          yield* Deferred.succeed(outcome, yield* conn.outcome)
        }))
      const ws = yield* rawWs(server.address.port)
      yield* until(ws, () => ws.frames.length > 0).pipe(Effect.timeout("5 seconds"))
      ws.close(1000, "client done")
      const o = yield* Deferred.await(outcome).pipe(Effect.timeout("10 seconds"))
      yield* until(ws, () => ws.closeFrame() !== undefined).pipe(Effect.timeout("5 seconds"))
      expect(ws.parseError).toBeUndefined()
      const closeIdx = ws.frames.findIndex((f) => f.opcode === OP_CLOSE)
      expect(closeIdx).toBe(ws.frames.length - 1) // the Close is last: nothing after it
      expect(accepted).toBeGreaterThan(0)
      expect(o.undelivered).toEqual([]) // everything accepted before the gate closed went out before our Close
      expect(o.delivered).toBe(accepted)
      expect(texts(ws).length).toBe(accepted)
      expect(texts(ws)[accepted - 1]).toBe(`m-${accepted - 1}-${"x".repeat(500)}`)
      expect(ws.closeFrame()!.code).toBe(1000) // our Close echoes the peer's code
      expect(o.reason._tag).toBe("PeerClosed")
      expect(o.peerEof).toBe(true)
    }).pipe(Effect.scoped))

  it.scoped("server close: queued messages, then Close with our code; the handshake is bounded by lingerTimeout", () =>
    Effect.gen(function*() {
      const outcome = yield* Deferred.make<Connection.CloseOutcome<WebSocket.Message>>()
      const server = yield* WebSocket.serve({ port: 0, lingerTimeout: "5 seconds" }, (conn) =>
        Effect.gen(function*() {
          for (let i = 0; i < 10; i++) yield* conn.send(WebSocket.text(`bye-${i}`))
          yield* Deferred.succeed(outcome, yield* WebSocket.close(conn, 4000, "kicked"))
        }))
      const ws = yield* rawWs(server.address.port)
      // the client never answers our Close
      yield* until(ws, () => ws.closeFrame() !== undefined)
      expect(texts(ws)).toEqual(Array.from({ length: 10 }, (_, i) => `bye-${i}`))
      expect(ws.closeFrame()).toEqual({ code: 4000, reason: "kicked" })
      yield* TestClock.adjust("4999 millis")
      expect(ws.closed).toBe(false)
      expect(yield* Deferred.isDone(outcome)).toBe(false)
      yield* TestClock.adjust("1 millis")
      const o = yield* Deferred.await(outcome)
      expect(o.lingerExpired).toBe(true)
      expect(o.closeMillis).toBe(5000)
      yield* until(ws, () => ws.ended || ws.closed)
    }))

  it.scoped("heartbeat: pings come from the writer; a silent peer gets Close 1011, then is aborted with PeerTimeout", () =>
    Effect.gen(function*() {
      const closed = yield* Deferred.make<DisconnectReason.DisconnectReason>()
      const server = yield* WebSocket.serve(
        { port: 0, heartbeat: { interval: "10 seconds", timeout: "5 seconds" } },
        (conn) =>
          Effect.zipRight(Effect.forkScoped(echo(conn)), Effect.flatMap(conn.closed, (r) => Deferred.succeed(closed, r)))
            .pipe(Effect.scoped)
      )
      const ws = yield* rawWs(server.address.port)
      yield* registryUntil(server, (rows) => rows.length === 1)
      yield* sleeperAt(10_000) // the heartbeat fiber is waiting for its first tick
      const pings = () => ws.frames.filter((f) => f.opcode === 9)
      // first ping at 10 s: answered
      yield* TestClock.adjust("10 seconds")
      yield* until(ws, () => pings().length === 1)
      expect(pings()[0]!.payload.toString()).toBe("hb-1")
      ws.send(OP_PONG, pings()[0]!.payload)
      ws.sendText("pong sent") // the echo proves the server has read the pong
      yield* until(ws, () => texts(ws).includes("echo:pong sent"))
      yield* TestClock.adjust("5 seconds")
      expect(yield* Deferred.isDone(closed)).toBe(false)
      yield* sleeperAt(25_000) // spaced 10 s until the next tick
      // second ping at 25 s: not answered → PeerTimeout at 30 s
      yield* TestClock.adjust("10 seconds")
      yield* until(ws, () => pings().length === 2)
      yield* sleeperAt(30_000)
      yield* TestClock.adjust("4999 millis")
      expect(yield* Deferred.isDone(closed)).toBe(false)
      yield* TestClock.adjust("1 millis")
      // the timeout sends a proper Close 1011 (not a bare TCP reset: the peer would see 1006)
      yield* until(ws, () => ws.closeFrame() !== undefined)
      expect(ws.closeFrame()).toEqual({ code: 1011, reason: "heartbeat timeout" })
      // then the connection is aborted at once (no linger for a peer presumed gone)
      const reason = yield* Deferred.await(closed)
      expect(reason._tag).toBe("PeerTimeout")
      yield* until(ws, () => ws.ended || ws.closed)
      expect(ws.parseError).toBeUndefined()
    }))
})

describe("WebSocket server: seats, watchdogs, TLS", () => {
  it.live("seats: beyond maxConnections the upgrade gets 503, logged as a warning and counted; no session", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(String(message))
      })
      const server = yield* WebSocket.serve({ port: 0, maxConnections: 1 }, echo).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      const first = yield* rawWs(server.address.port)
      yield* registryUntil(server, (rows) => rows.length === 1)
      const second = yield* raw(server.address.port)
      expect(second.status).toBe(503)
      const stats = yield* server.stats
      expect(stats).toMatchObject({ accepted: 1, refused: 1, active: 1 })
      expect(warnings.some((w) => w.includes("refused") && w.includes("seats"))).toBe(true)
      // the first session is unaffected
      first.sendText("still")
      yield* until(first, () => texts(first).includes("echo:still")).pipe(Effect.timeout("5 seconds"))
    }).pipe(Effect.scoped))

  it.live("watchdogs apply: a WebSocket peer that stops reading is reaped by the send-stall watchdog", () =>
    Effect.gen(function*() {
      const conns: Array<WebSocket.Connection> = []
      const chunk = new Uint8Array(64 * 1024)
      const server = yield* WebSocket.serve({
        port: 0,
        writeTimeout: "1 minute",
        watchdogs: [Watchdog.sendStall({ probeInterval: "50 millis", stallTimeout: "300 millis" })]
      }, (conn) =>
        Effect.gen(function*() {
          conns.push(conn)
          for (;;) yield* conn.send(WebSocket.binary(chunk))
        }).pipe(Effect.ignore))
      const ws = yield* rawWs(server.address.port)
      yield* until(ws, () => ws.frames.length > 0).pipe(Effect.timeout("5 seconds"))
      ws.socket.pause()
      yield* registryUntil(server, (rows) => rows.length === 0).pipe(Effect.timeout("10 seconds"))
      expect((yield* conns[0]!.closed)._tag).toBe("SendStalled")
      expect(conns[0]!.unsafeStats().transport.socket?.destroyed).toBe(true)
    }).pipe(Effect.scoped))

  it.live("shutdown: every session gets Close 1001 after its queued messages; graceful when clients answer", () =>
    Effect.gen(function*() {
      const server = yield* WebSocket.serve({ port: 0, shutdownTimeout: "5 seconds" }, (conn) =>
        Effect.zipRight(conn.send(WebSocket.text("hi")), Effect.asVoid(conn.closed)))
      const clients: Array<RawWs> = []
      for (let i = 0; i < 5; i++) clients.push(yield* rawWs(server.address.port))
      yield* registryUntil(server, (rows) => rows.length === 5)
      // well-behaved clients: answer the Close, then close TCP
      for (const c of clients) {
        void c.until(() => c.closeFrame() !== undefined).then(() => {
          c.close(c.closeFrame()!.code)
          c.socket.end()
        })
      }
      const report = yield* server.shutdown.pipe(Effect.timeout("5 seconds"))
      expect(report).toMatchObject({ sessions: 5, graceful: 5, aborted: 0 })
      for (const c of clients) {
        expect(c.parseError).toBeUndefined()
        expect(texts(c)).toEqual(["hi"])
        expect(c.closeFrame()).toEqual({ code: 1001, reason: "server shutdown" })
      }
    }).pipe(Effect.scoped))

  it.live("wss: TLS server and client", () =>
    Effect.gen(function*() {
      const { cert, key } = selfSigned()
      const server = yield* WebSocket.serve({ port: 0, tls: { cert, key } }, echo)
      const conn = yield* WebSocket.connect(`wss://localhost:${server.address.port}/`, {
        tls: { ca: [cert] },
        handshakeTimeout: "5 seconds"
      })
      yield* conn.send(WebSocket.text("secret"))
      const reply = yield* WebSocket.messages(conn).pipe(Stream.runHead, Effect.timeout("5 seconds"))
      expect(reply).toEqual(Option.some(WebSocket.Message.Text({ text: "echo:secret" })))
      const [row] = yield* server.sessions
      expect(row?.kind).toBe("websocket")
      const outcome = yield* conn.close()
      expect(outcome.peerEof).toBe(true)
    }).pipe(Effect.scoped))
})

describe("WebSocket client", () => {
  it.live("connect: text and binary round trip, with and without permessage-deflate", () =>
    Effect.gen(function*() {
      for (const deflate of [false, true]) {
        const server = yield* WebSocket.serve({ port: 0, perMessageDeflate: deflate }, echo)
        const conn = yield* WebSocket.connect(`ws://127.0.0.1:${server.address.port}/`, {
          perMessageDeflate: deflate,
          handshakeTimeout: "5 seconds"
        })
        const big = "z".repeat(100_000)
        yield* conn.send(WebSocket.text("hi"))
        yield* conn.send(WebSocket.binary(new Uint8Array([9, 8, 7])))
        yield* conn.send(WebSocket.text(big))
        const got = yield* WebSocket.messages(conn).pipe(Stream.take(3), Stream.runCollect, Effect.timeout("5 seconds"))
        const [a, b, c] = [...got]
        expect(a).toEqual(WebSocket.Message.Text({ text: "echo:hi" }))
        expect(b!._tag).toBe("Binary")
        expect([...(b as { data: Uint8Array }).data]).toEqual([9, 8, 7])
        expect(c).toEqual(WebSocket.Message.Text({ text: `echo:${big}` }))
        const outcome = yield* conn.close()
        expect(outcome.peerEof).toBe(true)
        expect(outcome.lingerExpired).toBe(false)
        expect(WebSocket.closeInfo(conn)?.sent?.code).toBe(1000)
        expect(WebSocket.closeInfo(conn)?.received?.code).toBe(1000)
        yield* server.shutdown
      }
    }).pipe(Effect.scoped))

  it.live("connect: a refused upgrade fails with the HTTP status", () =>
    Effect.gen(function*() {
      const server = yield* WebSocket.serve({
        port: 0,
        upgrade: () => Effect.fail(new WebSocket.UpgradeRejected({ status: 401, message: "who are you" }))
      }, () => Effect.void)
      const err = yield* Effect.flip(WebSocket.connect(`ws://127.0.0.1:${server.address.port}/`))
      expect(err.code).toBe("HTTP_401")
    }).pipe(Effect.scoped))

  it.scoped("connect: the handshake timeout fires on a server that never answers", () =>
    Effect.gen(function*() {
      const Net = yield* Effect.promise(() => import("node:net"))
      const accepted = yield* Deferred.make<void>()
      const sockets: Array<import("node:net").Socket> = []
      const silent = Net.createServer((s) => {
        sockets.push(s)
        Deferred.unsafeDone(accepted, Effect.void)
      })
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()))),
        () => Effect.sync(() => {
          for (const s of sockets) s.destroy()
          silent.close()
        })
      )
      const port = (silent.address() as import("node:net").AddressInfo).port
      const attempt = yield* Effect.fork(
        Effect.scoped(WebSocket.connect(`ws://127.0.0.1:${port}/`, { handshakeTimeout: "5 seconds" }))
      )
      yield* Deferred.await(accepted)
      yield* TestClock.adjust("4999 millis")
      expect(attempt.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(attempt)
      expect(exit._tag).toBe("Failure")
      if (exit._tag === "Failure") expect(JSON.stringify(exit.cause)).toContain("ConnectTimeout")
    }))
})
