/**
 * WebSocket on the Framed seam (issue 15): the frame codec's protocol checks against a raw client,
 * close codes in `PeerClosed` on both sides, permessage-deflate against `ws` (with its context
 * takeover), the heartbeat of `connect`, mounting on an existing HTTP server (one port, path
 * routing), a TCP listener next to a WebSocket server, and `WebSocket.dialer`.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Option, Queue, Stream } from "effect"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import * as Net from "node:net"
import { WebSocket as WsClient, WebSocketServer } from "ws"
import { DisconnectReason, Framing, Listener, Transport, WebSocket } from "effect-tether"
import { connectRaw, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, type RawWs } from "./helpers/wsRaw.js"

const rawWs = (port: number, options?: Parameters<typeof connectRaw>[1]) =>
  Effect.acquireRelease(
    Effect.flatMap(Effect.promise(() => connectRaw(port, options)), (r) =>
      r.ws === undefined ? Effect.dieMessage(`upgrade failed: ${r.status}`) : Effect.succeed(r.ws)),
    (ws) => Effect.sync(() => ws.socket.destroy())
  )
const until = (ws: RawWs, pred: () => boolean) => Effect.promise(() => ws.until(pred)).pipe(Effect.timeout("5 seconds"))
const texts = (ws: RawWs) => ws.frames.filter((f) => f.opcode === OP_TEXT).map((f) => f.payload.toString())

const echo = (conn: WebSocket.Connection) => Stream.runForEach(conn.incoming, conn.send).pipe(Effect.orDie)

/** A server whose session reports how its connection ended. */
const reporting = (options: WebSocket.ServerOptions = {}) =>
  Effect.gen(function*() {
    const closed = yield* Queue.unbounded<DisconnectReason.DisconnectReason>()
    const server = yield* WebSocket.serve({ port: 0, ...options }, (conn) =>
      Effect.zipRight(
        Effect.forkScoped(echo(conn)),
        Effect.flatMap(conn.closed, (r) => Queue.offer(closed, r))
      ).pipe(Effect.scoped))
    return { server, closed }
  })

