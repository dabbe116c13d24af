/**
 * Bench receiver process. Listens on 127.0.0.1 (random port), prints
 * `{"ready":true,"port":N}`, then one `{"result":…}` line and exits.
 *
 * Variants:
 * - `frames`        raw node:net receiver: verifies length-prefixed frames (count, order, checksum)
 * - `tether-frames` the same through a tether Connection (`incoming` stream)
 * - `echo`          raw node:net echo server (no-delay)
 * - `tether-echo`   tether echo server (`incoming` → `send`)
 * - `sink-many`     accepts `conns` connections, verifies `rounds` frames on each
 * - `ws-frames`     raw `ws` server, verifies binary messages
 * - `closed-port`   a peer that is down: binds a port, closes it again (connects are refused), reports at once
 */
import * as Net from "node:net"
import { emit, fail, loadTether, finish, FrameVerifier, guardChild, nowNs, num, readParams } from "../lib/common.js"

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

const tetherEcho = async () => {
  const { Effect, Stream } = await import("effect")
  const { Connection, Transport } = await loadTether(params)
  const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
    const program = Effect.scoped(Effect.gen(function*() {
      const transport = yield* Transport.fromSocket(socket)
      const conn = yield* Connection.make(transport, { lingerTimeout: "2 seconds" })
      let echoed = 0
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

/** A down peer: the port was just bound and closed again, so a connect to it is refused. */
const closedPort = async () => {
  const server = Net.createServer()
  const port = await listen(server)
  await new Promise<void>((resolve) => server.close(() => resolve()))
  emit({ ready: true, port })
  finish({ port })
}

const main = async () => {
  switch (params.variant) {
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
    case "sink-many":
      return sinkMany()
    case "ws-frames":
      return wsFrames()
    default:
      throw new Error(`unknown receiver variant ${params.variant}`)
  }
}

main().catch(fail)
