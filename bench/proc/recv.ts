/**
 * Bench receiver process. Listens on 127.0.0.1 (random port), prints
 * `{"ready":true,"port":N}`, then one `{"result":…}` line and exits.
 *
 * Variants:
 * - `frames`        raw node:net receiver: verifies length-prefixed frames (count, order, checksum)
 * - `tether-frames` the same through a tether Connection (`incoming` stream)
 * - `echo`          raw node:net echo server (no-delay)
 * - `tether-echo`   tether echo server (`incoming` → `send`)
 * - `tether-echo-read` the same with a `read` loop
 * - `sink-many`     accepts `conns` connections, verifies `rounds` frames on each
 * - `ws-frames`     raw `ws` server, verifies binary messages
 * - `ws-echo`       raw `ws` echo server (binary messages sent back as they come)
 * - `ws-tether-echo` tether `WebSocket.serve` echo server (`incoming` → `send`)
 * - `closed-port`   a peer that is down: binds a port, closes it again (connects are refused), reports at once
 * - `hold-many`     raw node:net server holding `conns` idle sockets (`pauseOnData`: stops reading a socket that sends)
 * - `sessions-raw`  raw node:net server holding `conns` idle sockets, then ending them all
 * - `sessions-tether` a tether Listener holding `conns` idle sessions, then `server.shutdown`
 * - `rpc-platform`  @effect/rpc server (BenchApi, MsgPack) on the platform's NodeSocketServer
 * - `rpc-tether`    the same on a tether PlatformSocketServer (length-prefixed, what RpcProtocol.layerServer uses)
 */
import * as Net from "node:net"
import { emit, fail, loadTether, finish, FrameVerifier, guardChild, memorySnapshot, nowNs, num, readParams } from "../lib/common.js"

const params = readParams()
guardChild(num(params, "limitMs", 120_000))

const listen = (server: Net.Server): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => {
      const addr = server.address()
      if (addr === null || typeof addr === "string") return reject(new Error("no address"))
      resolve(addr.port)
    })
  })

const frameResult = (v: FrameVerifier, expected: number, eofAt: number) => ({
  frames: v.frames,
  bytes: v.bytes,
  firstByteAt: v.firstByteAt,
  lastFrameAt: v.lastFrameAt,
  eofAt,
  error: v.verify(expected) ?? null
})

const rawFrames = async () => {
  const expected = num(params, "frames")
  const v = new FrameVerifier(num(params, "payload"))
  let accepted = false
  const server = Net.createServer((socket) => {
    if (accepted) return void socket.destroy()
    accepted = true
    socket.setNoDelay(true)
    socket.on("data", (c: Buffer) => v.push(c))
    socket.on("end", () => finish(frameResult(v, expected, nowNs())))
    socket.on("error", (e) => fail(e))
  })
  emit({ ready: true, port: await listen(server) })
}

const tetherFrames = async () => {
  const { Effect, Stream } = await import("effect")
  const { Connection, Transport } = await loadTether(params)
  const expected = num(params, "frames")
  const v = new FrameVerifier(num(params, "payload"))
  let accepted = false
  const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
    if (accepted) return void socket.destroy()
    accepted = true
    const program = Effect.scoped(Effect.gen(function*() {
      const transport = yield* Transport.fromSocket(socket)
      const conn = yield* Connection.make(transport, { lingerTimeout: "2 seconds" })
      yield* Stream.runForEachChunk(conn.incoming, (chunk) =>
        Effect.sync(() => {
          for (const f of chunk) v.pushPayload(f)
          v.lastFrameAt = nowNs()
        }))
    }))
    Effect.runPromise(program).then(() => finish(frameResult(v, expected, nowNs())), fail)
  })
  emit({ ready: true, port: await listen(server) })
}

