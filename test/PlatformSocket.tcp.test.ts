/**
 * @effect/platform's Socket and SocketServer over tether, on loopback, against the platform's own Node
 * implementations (NodeSocket, NodeSocketServer) and plain node:net peers: the platform's semantics where they are
 * defined, tether's close underneath (a CloseEvent is a graceful close: nothing accepted is dropped).
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import * as Socket from "@effect/platform/Socket"
import { RpcClient, RpcSerialization, RpcServer } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import { Dialer, DisconnectReason, Framing, Watchdog } from "effect-tether"
import * as PlatformSocket from "effect-tether/PlatformSocket"
import * as PlatformSocketServer from "effect-tether/PlatformSocketServer"
import * as Testing from "effect-tether/testing"
import * as Net from "node:net"
import { Api, handlers } from "./helpers/rpcApi.js"

/** a node:net server that counts what it reads and answers our FIN with its own */
const countingServer = Effect.acquireRelease(
  Effect.async<{ readonly server: Net.Server; readonly port: number; readonly ended: Promise<number> }>((resume) => {
    let resolveEnded!: (n: number) => void
    const ended = new Promise<number>((r) => (resolveEnded = r))
    const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
      let n = 0
      socket.on("data", (d: Buffer) => (n += d.length))
      socket.on("end", () => {
        resolveEnded(n)
        socket.end()
      })
      socket.on("error", () => {})
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, port: (server.address() as Net.AddressInfo).port, ended })))
  }),
  ({ server }) => Effect.sync(() => server.close())
)

const utf8 = (b: Uint8Array) => new TextDecoder().decode(b)

