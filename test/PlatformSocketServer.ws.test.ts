/**
 * PlatformSocketServer.makeWebSocket / layerWebSocket: the platform's SocketServer over a tether WebSocket server,
 * talked to by the platform's own WebSocket client (`Socket.makeWebSocket`, the constructor of
 * @effect/platform-node), on loopback.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Socket from "@effect/platform/Socket"
import { RpcClient, RpcSerialization, RpcServer } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Queue, Schedule, Scope } from "effect"
import { WebSocket } from "effect-tether"
import * as PlatformSocket from "effect-tether/PlatformSocket"
import * as PlatformSocketServer from "effect-tether/PlatformSocketServer"
import * as Testing from "effect-tether/testing"
import * as Net from "node:net"
import { Api, handlers } from "./helpers/rpcApi.js"

/** a WebSocket client that upgrades, then never reads, answers or closes (a stubborn peer) */
const stubbornClient = (port: number) =>
  Effect.acquireRelease(
    Effect.async<Net.Socket>((resume) => {
      const socket = Net.connect({ port, host: "127.0.0.1", allowHalfOpen: true })
      socket.on("error", () => {})
      socket.once("connect", () =>
        socket.write(
          "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ))
      socket.once("data", () => {
        socket.pause() // the 101 arrived: from now on nothing is read
        resume(Effect.succeed(socket))
      })
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

const portOf = (server: PlatformSocketServer.TetherSocketServer) =>
  server.address._tag === "TcpAddress" ? server.address.port : 0

/** a platform WebSocket client that sees every close code as an error (so a test can read it) */
const platformClient = (url: string) =>
  Socket.makeWebSocket(url, { closeCodeIsError: () => true }).pipe(
    Effect.provide(NodeSocket.layerWebSocketConstructor)
  )

const closeCodeOf = (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit)) return "success"
  const error = Cause.failureOption(exit.cause)
  return error._tag === "Some" && Socket.SocketCloseError.is(error.value) ? error.value.code : Cause.pretty(exit.cause)
}

/** a client's run: what it received, in order, in a bounded queue */
const received = (socket: Socket.Socket) =>
  Effect.gen(function*() {
    const queue = yield* Queue.bounded<string | Uint8Array>(64)
    const run = yield* Effect.fork(Effect.exit(socket.runRaw((data) => Queue.offer(queue, data))))
    return { queue, run }
  })

const take = <A>(queue: Queue.Queue<A>) => Testing.within("5 seconds", "a message", Queue.take(queue))

describe("PlatformSocketServer.makeWebSocket (loopback)", () => {
  it.scopedLive("echo: a Text message comes back as a string, a Binary one as bytes (runRaw), as on the platform", () =>
    Effect.gen(function*() {
      const server = yield* PlatformSocketServer.makeWebSocket({ port: 0, path: "/echo" })
      yield* Effect.forkScoped(server.run((socket) =>
        Effect.gen(function*() {
          const write = yield* socket.writer
          yield* socket.runRaw(write)
        })
      ))
      const socket = yield* platformClient(`ws://127.0.0.1:${portOf(server)}/echo`)
      const { queue } = yield* received(socket)
      const write = yield* socket.writer
      yield* write("hello tether")
      yield* write(new Uint8Array([1, 2, 3, 250]))
      yield* write("") // an empty message is a message
      expect(yield* take(queue)).toBe("hello tether")
      const bytes = yield* take(queue)
      expect(bytes).toBeInstanceOf(Uint8Array)
      expect(Array.from(bytes as Uint8Array)).toEqual([1, 2, 3, 250])
      expect(yield* take(queue)).toBe("")
      expect((yield* server.listener.stats).active).toBe(1)
    }))

  it.scopedLive("run's handler gets a Text message as its UTF-8 bytes; writing bytes sends Binary", () =>
    Effect.gen(function*() {
      const server = yield* PlatformSocketServer.makeWebSocket({ port: 0 })
      yield* Effect.forkScoped(server.run((socket) =>
        Effect.gen(function*() {
          const write = yield* socket.writer
          yield* socket.run((bytes) => write(bytes))
        })
      ))
      const socket = yield* platformClient(`ws://127.0.0.1:${portOf(server)}`)
      const { queue } = yield* received(socket)
      const write = yield* socket.writer
      yield* write("héllo")
      const back = yield* take(queue)
      expect(back).toBeInstanceOf(Uint8Array)
      expect(new TextDecoder().decode(back as Uint8Array)).toBe("héllo")
    }))

  it.scopedLive("a CloseEvent from the handler reaches the client with its code and reason; run ends with it", () =>
    Effect.gen(function*() {
      const server = yield* PlatformSocketServer.makeWebSocket({ port: 0 })
      const serverExit = yield* Deferred.make<Exit.Exit<void, Socket.SocketError>>()
      const refused = yield* Deferred.make<Exit.Exit<void, Socket.SocketError>>()
      yield* Effect.forkScoped(server.run((socket) =>
        Effect.gen(function*() {
          const write = yield* socket.writer
          const exit = yield* Effect.exit(socket.runRaw((data) =>
            Effect.gen(function*() {
              yield* write(`last: ${String(data)}`)
              // 1005 may not be sent on the wire: refused, typed, and the socket stays open
              yield* Deferred.succeed(refused, yield* Effect.exit(write(new Socket.CloseEvent(1005))))
              yield* write(new Socket.CloseEvent(4001, "bye"))
            })
          ))
          yield* Deferred.succeed(serverExit, exit)
        })
      ))
      const socket = yield* platformClient(`ws://127.0.0.1:${portOf(server)}`)
      const { queue, run } = yield* received(socket)
      yield* (yield* socket.writer)("go")
      // what was written before the CloseEvent arrives first
      expect(yield* take(queue)).toBe("last: go")
      const clientExit = yield* Testing.within("5 seconds", "the client's end", Fiber.join(run))
      expect(closeCodeOf(clientExit)).toBe(4001)
      if (Exit.isFailure(clientExit)) {
        const error = Cause.failureOption(clientExit.cause)
        expect(error._tag === "Some" && Socket.SocketCloseError.is(error.value) && error.value.closeReason).toBe("bye")
      }
      expect(closeCodeOf(yield* Testing.within("5 seconds", "the server's end", Deferred.await(serverExit)))).toBe(4001)
      const refusal = yield* Deferred.await(refused)
      expect(Exit.isFailure(refusal)).toBe(true)
      if (Exit.isFailure(refusal)) {
        const error = Cause.failureOption(refusal.cause)
        expect(error._tag === "Some" && error.value._tag === "SocketError" && error.value.reason).toBe("Write")
      }
    }))

  it.scopedLive("the client's clean close (1000) ends the handler's run with void, as on the platform", () =>
    Effect.gen(function*() {
      const server = yield* PlatformSocketServer.makeWebSocket({ port: 0 })
      const serverExit = yield* Deferred.make<Exit.Exit<void, Socket.SocketError>>()
      yield* Effect.forkScoped(server.run((socket) =>
        Effect.flatMap(Effect.exit(socket.runRaw(() => {})), (exit) => Deferred.succeed(serverExit, exit))
      ))
      const socket = yield* platformClient(`ws://127.0.0.1:${portOf(server)}`)
      const { run } = yield* received(socket)
      const write = yield* socket.writer
      yield* write("hi")
      yield* write(new Socket.CloseEvent(1000))
      expect(closeCodeOf(yield* Testing.within("5 seconds", "the client's end", Fiber.join(run)))).toBe(1000)
      expect(closeCodeOf(yield* Testing.within("5 seconds", "the server's end", Deferred.await(serverExit)))).toBe(
        "success"
      )
    }))

  it.scopedLive("interrupting run is the bounded shutdown: clients see 1001; a handler that never ends and a peer that never answers the Close are cut off at shutdownTimeout", () =>
    Effect.gen(function*() {
      const server = yield* PlatformSocketServer.makeWebSocket({
        port: 0,
        shutdownTimeout: "300 millis",
        sessionGrace: "100 millis"
      })
      const run = yield* Effect.fork(server.run((socket) =>
        // reads until its socket ends, then never returns
        Effect.zipRight(Effect.exit(socket.runRaw(() => {})), Effect.never)
      ))
      const clients = yield* Effect.forEach(
        [1, 2, 3],
        () => Effect.flatMap(platformClient(`ws://127.0.0.1:${portOf(server)}`), received)
      )
      yield* Testing.within("5 seconds", "the stubborn client's upgrade", stubbornClient(portOf(server)))
      yield* Testing.within(
        "5 seconds",
        "four sessions",
        Effect.repeat(server.listener.stats, { schedule: Schedule.spaced("5 millis"), until: (s) => s.active === 4 })
      )
      const t0 = Date.now()
      yield* Testing.within("3 seconds", "the shutdown", Fiber.interrupt(run))
      expect(Date.now() - t0).toBeLessThan(300 + 1500)
      expect((yield* server.listener.stats).active).toBe(0)
      for (const client of clients) {
        expect(closeCodeOf(yield* Testing.within("5 seconds", "a client's end", Fiber.join(client.run)))).toBe(1001)
      }
    }))

  it.scopedLive("PlatformSocket.fromWebSocket over a tether client connection talks to it", () =>
    Effect.gen(function*() {
      const server = yield* PlatformSocketServer.makeWebSocket({ port: 0 })
      yield* Effect.forkScoped(server.run((socket) =>
        Effect.gen(function*() {
          const write = yield* socket.writer
          yield* socket.runRaw((data) =>
            typeof data === "string" ? write(new Socket.CloseEvent(4002, data)) : write(data)
          )
        })
      ))
      const conn = yield* WebSocket.connect(`ws://127.0.0.1:${portOf(server)}`)
      const socket = yield* PlatformSocket.fromWebSocket(conn, { closeCodeIsError: () => true })
      const { queue, run } = yield* received(socket)
      const write = yield* socket.writer
      yield* write(new Uint8Array([7, 8]))
      expect(Array.from((yield* take(queue)) as Uint8Array)).toEqual([7, 8])
      yield* write("stop")
      const exit = yield* Testing.within("5 seconds", "the client's end", Fiber.join(run))
      expect(closeCodeOf(exit)).toBe(4002)
      expect(WebSocket.closeInfo(conn)?.received?.reason).toBe("stop")
    }))

  it.scopedLive("@effect/rpc's layerProtocolSocketServer over it, with the platform's WebSocket client (msgpack: Binary messages)", () =>
    Effect.gen(function*() {
      const port = yield* Testing.freePort()
      const started = new Map<number, number>()
      const note = (id: number) => Effect.sync(() => void started.set(id, (started.get(id) ?? 0) + 1))
      const serverScope = yield* Scope.make()
      yield* Layer.buildWithScope(
        RpcServer.layer(Api).pipe(
          Layer.provide(handlers(note)),
          Layer.provide(RpcServer.layerProtocolSocketServer),
          Layer.provide(PlatformSocketServer.layerWebSocket({ port, path: "/rpc", shutdownTimeout: "1 second" })),
          Layer.provide(RpcSerialization.layerMsgPack)
        ),
        serverScope
      )
      const context = yield* Layer.build(
        RpcClient.layerProtocolSocket().pipe(
          Layer.provide([
            NodeSocket.layerWebSocket(`ws://127.0.0.1:${port}/rpc`),
            RpcSerialization.layerMsgPack
          ])
        )
      )
      const client = yield* Effect.provide(RpcClient.make(Api), context)
      const sums = yield* Testing.within(
        "10 seconds",
        "500 calls",
        Effect.forEach(Array.from({ length: 500 }, (_, id) => id), (id) => client.Add({ id, a: id, b: 1 }), {
          concurrency: 50
        })
      )
      expect(sums.every((s, id) => s === id + 1)).toBe(true)
      const sizes = yield* client.Put({ id: 1000, data: new Uint8Array(100_000) })
      expect(sizes).toBe(100_000)
      // the server goes away with calls in flight: they end, none runs twice
      const slow = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => 2000 + i),
        (id) => Effect.fork(Effect.exit(client.Slow({ id, millis: 5000 }))),
        { concurrency: "unbounded" }
      )
      yield* Testing.within(
        "5 seconds",
        "20 slow calls started",
        Effect.repeat(Effect.sync(() => started.size), { schedule: Schedule.spaced("5 millis"), until: (n) => n >= 521 })
      )
      yield* Testing.within("3 seconds", "the server's shutdown", Scope.close(serverScope, Exit.void))
      const exits = yield* Testing.within("5 seconds", "the slow calls end", Fiber.joinAll(slow))
      expect(exits.every(Exit.isFailure)).toBe(true)
      for (const n of started.values()) expect(n).toBe(1)
    }))
})