const rawEcho = async () => {
  const server = Net.createServer((socket) => {
    socket.setNoDelay(true)
    socket.on("data", (c: Buffer) => socket.write(c))
    socket.on("end", () => finish({ echoed: socket.bytesWritten }))
    socket.on("error", (e) => fail(e))
  })
  emit({ ready: true, port: await listen(server) })
}

/** The same echo server with `read` loops instead of a Stream consumer (`readLoop`). */
const tetherEcho = async (readLoop = false) => {
  const { Effect, Option, Stream } = await import("effect")
  const { Connection, Transport } = await loadTether(params)
  const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
    const program = Effect.scoped(Effect.gen(function*() {
      const transport = yield* Transport.fromSocket(socket)
      const conn = yield* Connection.make(transport, { lingerTimeout: "2 seconds" })
      let echoed = 0
      if (readLoop) {
        for (;;) {
          const next = yield* conn.read
          if (Option.isNone(next)) break
          for (const f of next.value) {
            echoed++
            yield* conn.send(f)
          }
        }
        return echoed
      }
      yield* Stream.runForEach(conn.incoming, (f) => {
        echoed++
        return conn.send(f)
      })
      return echoed
    }))
    Effect.runPromise(program).then((echoed) => finish({ echoed }), fail)
  })
  emit({ ready: true, port: await listen(server) })
}

const sinkMany = async () => {
  const conns = num(params, "conns")
  const rounds = num(params, "rounds")
  const payloadSize = num(params, "payload")
  const total = conns * rounds
  const verifiers: Array<FrameVerifier> = []
  let received = 0
  let doneAt = 0
  const onFrame = () => {
    received++
    if (received === total) {
      doneAt = nowNs()
      const errors = verifiers.map((v) => v.verify(rounds)).filter((e) => e !== undefined)
      finish({
        frames: received,
        connections: verifiers.length,
        doneAt,
        error: verifiers.length !== conns
          ? `${verifiers.length} connections, expected ${conns}`
          : errors.length > 0
          ? `${errors.length} connections failed verification, first: ${errors[0]}`
          : null
      })
    }
  }
  const server = Net.createServer((socket) => {
    const v = new FrameVerifier(payloadSize, onFrame)
    verifiers.push(v)
    socket.on("data", (c: Buffer) => v.push(c))
    socket.on("error", () => {})
  })
  emit({ ready: true, port: await listen(server) })
}

/** Accepts `conns` connections and holds them open (reads and drops anything); reports once all are accepted, then waits to be killed. */
const holdMany = async () => {
  const conns = num(params, "conns")
  let accepted = 0
  // `pauseOnData`: a socket that receives anything stops being read (the idle ones never send)
  const pauseOnData = params.pauseOnData === true
  const server = Net.createServer((socket) => {
    socket.on("data", pauseOnData ? () => socket.pause() : () => {})
    socket.on("error", () => {})
    if (++accepted === conns) emit({ result: { accepted } })
  })
  emit({ ready: true, port: await listen(server) })
}

/** Raw `ws` server verifying binary messages (payload = the test payload, no length prefix). */
const wsFrames = async () => {
  const { WebSocketServer } = await import("ws")
  const Http = await import("node:http")
  const expected = num(params, "frames")
  const v = new FrameVerifier(num(params, "payload"))
  const httpServer = Http.createServer()
  const wss = new WebSocketServer({ server: httpServer, perMessageDeflate: false, maxPayload: 1024 * 1024 })
  let accepted = false
  wss.on("connection", (ws) => {
    if (accepted) return void ws.terminate()
    accepted = true
    ws.binaryType = "nodebuffer"
    ws.on("message", (data: Buffer) => {
      v.pushPayload(data)
      v.lastFrameAt = nowNs()
    })
    ws.on("close", () => finish(frameResult(v, expected, nowNs())))
    ws.on("error", (e) => fail(e))
  })
  emit({ ready: true, port: await listen(httpServer) })
}