describe("WebSocket frame codec (raw client)", () => {
  it.live("fragmented text, UTF-8 split across fragments, a PING between fragments: one message, one PONG", () =>
    Effect.gen(function*() {
      const { server } = yield* reporting()
      const ws = yield* rawWs(server.address.port)
      const bytes = Buffer.from("héllo wörld")
      // "é" is 2 bytes: cut in its middle
      ws.send(OP_TEXT, bytes.subarray(0, 2), { fin: false })
      ws.send(OP_PING, "mid")
      ws.send(0, bytes.subarray(2, 8), { fin: false })
      ws.send(0, bytes.subarray(8), { fin: true })
      yield* until(ws, () => texts(ws).length === 1)
      expect(texts(ws)).toEqual(["héllo wörld"])
      expect(ws.frames.filter((f) => f.opcode === OP_PONG).map((f) => f.payload.toString())).toEqual(["mid"])
      expect(ws.parseError).toBeUndefined()
    }).pipe(Effect.scoped))

  const protocolCases: ReadonlyArray<{
    readonly name: string
    readonly send: (ws: RawWs) => void
    readonly code: number
    readonly tag: DisconnectReason.DisconnectReason["_tag"]
  }> = [
    {
      name: "invalid UTF-8 across fragments → 1007 at the bad fragment",
      send: (ws) => {
        ws.send(OP_TEXT, Buffer.from([0x61, 0xc3]), { fin: false }) // a lead byte...
        ws.send(0, Buffer.from([0x28]), { fin: false }) // ...followed by no continuation byte
      },
      code: 1007,
      tag: "MalformedFrame"
    },
    {
      name: "an unmasked client frame → 1002",
      send: (ws) => ws.send(OP_TEXT, "x", { mask: false }),
      code: 1002,
      tag: "MalformedFrame"
    },
    {
      name: "a continuation without a message → 1002",
      send: (ws) => ws.send(0, "x"),
      code: 1002,
      tag: "MalformedFrame"
    },
    {
      name: "a reserved opcode → 1002",
      send: (ws) => ws.send(0x3, "x"),
      code: 1002,
      tag: "MalformedFrame"
    },
    {
      name: "a fragmented control frame → 1002",
      send: (ws) => ws.send(OP_PING, "x", { fin: false }),
      code: 1002,
      tag: "MalformedFrame"
    },
    {
      name: "a Close with an invalid code → 1002",
      send: (ws) => ws.send(OP_CLOSE, Buffer.from([0x03, 0xed])), // 1005 may not be sent
      code: 1002,
      tag: "MalformedFrame"
    },
    {
      name: "fragments adding up past maxPayload → 1009 before the last one arrives",
      send: (ws) => {
        ws.send(OP_BINARY, Buffer.alloc(600), { fin: false })
        ws.send(0, Buffer.alloc(600), { fin: false })
      },
      code: 1009,
      tag: "FrameTooLarge"
    }
  ]
  for (const c of protocolCases) {
    it.live(c.name, () =>
      Effect.gen(function*() {
        const { closed, server } = yield* reporting({ maxPayload: 1024 })
        const ws = yield* rawWs(server.address.port)
        c.send(ws)
        yield* until(ws, () => ws.closeFrame() !== undefined)
        expect(ws.closeFrame()!.code).toBe(c.code)
        ws.close(c.code)
        ws.socket.end()
        const reason = yield* Queue.take(closed).pipe(Effect.timeout("5 seconds"))
        expect(reason._tag).toBe(c.tag)
        expect(ws.parseError).toBeUndefined()
      }).pipe(Effect.scoped))
  }

  it.live("a message that is not a Message is refused by send with a typed error, nothing written", () =>
    Effect.gen(function*() {
      const { server } = yield* reporting()
      const conn = yield* WebSocket.connect(`ws://127.0.0.1:${server.address.port}/`)
      const err = yield* Effect.flip(conn.send(Framing.utf8("hello") as unknown as WebSocket.Message))
      expect(err._tag).toBe("FrameError")
      yield* conn.send(WebSocket.text("hello"))
      const reply = yield* Stream.runHead(conn.incoming).pipe(Effect.timeout("5 seconds"))
      expect(reply).toEqual(Option.some(WebSocket.text("hello")))
    }).pipe(Effect.scoped))
})

describe("close codes in DisconnectReason, both sides", () => {
  it.live("client closes 4002 'client bye' → the server's reason is PeerClosed(4002, 'client bye')", () =>
    Effect.gen(function*() {
      const { closed, server } = yield* reporting()
      const conn = yield* WebSocket.connect(`ws://127.0.0.1:${server.address.port}/`)
      const outcome = yield* WebSocket.close(conn, 4002, "client bye")
      expect(outcome.peerEof).toBe(true)
      expect(outcome.reason._tag).toBe("LocalClose")
      const serverSide = yield* Queue.take(closed).pipe(Effect.timeout("5 seconds"))
      expect(serverSide).toEqual(DisconnectReason.PeerClosed({ code: 4002, reason: "client bye" }))
      expect(DisconnectReason.describe(serverSide)).toBe("peer closed (WebSocket 4002 client bye)")
    }).pipe(Effect.scoped))

  it.live("server closes 4001 'kicked' → the client's reason is PeerClosed(4001, 'kicked'); a TCP end without Close is 1006", () =>
    Effect.gen(function*() {
      const server = yield* WebSocket.serve({ port: 0 }, (conn) => Effect.asVoid(WebSocket.close(conn, 4001, "kicked")))
      const conn = yield* WebSocket.connect(`ws://127.0.0.1:${server.address.port}/`)
      expect(yield* conn.closed.pipe(Effect.timeout("5 seconds"))).toEqual(
        DisconnectReason.PeerClosed({ code: 4001, reason: "kicked" })
      )
      // a server that ends TCP without a Close frame
      const tcp = yield* upgradeThen((socket) => socket.end())
      const conn2 = yield* WebSocket.connect(`ws://127.0.0.1:${tcp.port}/`)
      expect(yield* conn2.closed.pipe(Effect.timeout("5 seconds"))).toEqual(
        DisconnectReason.PeerClosed({ code: 1006, reason: "" })
      )
    }).pipe(Effect.scoped))
})