describe("PlatformSocket (loopback)", () => {
  it.scopedLive("a tether socket talks to the platform's NodeSocketServer; the peer's EOF ends run with void", () =>
    Effect.gen(function*() {
      const server = yield* NodeSocketServer.make({ port: 0, host: "127.0.0.1" })
      // echoes the first chunk, then releases its writer (end(): FIN)
      yield* Effect.forkScoped(server.run((socket) =>
        Effect.gen(function*() {
          const first = yield* Deferred.make<Uint8Array>()
          yield* Effect.fork(socket.run((chunk) => Deferred.succeed(first, chunk)))
          const chunk = yield* Deferred.await(first)
          yield* Effect.scoped(Effect.flatMap(socket.writer, (write) => write(chunk)))
          yield* Effect.never
        }).pipe(Effect.ignore)
      ))
      const port = (server.address as { port: number }).port
      const socket = yield* PlatformSocket.makeTcp({ port })
      const got = yield* Deferred.make<string>()
      const write = yield* socket.writer
      const run = yield* Effect.fork(Effect.exit(socket.run((chunk) => Deferred.succeed(got, utf8(chunk)))))
      yield* write("hello platform")
      expect(yield* Testing.within("5 seconds", "the echo", Deferred.await(got))).toBe("hello platform")
      const exit = yield* Testing.within("5 seconds", "run ends at EOF", Fiber.join(run))
      expect(Exit.isSuccess(exit)).toBe(true)
    }))

  it.scopedLive("the platform's NodeSocket talks to a tether PlatformSocketServer", () =>
    Effect.gen(function*() {
      const server = yield* PlatformSocketServer.make({ port: 0 })
      yield* Effect.forkScoped(server.run((socket) =>
        Effect.scoped(Effect.gen(function*() {
          const write = yield* socket.writer
          yield* socket.run((chunk) => write(chunk))
        }))
      ))
      const port = server.address._tag === "TcpAddress" ? server.address.port : 0
      const socket = yield* NodeSocket.makeNet({ port, host: "127.0.0.1" })
      const got = yield* Deferred.make<string>()
      const write = yield* socket.writer
      yield* Effect.fork(socket.run((chunk) => Deferred.succeed(got, utf8(chunk))))
      yield* write("hello tether")
      expect(yield* Testing.within("5 seconds", "the echo", Deferred.await(got))).toBe("hello tether")
      expect((yield* server.listener.stats).active).toBe(1)
    }))

  it.scopedLive("a CloseEvent is a graceful close: 4 MiB written before it all reach the peer, then run fails with its code", () =>
    Effect.gen(function*() {
      const peer = yield* countingServer
      const socket = yield* PlatformSocket.makeTcp({ port: peer.port })
      const write = yield* socket.writer
      const run = yield* Effect.fork(Effect.exit(socket.run(() => {})))
      const chunk = new Uint8Array(64 * 1024)
      for (let i = 0; i < 64; i++) yield* write(chunk)
      yield* write(new Socket.CloseEvent(4000, "done"))
      const exit = yield* Testing.within("10 seconds", "run ends", Fiber.join(run))
      const received = yield* Effect.promise(() => peer.ended)
      expect(received).toBe(64 * 64 * 1024)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const error = Cause.failureOption(exit.cause)
        expect(error._tag === "Some" && Socket.SocketCloseError.is(error.value)).toBe(true)
        expect(error._tag === "Some" && Socket.SocketCloseError.is(error.value) && error.value.code).toBe(4000)
      }
      // a later write fails typed: the socket is not open any more (it waits for the next run)
      const late = yield* Effect.exit(Effect.timeout(write("late"), "50 millis"))
      expect(Exit.isFailure(late)).toBe(true)
    }))

  it.scopedLive("a socket over a Dialer survives a server restart: messages written while it is down arrive once, in order", () =>
    Effect.gen(function*() {
      const port = yield* Testing.freePort()
      // a tether echo server (length-prefixed: one chunk = one message), in a scope of its own
      const startEcho = Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* Scope.extend(PlatformSocketServer.make({ port, codec: Framing.lengthPrefixed() }), scope)
        yield* Effect.forkIn(
          server.run((socket) => Effect.scoped(Effect.flatMap(socket.writer, (write) => socket.run(write)))),
          scope
        )
        return scope
      })
      let echo = yield* startEcho
      const dialer = yield* Dialer.make({ port, backoff: Schedule.spaced("50 millis") })
      const socket = yield* PlatformSocket.fromDialer(dialer)
      const got: Array<string> = []
      yield* Effect.fork(socket.run((m) => void got.push(utf8(m))))
      const write = yield* socket.writer
      const until = (n: number) =>
        Testing.within("5 seconds", `${n} echoes`, Effect.repeat(Effect.sleep("5 millis"), { until: () => got.length >= n }))
      for (let i = 0; i < 100; i++) yield* write(`m${i}`)
      yield* until(100)
      yield* Scope.close(echo, Exit.void)
      yield* Testing.within("5 seconds", "the dialer sees the server gone", Effect.repeat(dialer.status, { schedule: Schedule.spaced("5 millis"), until: (s) => s !== "Connected" }))
      for (let i = 100; i < 200; i++) yield* write(`m${i}`) // into the dialer's backlog
      echo = yield* startEcho
      yield* until(200)
      yield* Effect.sleep("100 millis") // nothing more arrives
      expect(got).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`))
      yield* Scope.close(echo, Exit.void)
    }))

  it.effect("each tether reason maps to the platform's SocketError", () =>
    Effect.gen(function*() {
      const exitOf = (reason: DisconnectReason.DisconnectReason) =>
        Effect.exit(PlatformSocket.toSocketExit(reason, undefined))
      expect(Exit.isSuccess(yield* exitOf(DisconnectReason.PeerClosed()))).toBe(true)
      const reasonOf = (exit: Exit.Exit<void, Socket.SocketError>) =>
        Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.reason : "none"
      expect(reasonOf(yield* exitOf(DisconnectReason.LocalClose({ message: "x" })))).toBe("Close")
      expect(reasonOf(yield* exitOf(DisconnectReason.Shutdown()))).toBe("Close")
      expect(reasonOf(yield* exitOf(DisconnectReason.SendStalled({ queuedBytes: 1, stalledFor: 1 as never })))).toBe("Write")
      expect(reasonOf(yield* exitOf(DisconnectReason.IoError({ message: "reset", code: "ECONNRESET" })))).toBe("Read")
    }))

  it.scopedLive("a server that stops reading: the send-stall watchdog ends run with a Write error whose cause is SendStalled", () =>
    Effect.gen(function*() {
      const peer = yield* Testing.nonReaderPeer()
      const socket = yield* PlatformSocket.makeTcp({
        port: peer.port,
        watchdogs: [Watchdog.sendStall({ probeInterval: "200 millis", stallTimeout: "1 second" })]
      })
      const write = yield* socket.writer
      const run = yield* Effect.fork(Effect.exit(socket.run(() => {})))
      const chunk = new Uint8Array(256 * 1024)
      yield* Effect.fork(Effect.forEach(Array.from({ length: 64 }), () => write(chunk), { discard: true }))
      const exit = yield* Testing.within("6 seconds", "the reap", Fiber.join(run))
      const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
      expect(error?._tag === "Some" && error.value.reason).toBe("Write")
      expect(
        error?._tag === "Some" && error.value.reason === "Write" && (error.value.cause as DisconnectReason.DisconnectReason)._tag
      ).toBe("SendStalled")
    }))

  it.scopedLive("interrupting SocketServer.run is the listener's bounded shutdown; a second run fails typed", () =>
    Effect.gen(function*() {
      const server = yield* PlatformSocketServer.make({ port: 0, shutdownTimeout: "300 millis", sessionGrace: "100 millis" })
      const port = server.address._tag === "TcpAddress" ? server.address.port : 0
      // a handler that never ends while its peer (a stubborn node:net client) never closes
      const run = yield* Effect.fork(server.run(() => Effect.never))
      const client = Net.connect({ port, host: "127.0.0.1", allowHalfOpen: true })
      client.on("error", () => {})
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      yield* Testing.within("5 seconds", "the session", Effect.repeat(server.listener.stats, { schedule: Schedule.spaced("5 millis"), until: (s) => s.active === 1 }))
      const t0 = Date.now()
      yield* Testing.within("3 seconds", "the shutdown", Fiber.interrupt(run))
      expect(Date.now() - t0).toBeLessThan(300 + 1500)
      expect((yield* server.listener.stats).active).toBe(0)
      const again = yield* Effect.exit(server.run(() => Effect.void))
      expect(Exit.isFailure(again)).toBe(true)
    }))

  it.scopedLive("@effect/rpc's own socket protocols run on a tether socket and a tether SocketServer", () =>
    Effect.gen(function*() {
      const port = yield* Testing.freePort()
      const started = new Map<number, number>()
      const note = (id: number) => Effect.sync(() => void started.set(id, (started.get(id) ?? 0) + 1))
      const serverScope = yield* Scope.make()
      yield* Layer.buildWithScope(
        RpcServer.layer(Api).pipe(
          Layer.provide(handlers(note)),
          Layer.provide(RpcServer.layerProtocolSocketServer),
          Layer.provide(PlatformSocketServer.layer({ port })),
          Layer.provide(RpcSerialization.layerNdjson)
        ),
        serverScope
      )
      const context = yield* Layer.build(
        RpcClient.layerProtocolSocket().pipe(
          Layer.provide([PlatformSocket.layerTcp({ port }), RpcSerialization.layerNdjson])
        )
      )
      const client = yield* Effect.provide(RpcClient.make(Api), context)
      const sums = yield* Testing.within(
        "10 seconds",
        "1 000 calls",
        Effect.forEach(Array.from({ length: 1000 }, (_, id) => id), (id) => client.Add({ id, a: id, b: 1 }), {
          concurrency: 50
        })
      )
      expect(sums.every((s, id) => s === id + 1)).toBe(true)
      // @effect/rpc's promise when the server goes away: calls in flight end (an RpcClientError, or interrupted by
      // the server's shutdown), none is sent again
      const slow = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => 2000 + i),
        (id) => Effect.fork(Effect.exit(client.Slow({ id, millis: 2000 }))),
        { concurrency: "unbounded" }
      )
      yield* Testing.within("5 seconds", "50 slow calls started", Effect.repeat(Effect.sync(() => started.size), { schedule: Schedule.spaced("5 millis"), until: (n) => n >= 1050 }))
      yield* Scope.close(serverScope, Exit.void)
      const exits = yield* Testing.within("5 seconds", "the slow calls end", Fiber.joinAll(slow))
      expect(exits.every(Exit.isFailure)).toBe(true)
      for (const n of started.values()) expect(n).toBe(1)
    }))
})