const wsEcho = async () => {
  const { WebSocketServer } = await import("ws")
  const Http = await import("node:http")
  const httpServer = Http.createServer()
  const wss = new WebSocketServer({ server: httpServer, perMessageDeflate: false, maxPayload: 1024 * 1024 })
  wss.on("connection", (ws) => {
    let echoed = 0
    ws.binaryType = "nodebuffer"
    ws.on("message", (data: Buffer) => {
      echoed++
      ws.send(data, { binary: true })
    })
    ws.on("close", () => finish({ echoed }))
    ws.on("error", (e) => fail(e))
  })
  emit({ ready: true, port: await listen(httpServer) })
}

const wsTetherEcho = async () => {
  const { Effect, Stream } = await import("effect")
  const { WebSocket } = await loadTether(params)
  let echoed = 0
  const program = Effect.scoped(Effect.gen(function*() {
    const done = yield* Effect.makeLatch(false)
    const server = yield* WebSocket.serve({ port: 0, host: "127.0.0.1", perMessageDeflate: false }, (conn) =>
      Stream.runForEach(conn.incoming, (m) => {
        echoed++
        return conn.send(m)
      }).pipe(Effect.ensuring(done.open), Effect.orDie))
    emit({ ready: true, port: server.address.port })
    yield* done.await
  }))
  Effect.runPromise(program).then(() => finish({ echoed }), fail)
}

/** A down peer: the port was just bound and closed again, so a connect to it is refused. */
const closedPort = async () => {
  const server = Net.createServer()
  const port = await listen(server)
  await new Promise<void>((resolve) => server.close(() => resolve()))
  emit({ ready: true, port })
  finish({ port })
}

/** Accept timing and idle memory of `conns` server-side sessions, then the time to shut them all down. */
interface SessionsRun {
  readonly accepted: () => number
  readonly shutdown: () => Promise<Record<string, number>>
}

const sessionsCommon = async (port: number, run: SessionsRun, firstAt: () => number, lastAt: () => number) => {
  const conns = num(params, "conns")
  const before = memorySnapshot()
  emit({ ready: true, port })
  // every client is connected and idle: bounded by the child's own time limit
  while (run.accepted() < conns) await new Promise((res) => setTimeout(res, 5))
  await new Promise((res) => setTimeout(res, 50))
  const idle = memorySnapshot()
  const t0 = nowNs()
  const report = await run.shutdown()
  const shutdownMs = (nowNs() - t0) / 1e6
  finish({
    conns,
    acceptRate: conns / ((lastAt() - firstAt()) / 1e9),
    heapPerSession: (idle.heapUsed + idle.external - before.heapUsed - before.external) / conns,
    rssPerSession: (idle.rss - before.rss) / conns,
    shutdownMs,
    ...report
  })
}

const sessionsRaw = async () => {
  const sockets = new Set<Net.Socket>()
  let firstAt = 0
  let lastAt = 0
  let accepted = 0
  const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
    if (firstAt === 0) firstAt = nowNs()
    lastAt = nowNs()
    accepted++
    sockets.add(socket)
    socket.setNoDelay(true)
    socket.on("data", () => {})
    socket.on("error", () => {})
    socket.on("close", () => sockets.delete(socket))
  })
  const port = await listen(server)
  const lingerMs = num(params, "lingerMs")
  const shutdownMs = num(params, "shutdownTimeoutMs")
  await sessionsCommon(port, {
    accepted: () => accepted,
    // the raw equivalent of a graceful shutdown: FIN everywhere, destroy after the linger bound, then
    // after the shutdown bound whatever remains
    shutdown: () =>
      new Promise((resolve) => {
        server.close()
        const count = sockets.size
        let aborted = 0
        for (const s of sockets) {
          s.end()
          s.once("end", () => s.destroy())
          setTimeout(() => s.destroy(), lingerMs).unref()
        }
        const bound = setTimeout(() => {
          aborted = sockets.size
          for (const s of sockets) s.destroy()
        }, shutdownMs)
        const poll = setInterval(() => {
          if (sockets.size === 0) {
            clearInterval(poll)
            clearTimeout(bound)
            resolve({ sessions: count, graceful: count - aborted, aborted })
          }
        }, 1)
      })
  }, () => firstAt, () => lastAt)
}