/** A raw TCP server that answers the upgrade correctly, then hands the socket to `then` (and records what it reads). */
const upgradeThen = (then: (socket: Net.Socket, received: Array<Buffer>) => void) =>
  Effect.acquireRelease(
    Effect.async<{
      port: number
      server: Net.Server
      received: Array<Buffer>
      /** Completes once `pred` holds for what arrived (checked on every chunk). */
      waitFor: (pred: (bytes: Buffer) => boolean) => Promise<void>
    }>((resume) => {
      const received: Array<Buffer> = []
      const waiters: Array<() => void> = []
      const waitFor = (pred: (bytes: Buffer) => boolean) =>
        new Promise<void>((res) => {
          const check = () => {
            if (!pred(Buffer.concat(received))) return false
            res()
            return true
          }
          if (!check()) waiters.push(() => void check())
        })
      const server = Net.createServer((socket) => {
        socket.on("error", () => {})
        let head = ""
        const onData = (d: Buffer) => {
          head += d.toString("latin1")
          if (!head.includes("\r\n\r\n")) return
          socket.off("data", onData)
          const key = /sec-websocket-key: *(\S+)/i.exec(head)![1]!
          const accept = Crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64")
          socket.write(
            `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`
          )
          socket.on("data", (b: Buffer) => {
            received.push(b)
            for (const w of waiters) w()
          })
          then(socket, received)
        }
        socket.on("data", onData)
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({ port: (server.address() as Net.AddressInfo).port, server, received, waitFor })))
    }),
    ({ server }) => Effect.sync(() => server.close())
  )

/** Parses masked client frames (opcode, unmasked payload) out of raw bytes. */
const clientFrames = (bytes: Buffer): Array<{ opcode: number; payload: Buffer }> => {
  const out: Array<{ opcode: number; payload: Buffer }> = []
  let o = 0
  while (o + 6 <= bytes.length) {
    const opcode = bytes[o]! & 0x0f
    let len = bytes[o + 1]! & 0x7f
    let h = 2
    if (len === 126) {
      len = bytes.readUInt16BE(o + 2)
      h = 4
    }
    const mask = bytes.subarray(o + h, o + h + 4)
    const payload = Buffer.from(bytes.subarray(o + h + 4, o + h + 4 + len))
    for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!
    out.push({ opcode, payload })
    o += h + 4 + len
  }
  return out
}

describe("WebSocket client: every option honoured", () => {
  it.live("connect's heartbeat sends PINGs; a server that never answers gets Close 1011 and the client ends with PeerTimeout", () =>
    Effect.gen(function*() {
      const silent = yield* upgradeThen(() => {})
      const conn = yield* WebSocket.connect(`ws://127.0.0.1:${silent.port}/`, {
        heartbeat: { interval: "50 millis", timeout: "100 millis" }
      })
      const reason = yield* conn.closed.pipe(Effect.timeout("5 seconds"))
      expect(reason._tag).toBe("PeerTimeout")
      yield* Effect.promise(() => silent.waitFor((b) => clientFrames(b).some((f) => f.opcode === OP_CLOSE))).pipe(
        Effect.timeout("5 seconds")
      )
      const frames = clientFrames(Buffer.concat(silent.received))
      expect(frames[0]).toMatchObject({ opcode: OP_PING })
      expect(frames[0]!.payload.toString()).toBe("hb-1")
      const close = frames.find((f) => f.opcode === OP_CLOSE)!
      expect(close.payload.readUInt16BE(0)).toBe(1011)
      expect(close.payload.subarray(2).toString()).toBe("heartbeat timeout")
    }).pipe(Effect.scoped))

  it.live("client-side checks: a masked server frame → our Close 1002; an oversized one → 1009", () =>
    Effect.gen(function*() {
      const cases = [
        // a masked text frame "hi" (servers must not mask)
        { frame: Buffer.from([0x81, 0x82, 1, 2, 3, 4, 0x68 ^ 1, 0x69 ^ 2]), code: 1002, tag: "MalformedFrame" },
        // a 200-byte binary frame against maxPayload 100 (rejected from its header)
        { frame: Buffer.concat([Buffer.from([0x82, 126, 0, 200]), Buffer.alloc(200)]), code: 1009, tag: "FrameTooLarge" }
      ] as const
      for (const c of cases) {
        const peer = yield* upgradeThen((socket) => socket.write(c.frame))
        const conn = yield* WebSocket.connect(`ws://127.0.0.1:${peer.port}/`, { maxPayload: 100, lingerTimeout: "200 millis" })
        const reason = yield* conn.closed.pipe(Effect.timeout("5 seconds"))
        expect(reason._tag).toBe(c.tag)
        yield* Effect.promise(() => peer.waitFor((b) => clientFrames(b).some((f) => f.opcode === OP_CLOSE))).pipe(
          Effect.timeout("5 seconds")
        )
        const close = clientFrames(Buffer.concat(peer.received)).find((f) => f.opcode === OP_CLOSE)!
        expect(close.payload.readUInt16BE(0)).toBe(c.code)
      }
    }).pipe(Effect.scoped))

  it.live("subprotocols: the server picks the first it speaks; the client sees it", () =>
    Effect.gen(function*() {
      const { server } = yield* reporting({ protocols: ["chat.v2", "chat.v1"] })
      const conn = yield* WebSocket.connect(`ws://127.0.0.1:${server.address.port}/`, { protocols: ["chat.v1", "chat.v2"] })
      expect(WebSocket.protocol(conn)).toBe("chat.v1")
    }).pipe(Effect.scoped))
})