const sessionsTether = async () => {
  const { Effect, Exit, Option, Scope, Stream } = await import("effect")
  const { Listener } = await loadTether(params)
  type Conn = { readonly read: import("effect").Effect.Effect<import("effect").Option.Option<unknown>> }
  const readAll = (conn: Conn): import("effect").Effect.Effect<void> =>
    Effect.flatMap(conn.read, (o) => (Option.isNone(o) ? Effect.void : readAll(conn)))
  let firstAt = 0
  let lastAt = 0
  let accepted = 0
  const scope = Effect.runSync(Scope.make())
  const server = await Effect.runPromise(
    Listener.serve({
      port: 0,
      backlog: 4096,
      maxConnections: num(params, "conns") + 10,
      lingerTimeout: num(params, "lingerMs"),
      sessionGrace: 10,
      shutdownTimeout: num(params, "shutdownTimeoutMs")
    }, (conn) =>
      Effect.suspend(() => {
        if (firstAt === 0) firstAt = nowNs()
        lastAt = nowNs()
        accepted++
        return params.handler === "read" ? readAll(conn) : Stream.runDrain(conn.incoming)
      })).pipe(Scope.extend(scope))
  )
  await sessionsCommon(server.address.port, {
    accepted: () => accepted,
    shutdown: async () => {
      const r = await Effect.runPromise(server.shutdown)
      await Effect.runPromise(Scope.close(scope, Exit.void))
      return { sessions: r.sessions, graceful: r.graceful, aborted: r.aborted }
    }
  }, () => firstAt, () => lastAt)
}

const rpcServer = async (kind: "platform" | "tether") => {
  const { Effect, Scope } = await import("effect")
  const { serveRpc, loadTetherModule } = await import("../lib/rpc.js")
  const program = Effect.gen(function*() {
    const scope = yield* Scope.make()
    let server
    if (kind === "platform") {
      const NodeSocketServer = yield* Effect.promise(() => import("@effect/platform-node/NodeSocketServer"))
      server = yield* Scope.extend(NodeSocketServer.make({ port: 0, host: "127.0.0.1" }), scope)
    } else {
      const tether = yield* Effect.promise(() => loadTether(params))
      const PlatformSocketServer = yield* Effect.promise(() =>
        loadTetherModule<typeof import("../../src/PlatformSocketServer.js")>(params, "PlatformSocketServer"))
      server = yield* Scope.extend(
        PlatformSocketServer.make({ port: 0, host: "127.0.0.1", codec: tether.Framing.lengthPrefixed() }),
        scope
      )
    }
    yield* serveRpc(server, scope, (served) => finish({ served }))
    return server.address._tag === "TcpAddress" ? server.address.port : 0
  })
  emit({ ready: true, port: await Effect.runPromise(program) })
}

const main = async () => {
  switch (params.variant) {
    case "rpc-platform":
      return rpcServer("platform")
    case "rpc-tether":
      return rpcServer("tether")
    case "closed-port":
      return closedPort()
    case "frames":
      return rawFrames()
    case "tether-frames":
      return tetherFrames()
    case "echo":
      return rawEcho()
    case "tether-echo":
      return tetherEcho()
    case "tether-echo-read":
      return tetherEcho(true)
    case "sink-many":
      return sinkMany()
    case "hold-many":
      return holdMany()
    case "ws-echo":
      return wsEcho()
    case "ws-tether-echo":
      return wsTetherEcho()
    case "ws-frames":
      return wsFrames()
    case "sessions-raw":
      return sessionsRaw()
    case "sessions-tether":
      return sessionsTether()
    default:
      throw new Error(`unknown receiver variant ${params.variant}`)
  }
}

main().catch(fail)