describe("permessage-deflate against ws (context takeover on ws's side)", () => {
  it.live("ws client → our server: 200 similar messages compressed with context, echoed intact", () =>
    Effect.gen(function*() {
      const { server } = yield* reporting({ perMessageDeflate: true })
      const got = yield* Effect.async<{ messages: Array<string>; extensions: string }>((resume) => {
        const ws = new WsClient(`ws://127.0.0.1:${server.address.port}/`, { perMessageDeflate: { threshold: 0 } })
        const messages: Array<string> = []
        ws.on("open", () => {
          for (let i = 0; i < 200; i++) ws.send(`message number ${i} ${"abc".repeat(i % 50)}`)
        })
        ws.on("message", (d) => {
          messages.push(d.toString())
          if (messages.length === 200) {
            resume(Effect.succeed({ messages, extensions: ws.extensions }))
            ws.close()
          }
        })
        return Effect.sync(() => ws.terminate())
      }).pipe(Effect.timeout("10 seconds"))
      expect(got.extensions).toContain("permessage-deflate")
      expect(got.messages).toEqual(Array.from({ length: 200 }, (_, i) => `message number ${i} ${"abc".repeat(i % 50)}`))
    }).pipe(Effect.scoped))

  it.live("our client → ws server with deflate: compressed both ways, a 1 MB message too", () =>
    Effect.gen(function*() {
      const wss = yield* Effect.acquireRelease(
        Effect.async<WebSocketServer>((resume) => {
          const s: WebSocketServer = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: { threshold: 0 } }, () =>
            resume(Effect.succeed(s)))
          s.on("connection", (ws) => ws.on("message", (d, binary) => ws.send(d, { binary })))
        }),
        (s) => Effect.sync(() => s.close())
      )
      const port = (wss.address() as Net.AddressInfo).port
      const conn = yield* WebSocket.connect(`ws://127.0.0.1:${port}/`, { perMessageDeflate: true })
      const big = Buffer.alloc(1024 * 1024, "tether ")
      const sent = [WebSocket.text("hello ".repeat(40)), WebSocket.binary(big), WebSocket.text("héllo ".repeat(40))]
      yield* conn.sendAll(sent)
      const got = yield* conn.incoming.pipe(Stream.take(3), Stream.runCollect, Effect.timeout("10 seconds"))
      const [a, b, c] = [...got]
      expect(a).toEqual(sent[0])
      expect(b?._tag === "Binary" && Buffer.from(b.data).equals(big)).toBe(true)
      expect(c).toEqual(sent[2])
      // the wire carried compressed frames: far fewer bytes than the payloads
      expect(conn.unsafeStats().bytesIn).toBeLessThan(100_000)
    }).pipe(Effect.scoped))
})

describe("WebSocket.mount: an existing HTTP server, one port", () => {
  it.live("HTTP requests stay the app's; /ws and /chat are two endpoints; another path gets 404; unmount keeps HTTP", () =>
    Effect.gen(function*() {
      const http = Http.createServer((_req, res) => res.end("api ok"))
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void http.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => http.close())
      )
      const port = (http.address() as Net.AddressInfo).port
      const ws = yield* WebSocket.mount(http, { path: "/ws" }, (conn) =>
        Stream.runForEach(conn.incoming, (m) => conn.send(m._tag === "Text" ? WebSocket.text(`ws:${m.text}`) : m)).pipe(
          Effect.orDie
        ))
      const chat = yield* WebSocket.mount(http, { path: "/chat" }, (conn) =>
        Stream.runForEach(conn.incoming, (m) => conn.send(m._tag === "Text" ? WebSocket.text(`chat:${m.text}`) : m)).pipe(
          Effect.orDie
        ))
      expect(ws.address.port).toBe(port)
      const get = Effect.promise(() => fetch(`http://127.0.0.1:${port}/anything`).then((r) => r.text()))
      expect(yield* get).toBe("api ok")
      for (const [path, prefix] of [["/ws", "ws"], ["/chat", "chat"]] as const) {
        const conn = yield* WebSocket.connect(`ws://127.0.0.1:${port}${path}`)
        yield* conn.send(WebSocket.text("hi"))
        expect(yield* Stream.runHead(conn.incoming).pipe(Effect.timeout("5 seconds"))).toEqual(
          Option.some(WebSocket.text(`${prefix}:hi`))
        )
        yield* conn.close()
      }
      const refused = yield* Effect.flip(WebSocket.connect(`ws://127.0.0.1:${port}/nowhere`))
      expect(refused.code).toBe("HTTP_404")
      // a session open at shutdown gets 1001; the HTTP server goes on serving
      const open = yield* WebSocket.connect(`ws://127.0.0.1:${port}/chat`)
      yield* chat.shutdown
      expect(yield* open.closed.pipe(Effect.timeout("5 seconds"))).toEqual(
        DisconnectReason.PeerClosed({ code: 1001, reason: "server shutdown" })
      )
      expect(yield* get).toBe("api ok")
      const gone = yield* Effect.flip(WebSocket.connect(`ws://127.0.0.1:${port}/chat`))
      expect(gone.code).toBe("HTTP_404")
    }).pipe(Effect.scoped))
})

describe("WebSocket.endpoint as an @effect/platform HttpRouter route", () => {
  it.live("GET /api answered by the router, /ws upgraded by tether on the same port", () =>
    Effect.gen(function*() {
      const ws = yield* WebSocket.endpoint({ heartbeat: { interval: "1 second" } }, (conn) =>
        Stream.runForEach(conn.incoming, (m) => conn.send(m._tag === "Text" ? WebSocket.text(`routed:${m.text}`) : m)).pipe(
          Effect.orDie
        ))
      const router = HttpRouter.empty.pipe(
        HttpRouter.get("/api", HttpServerResponse.text("api ok")),
        HttpRouter.get(
          "/ws",
          Effect.gen(function*() {
            const req = NodeHttpServerRequest.toIncomingMessage(yield* HttpServerRequest.HttpServerRequest)
            const socket = req.socket
            ws.handleUpgrade(req, socket)
            // the socket is the session's now: answer nothing until it is gone
            yield* Effect.async<void>((resume) => {
              if (socket.destroyed) return resume(Effect.void)
              socket.once("close", () => resume(Effect.void))
            })
            return HttpServerResponse.empty()
          })
        )
      )
      const http = Http.createServer()
      yield* Layer.build(
        HttpServer.serve(router).pipe(Layer.provide(NodeHttpServer.layer(() => http, { port: 0, host: "127.0.0.1" })))
      )
      const port = (http.address() as Net.AddressInfo).port
      const api = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/api`).then((r) => r.text()))
      expect(api).toBe("api ok")
      const conn = yield* WebSocket.connect(`ws://127.0.0.1:${port}/ws`)
      yield* conn.sendAll([WebSocket.text("a"), WebSocket.text("b")])
      const got = yield* conn.incoming.pipe(Stream.take(2), Stream.runCollect, Effect.timeout("5 seconds"))
      expect([...got]).toEqual([WebSocket.text("routed:a"), WebSocket.text("routed:b")])
      expect(ws.server.unsafeStats()).toMatchObject({ active: 1, accepted: 1 })
      const outcome = yield* WebSocket.close(conn, 4003, "done")
      expect(outcome.peerEof).toBe(true)
      expect(WebSocket.closeInfo(conn)?.received?.code).toBe(4003)
    }).pipe(Effect.scoped))
})

describe("tags: a TCP listener and a WebSocket server in one app", () => {
  it.live("Listener.layer and WebSocket.layer merged: both reachable", () =>
    Effect.gen(function*() {
      const app = Layer.merge(
        Listener.layer({ port: 0 }, (conn) => Stream.runForEach(conn.incoming, conn.send).pipe(Effect.orDie)),
        WebSocket.layer({ port: 0 }, echo)
      )
      const ctx = yield* Layer.build(app)
      const tcpPort = Context.get(ctx, Listener.Listener).address.port
      const wsPort = Context.get(ctx, WebSocket.Server).address.port
      expect(tcpPort).not.toBe(wsPort)
      const ws = yield* WebSocket.connect(`ws://127.0.0.1:${wsPort}/`)
      yield* ws.send(WebSocket.text("over ws"))
      expect(yield* Stream.runHead(ws.incoming).pipe(Effect.timeout("5 seconds"))).toEqual(
        Option.some(WebSocket.text("over ws"))
      )
      const t = yield* Transport.connectTcp({ port: tcpPort })
      const Connection = yield* Effect.promise(() => import("effect-tether").then((m) => m.Connection))
      const tcp = yield* Connection.make(t)
      yield* tcp.send(Framing.utf8("over tcp"))
      const echoed = yield* Stream.runHead(tcp.incoming).pipe(Effect.timeout("5 seconds"))
      expect(Option.map(echoed, (b) => Buffer.from(b).toString())).toEqual(Option.some("over tcp"))
    }).pipe(Effect.scoped))
})

describe("WebSocket.dialer", () => {
  it.live("sends binary messages, reconnects after a server restart, replays its backlog", () =>
    Effect.gen(function*() {
      const received = yield* Queue.unbounded<string>()
      const serveOn = (port: number) =>
        WebSocket.serve({ port }, (conn) =>
          Stream.runForEach(conn.incoming, (m) =>
            Queue.offer(received, m._tag === "Binary" ? Buffer.from(m.data).toString() : `text:${m.text}`)).pipe(
              Effect.orDie
            ))
      const first = yield* Effect.scoped(Effect.map(serveOn(0), (s) => s.address.port))
      // the first server is gone already: the dialer retries until the second one is up
      const dialer = yield* WebSocket.dialer(`ws://127.0.0.1:${first}/`, {
        heartbeat: { interval: "1 second" }
      })
      yield* dialer.send(Buffer.from("queued before the server is up"))
      const stop = yield* Deferred.make<void>()
      yield* Effect.forkScoped(Effect.scoped(Effect.zipRight(serveOn(first), Deferred.await(stop))))
      expect(yield* Queue.take(received).pipe(Effect.timeout("10 seconds"))).toBe("queued before the server is up")
      yield* dialer.send(Buffer.from("live"))
      expect(yield* Queue.take(received).pipe(Effect.timeout("5 seconds"))).toBe("live")
      const conn = yield* dialer.connection
      expect(Option.map(conn, (c) => c.kind)).toEqual(Option.some("websocket"))
      const tooBig = yield* WebSocket.dialer(`ws://127.0.0.1:${first}/`, { maxPayload: 4 })
      expect((yield* Effect.flip(tooBig.send(Buffer.from("12345"))))._tag).toBe("FrameError")
      yield* Deferred.succeed(stop, undefined)
    }).pipe(Effect.scoped))
})
