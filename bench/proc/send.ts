/**
 * Bench sender process: connects to the receiver on 127.0.0.1:`port`, runs
 * one variant and prints one `{"result":…}` line. Times are monotonic
 * nanoseconds (comparable with the receiver's, see `nowNs`).
 *
 * Senders that must keep their sockets open until the receiver has counted
 * everything (broadcast) report and then wait to be killed by the orchestrator.
 */
import { once } from "node:events"
import * as Net from "node:net"
import { emit, fail, loadTether, finish, FrameVerifier, guardChild, memorySnapshot, nowNs, num, payload, readParams, writeFrame } from "../lib/common.js"

const params = readParams()
guardChild(num(params, "limitMs", 120_000))
const port = num(params, "port")
const host = "127.0.0.1"

/** Tether Connection options passed through from the orchestrator (tuning runs). */
const tetherOptions = (params.tether ?? {}) as Record<string, number>

const connectRaw = (): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    // no-delay like tether's sockets, unless the orchestrator asks otherwise (param `noDelay: false`)
    const socket = Net.connect({ host, port, noDelay: params.noDelay !== false })
    socket.once("connect", () => {
      socket.off("error", reject)
      resolve(socket)
    })
    socket.once("error", reject)
  })

/** Waits until everything written is flushed and the peer closed its side. */
const endRaw = async (socket: Net.Socket) => {
  const closed = once(socket, "close")
  socket.end()
  socket.resume()
  await closed
}

/** Sends `frames` frames of `size` bytes, `perWrite` frames packed per write, waiting for 'drain'. */
const rawStream = async (frames: number, size: number, perWrite: number) => {
  const socket = await connectRaw()
  const frameBytes = size + 4
  let i = 0
  const startAt = nowNs()
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject)
    const pump = () => {
      while (i < frames) {
        const k = Math.min(perWrite, frames - i)
        const buf = Buffer.allocUnsafe(k * frameBytes)
        let off = 0
        for (let j = 0; j < k; j++) off = writeFrame(buf, off, i++, size)
        if (!socket.write(buf)) {
          socket.once("drain", pump)
          return
        }
      }
      resolve()
    }
    pump()
  })
  const sentAt = nowNs()
  await endRaw(socket)
  finish({ startAt, sentAt, frames })
}

/**
 * One write per frame (one Buffer each), corked per tick: the first write of a
 * tick calls `cork()` and schedules `process.nextTick(uncork)`, so every frame
 * written in the same tick leaves in one writev — what a careful Node user,
 * ioredis or nats.js does. Backpressure as in `rawStream`: when `write`
 * returns false, wait for 'drain' (the pending uncork flushes the buffer).
 */
const rawCorkTick = async (frames: number, size: number) => {
  const socket = await connectRaw()
  const frameBytes = size + 4
  let corked = false
  const uncork = () => {
    corked = false
    socket.uncork()
  }
  const write = (buf: Buffer): boolean => {
    if (!corked) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    return socket.write(buf)
  }
  let i = 0
  const startAt = nowNs()
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject)
    const pump = () => {
      while (i < frames) {
        const buf = Buffer.allocUnsafe(frameBytes)
        writeFrame(buf, 0, i++, size)
        if (!write(buf)) {
          socket.once("drain", pump)
          return
        }
      }
      resolve()
    }
    pump()
  })
  const sentAt = nowNs()
  await endRaw(socket)
  finish({ startAt, sentAt, frames })
}

/** Like `rawStream` with one frame per write, but each frame as two chunks (header, payload) through cork/uncork (writev), `perWrite` frames per writev. */
const rawWritev = async (frames: number, size: number, perWrite: number) => {
  const socket = await connectRaw()
  let i = 0
  const startAt = nowNs()
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject)
    const pump = () => {
      while (i < frames) {
        const k = Math.min(perWrite, frames - i)
        socket.cork()
        let ok = true
        for (let j = 0; j < k; j++) {
          const header = Buffer.allocUnsafe(4)
          header.writeUInt32BE(size, 0)
          ok = socket.write(header) && ok
          ok = socket.write(payload(i++, size)) && ok
        }
        socket.uncork()
        if (!ok) {
          socket.once("drain", pump)
          return
        }
      }
      resolve()
    }
    pump()
  })
  const sentAt = nowNs()
  await endRaw(socket)
  finish({ startAt, sentAt, frames })
}

const platformStream = async (frames: number, size: number) => {
  const { Deferred, Effect, Fiber } = await import("effect")
  const NodeSocket = await import("@effect/platform-node/NodeSocket")
  const program = Effect.scoped(Effect.gen(function*() {
    const socket = yield* NodeSocket.makeNet({ host, port, noDelay: true })
    const opened = yield* Deferred.make<void>()
    const reader = yield* Effect.fork(socket.runRaw(() => {}, { onOpen: Deferred.succeed(opened, undefined) }))
    yield* Deferred.await(opened)
    const startAt = nowNs()
    // the writer's scope ends the socket (FIN) when it closes
    yield* Effect.scoped(Effect.gen(function*() {
      const write = yield* socket.writer
      for (let i = 0; i < frames; i++) {
        const frame = Buffer.allocUnsafe(size + 4)
        writeFrame(frame, 0, i, size)
        yield* write(frame)
      }
    }))
    const sentAt = nowNs()
    yield* Fiber.await(reader) // the peer's EOF
    return { startAt, sentAt, frames }
  }))
  finish(await Effect.runPromise(program))
}

const tetherStream = async (frames: number, size: number, batch: number, packed = 0) => {
  const { Effect } = await import("effect")
  const { Connection } = await loadTether(params)
  const program = Effect.scoped(Effect.gen(function*() {
    const conn = yield* Connection.connectTcp({ port, host, ...tetherOptions })
    const startAt = nowNs()
    if (packed > 0) {
      // the application packs frames itself and hands tether one pre-encoded buffer per call
      for (let i = 0; i < frames;) {
        const k = Math.min(packed, frames - i)
        const buf = Buffer.allocUnsafe(k * (size + 4))
        let off = 0
        for (let j = 0; j < k; j++) off = writeFrame(buf, off, i++, size)
        yield* conn.sendEncoded(new Connection.Encoded(buf, buf))
      }
    } else if (batch <= 1) {
      for (let i = 0; i < frames; i++) yield* conn.send(payload(i, size))
    } else {
      for (let i = 0; i < frames;) {
        const k = Math.min(batch, frames - i)
        const list: Array<Uint8Array> = new Array(k)
        for (let j = 0; j < k; j++) list[j] = payload(i++, size)
        yield* conn.sendAll(list)
      }
    }
    const sentAt = nowNs()
    const outcome = yield* conn.close("done")
    return {
      startAt,
      sentAt,
      frames,
      units: packed > 0 ? Math.ceil(frames / packed) : frames,
      delivered: outcome.delivered,
      undelivered: outcome.undelivered.length,
      drained: outcome.drained
    }
  }))
  finish(await Effect.runPromise(program))
}

// ---- WebSocket ----

/** Raw `ws` client: one `send` per message, pausing while more than 64 KiB is buffered. */
const wsRaw = async (frames: number, size: number) => {
  const { WebSocket } = await import("ws")
  const ws = new WebSocket(`ws://${host}:${port}/`, { perMessageDeflate: false })
  await once(ws, "open")
  const startAt = nowNs()
  let i = 0
  await new Promise<void>((resolve, reject) => {
    ws.once("error", reject)
    const pump = () => {
      while (i < frames) {
        const last = i === frames - 1
        const p = payload(i++, size)
        if (ws.bufferedAmount > 64 * 1024 || last) {
          ws.send(p, { binary: true }, (err) => (err ? reject(err) : last ? resolve() : pump()))
          return
        }
        ws.send(p, { binary: true })
      }
    }
    pump()
  })
  const sentAt = nowNs()
  const closed = once(ws, "close")
  ws.close(1000)
  await closed
  finish({ startAt, sentAt, frames })
}

const wsTether = async (frames: number, size: number) => {
  const { Effect } = await import("effect")
  const { WebSocket } = await loadTether(params)
  const program = Effect.scoped(Effect.gen(function*() {
    const conn = yield* WebSocket.connect(`ws://${host}:${port}/`, { ...tetherOptions })
    const scratch = Buffer.allocUnsafe(size)
    const startAt = nowNs()
    for (let i = 0; i < frames; i++) {
      scratch.writeUInt32BE(i, 0)
      yield* conn.send(WebSocket.binary(Buffer.from(scratch))) // a copy: the message keeps its bytes
    }
    const sentAt = nowNs()
    const outcome = yield* conn.close("done")
    return {
      startAt,
      sentAt,
      frames,
      delivered: outcome.delivered,
      undelivered: outcome.undelivered.length,
      drained: outcome.drained
    }
  }))
  finish(await Effect.runPromise(program))
}

// ---- round trip ----

/** WebSocket ping-pong with a raw `ws` client: one 64-byte binary message outstanding. */
const wsRttRaw = async (warmup: number, count: number) => {
  const { WebSocket } = await import("ws")
  const ws = new WebSocket(`ws://${host}:${port}/`, { perMessageDeflate: false })
  await once(ws, "open")
  ws.binaryType = "nodebuffer"
  const samples = new Float64Array(count)
  let i = 0
  let sentAt = 0
  const ping = () => {
    sentAt = nowNs()
    ws.send(payload(i, 64), { binary: true })
  }
  await new Promise<void>((resolve, reject) => {
    ws.once("error", reject)
    ws.on("message", (data: Buffer) => {
      const rtt = nowNs() - sentAt
      if (data.readUInt32BE(0) !== i) return reject(new Error(`echo ${data.readUInt32BE(0)} for ping ${i}`))
      if (i >= warmup) samples[i - warmup] = rtt
      i++
      if (i < warmup + count) ping()
      else resolve()
    })
    ping()
  })
  const closed = once(ws, "close")
  ws.close(1000)
  await closed
  finish({ ...percentiles(samples), unit: "us" })
}

/** The same with a tether `WebSocket.connect` client (`send`, then pull one message from `incoming`). */
const wsRttTether = async (warmup: number, count: number) => {
  const { Effect, Stream } = await import("effect")
  const { WebSocket } = await loadTether(params)
  const program = Effect.scoped(Effect.gen(function*() {
    const conn = yield* WebSocket.connect(`ws://${host}:${port}/`, { ...tetherOptions })
    const pull = yield* Stream.toPull(conn.incoming)
    const samples = new Float64Array(count)
    for (let i = 0; i < warmup + count; i++) {
      const t = nowNs()
      yield* conn.send(WebSocket.binary(payload(i, 64)))
      let got = 0
      while (got === 0) {
        const chunk = yield* Effect.orDie(pull)
        for (const m of chunk) {
          if (m._tag !== "Binary") return yield* Effect.die(new Error(`a ${m._tag} echo for ping ${i}`))
          const seq = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).readUInt32BE(0)
          if (seq !== i) return yield* Effect.die(new Error(`echo ${seq} for ping ${i}`))
          got++
        }
      }
      if (i >= warmup) samples[i - warmup] = nowNs() - t
    }
    yield* conn.close("done")
    return samples
  }))
  finish({ ...percentiles(await Effect.runPromise(program)), unit: "us" })
}

const percentiles = (samples: Float64Array) => {
  const sorted = Float64Array.from(samples).sort()
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1000
  let sum = 0
  for (const s of sorted) sum += s
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), mean: sum / sorted.length / 1000, n: sorted.length }
}

const rttRaw = async (warmup: number, count: number) => {
  const socket = await connectRaw()
  const samples = new Float64Array(count)
  let i = 0
  let sentAt = 0
  const ping = () => {
    const f = Buffer.allocUnsafe(64)
    writeFrame(f, 0, i, 60)
    sentAt = nowNs()
    socket.write(f)
  }
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject)
    const v = new FrameVerifier(60, () => {
      const rtt = nowNs() - sentAt
      if (i >= warmup) samples[i - warmup] = rtt
      i++
      if (i < warmup + count) ping()
      else resolve()
    })
    socket.on("data", (c: Buffer) => v.push(c))
    ping()
  })
  await endRaw(socket)
  finish({ ...percentiles(samples), unit: "us" })
}

/** `readLoop`: pull the echo with `conn.read` instead of a pull of `incoming`. */
const rttTether = async (warmup: number, count: number, readLoop = false) => {
  const { Effect, Option, Stream } = await import("effect")
  const { Connection } = await loadTether(params)
  const program = Effect.scoped(Effect.gen(function*() {
    const conn = yield* Connection.connectTcp({ port, host, ...tetherOptions })
    const pull = readLoop
      ? Effect.flatMap(conn.read, Option.match({ onNone: () => Effect.die(new Error("echo ended")), onSome: Effect.succeed }))
      : yield* Stream.toPull(conn.incoming)
    const samples = new Float64Array(count)
    for (let i = 0; i < warmup + count; i++) {
      const t = nowNs()
      yield* conn.send(payload(i, 60))
      let got = 0
      while (got === 0) {
        const chunk = yield* Effect.orDie(pull)
        for (const f of chunk) {
          const seq = Buffer.from(f.buffer, f.byteOffset, f.byteLength).readUInt32BE(0)
          if (seq !== i || f.length !== 60) return yield* Effect.die(new Error(`echo ${seq} for ping ${i}`))
          got++
        }
      }
      if (i >= warmup) samples[i - warmup] = nowNs() - t
    }
    yield* conn.close("done")
    return samples
  }))
  finish({ ...percentiles(await Effect.runPromise(program)), unit: "us" })
}

// ---- fleet: the same ping-pong and a pipelined run through FleetHub + NatsEngine, or through a Hub ----

/** nats-server -js on a free loopback port with a temporary store, killed with this process. */
const startNats = async (): Promise<string> => {
  const ChildProcess = await import("node:child_process")
  const Fs = await import("node:fs")
  const Os = await import("node:os")
  const Path = await import("node:path")
  const free = await new Promise<number>((resolve) => {
    const srv = Net.createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as Net.AddressInfo).port
      srv.close(() => resolve(p))
    })
  })
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tether-bench-nats-"))
  const child = ChildProcess.spawn("nats-server", ["-js", "-a", "127.0.0.1", "-p", String(free), "-sd", dir], { stdio: "ignore" })
  process.once("exit", () => {
    child.kill("SIGKILL")
    Fs.rmSync(dir, { recursive: true, force: true })
  })
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = Net.connect(free, "127.0.0.1")
      c.once("connect", () => {
        c.destroy()
        resolve(true)
      })
      c.once("error", () => resolve(false))
    })
    if (ok) return `nats://127.0.0.1:${free}`
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error("nats-server did not start")
}

const fleetRtt = async (mode: "hub" | "fleet", warmup: number, count: number, pipelined: number) => {
  const { Effect, Queue, Schema, Stream } = await import("effect")
  const T = await loadTether(params)
  const natsEntry = typeof params.tetherEntry === "string"
    ? params.tetherEntry.replace(/index\.js$/, "NatsEngine.js")
    : "../../src/NatsEngine.js"
  const url = mode === "fleet" ? await startNats() : ""
  const NatsEngine = mode === "fleet" ? await import(natsEntry) as typeof import("../../src/NatsEngine.js") : undefined
  const program = Effect.scoped(Effect.gen(function*() {
    const echoes = yield* Queue.bounded<number>(pipelined + 16)
    const session = (conn: import("../../src/Connection.js").Connection) =>
      Stream.runForEach(conn.incoming, (f) =>
        Queue.offer(echoes, Buffer.from(f.buffer, f.byteOffset, f.byteLength).readUInt32BE(0))).pipe(
          Effect.as(T.Dialer.Decision.Reconnect())
        )
    let hub: import("../../src/Hub.js").Hub
    if (mode === "hub") {
      hub = yield* T.Hub.make()
      yield* hub.addDialer("p", { host, port, session })
    } else {
      const Kind = T.PeerKind.make("bench", {
        spec: Schema.Struct({ port: Schema.Number }),
        dialer: (_key, spec) => ({ host, port: spec.port, session })
      })
      const engine = yield* NatsEngine!.make({ servers: [url], node: "bench" })
      const fleet = yield* T.FleetHub.make({ kinds: [Kind] }).pipe(Effect.provideService(T.Engine.Engine, engine))
      yield* fleet.addPeer("p", Kind, { port })
      hub = fleet
    }
    const samples = new Float64Array(count)
    for (let i = 0; i < warmup + count; i++) {
      const t = nowNs()
      yield* Effect.orDie(hub.send("p", payload(i, 60)))
      const seq = yield* Queue.take(echoes)
      if (seq !== i) return yield* Effect.die(new Error(`echo ${seq} for ping ${i}`))
      if (i >= warmup) samples[i - warmup] = nowNs() - t
    }
    const base = warmup + count
    const startAt = nowNs()
    for (let i = 0; i < pipelined; i++) yield* Effect.orDie(hub.send("p", payload(base + i, 60)))
    for (let i = 0; i < pipelined; i++) {
      const seq = yield* Queue.take(echoes)
      if (seq !== base + i) return yield* Effect.die(new Error(`echo ${seq} for frame ${base + i}`))
    }
    const fps = pipelined / ((nowNs() - startAt) / 1e9)
    return { ...percentiles(samples), fps }
  }))
  finish({ ...await Effect.runPromise(program), unit: "us" })
}

// ---- broadcast and idle memory ----

const connectMany = async <A>(n: number, concurrency: number, open: () => Promise<A>): Promise<Array<A>> => {
  const out: Array<A> = []
  for (let i = 0; i < n; i += concurrency) {
    const k = Math.min(concurrency, n - i)
    out.push(...await Promise.all(Array.from({ length: k }, open)))
  }
  return out
}

const broadcastRaw = async (conns: number, rounds: number, size: number) => {
  const before = memorySnapshot()
  const sockets = await connectMany(conns, 250, async () => {
    const s = await connectRaw()
    s.on("data", () => {})
    s.on("error", () => {})
    return s
  })
  const idle = memorySnapshot()
  // warm-up round (not timed): wait until every socket has handed it to the kernel
  const warm = Buffer.allocUnsafe(size + 4)
  writeFrame(warm, 0, 0, size)
  await Promise.all(sockets.map((s) => new Promise<void>((resolve, reject) => s.write(warm, (e) => (e ? reject(e) : resolve())))))
  const startAt = nowNs()
  for (let r = 1; r <= rounds; r++) {
    const shared = Buffer.allocUnsafe(size + 4)
    writeFrame(shared, 0, r, size)
    for (const s of sockets) s.write(shared)
  }
  const fanoutAt = nowNs()
  emit({ result: { startAt, fanoutAt, conns: sockets.length, before, idle } })
}

const broadcastTether = async (conns: number, rounds: number, size: number) => {
  const { Effect } = await import("effect")
  const { Connection, Framing } = await loadTether(params)
  const codec = Framing.lengthPrefixed()
  const before = memorySnapshot()
  const program = Effect.scoped(Effect.gen(function*() {
    const list = yield* Effect.forEach(
      Array.from({ length: conns }),
      () => Connection.connectTcp({ port, host, codec, ...tetherOptions }),
      { concurrency: 250 }
    )
    const idle = memorySnapshot()
    // warm-up round (not timed): wait until every connection has written it
    const warm = payload(0, size)
    const warmShared = new Connection.Encoded(Framing.encode(codec, warm), warm)
    yield* Effect.forEach(list, (c) => c.sendEncoded(warmShared), { discard: true })
    while (list.some((c) => c.unsafeStats().framesOut < 1)) yield* Effect.sleep("1 millis")
    const startAt = nowNs()
    for (let r = 1; r <= rounds; r++) {
      const p = payload(r, size)
      const shared = new Connection.Encoded(Framing.encode(codec, p), p)
      yield* Effect.forEach(list, (c) => c.sendEncoded(shared), { discard: true })
    }
    const fanoutAt = nowNs()
    emit({ result: { startAt, fanoutAt, conns: list.length, before, idle } })
    return yield* Effect.never
  }))
  await Effect.runPromise(program)
}

// ---- close and drain ----

const closeRaw = async (frames: number, size: number) => {
  const socket = await connectRaw()
  const queueAt = nowNs()
  for (let i = 0; i < frames; i++) {
    const f = Buffer.allocUnsafe(size + 4)
    writeFrame(f, 0, i, size)
    socket.write(f)
  }
  const closeAt = nowNs()
  await endRaw(socket)
  finish({ queueAt, closeAt, closedAt: nowNs() })
}

const closeTether = async (frames: number, size: number) => {
  const { Effect } = await import("effect")
  const { Connection } = await loadTether(params)
  const program = Effect.scoped(Effect.gen(function*() {
    const conn = yield* Connection.connectTcp({
      port,
      host,
      sendQueueCapacity: frames,
      drainTimeout: "30 seconds",
      ...tetherOptions
    })
    const list: Array<Uint8Array> = new Array(frames)
    for (let i = 0; i < frames; i++) list[i] = payload(i, size)
    const queueAt = nowNs()
    yield* conn.sendAll(list)
    const closeAt = nowNs()
    const outcome = yield* conn.close("done")
    return {
      queueAt,
      closeAt,
      closedAt: nowNs(),
      delivered: outcome.delivered,
      undelivered: outcome.undelivered.length,
      drained: outcome.drained,
      peerEof: outcome.peerEof
    }
  }))
  finish(await Effect.runPromise(program))
}

// ---- watchdogs: CPU and event-loop delay of N idle connections ----

/**
 * Opens `conns` idle connections (raw node:net, tether without watchdogs, or tether with
 * `Watchdog.defaults()` and the watchdog driver), lets them settle for `settleMs`, then measures the
 * process's CPU (`process.cpuUsage`) and the worst event-loop delay (`monitorEventLoopDelay`) over
 * `windowMs`. Reports and waits to be killed (the connections stay open until then).
 *
 * Mode `tether-stall`: the same with `stall` of the connections sending 64 KiB frames as fast as they
 * are taken from the start of the window; the receiver pauses every socket that receives data, so
 * those stop being read. Their reaps (reason, time from the first send) are awaited after the window,
 * up to `stallTimeoutMs` + 2 probes + 10 s.
 */
const watchIdle = async (conns: number, mode: string, windowMs: number, settleMs: number) => {
  const { monitorEventLoopDelay } = await import("node:perf_hooks")
  const measure = async (connected: number, atWindowStart?: () => void) => {
    await new Promise((r) => setTimeout(r, settleMs))
    const h = monitorEventLoopDelay({ resolution: 5 })
    const cpu0 = process.cpuUsage()
    const t0 = nowNs()
    h.enable()
    atWindowStart?.()
    await new Promise((r) => setTimeout(r, windowMs))
    h.disable()
    const cpu = process.cpuUsage(cpu0)
    const elapsedMs = (nowNs() - t0) / 1e6
    return {
      conns: connected,
      cpuPct: ((cpu.user + cpu.system) / 1000 / elapsedMs) * 100,
      maxDelayMs: h.max / 1e6,
      p99DelayMs: h.percentile(99) / 1e6
    }
  }
  if (mode === "raw") {
    const sockets: Array<Net.Socket> = []
    for (let i = 0; i < conns; i += 250) {
      const batch = await Promise.all(Array.from({ length: Math.min(250, conns - i) }, connectRaw))
      for (const s of batch) {
        s.on("data", () => {})
        s.on("error", () => {})
        sockets.push(s)
      }
    }
    emit({ result: await measure(sockets.length) })
    return
  }
  const { Effect, Fiber } = await import("effect")
  const { Connection, Framing, Watchdog } = await loadTether(params)
  const codec = Framing.lengthPrefixed()
  const stallCount = mode === "tether-stall" ? num(params, "stall") : 0
  const stallTimeoutMs = num(params, "stallTimeoutMs", 30_000)
  const probeMs = 1_000
  const watchdogs = mode === "tether-defaults"
    ? Watchdog.defaults()
    : mode === "tether-stall"
    ? Watchdog.defaults({ reaper: { stallTimeout: `${stallTimeoutMs} millis`, probeInterval: `${probeMs} millis` } })
    : []
  // the reap is the watchdog's, not the write deadline's
  const options: { writeTimeout?: number } = mode === "tether-stall" ? { writeTimeout: 600_000 } : {}
  const program = Effect.scoped(Effect.gen(function*() {
    const list = yield* Effect.forEach(
      Array.from({ length: conns }),
      () => Connection.connectTcp({ port, host, codec, watchdogs, ...options, ...tetherOptions }),
      { concurrency: 250 }
    )
    const probe = yield* Watchdog.TcpProbe
    const readsBefore = probe.reads()
    // the connections that stop being read: spread over the list
    const stalled = Array.from({ length: stallCount }, (_, i) => list[Math.floor((i * conns) / stallCount)]!)
    const reaps: Array<{ at: number; reason: string }> = []
    let blastAt = 0
    const start: Array<() => void> = []
    const senders = yield* Effect.forEach(stalled, (conn) =>
      Effect.forkScoped(Effect.gen(function*() {
        yield* Effect.async<void>((resume) => void (start.push(() => resume(Effect.void))))
        const frame = new Uint8Array(64 * 1024)
        yield* Effect.fork(Effect.forever(conn.send(frame)).pipe(Effect.ignore))
        const reason = yield* conn.closed
        reaps.push({ at: nowNs(), reason: reason._tag })
      })))
    const result = yield* Effect.promise(() =>
      measure(list.length, () => {
        blastAt = nowNs()
        for (const f of start) f()
      })
    )
    if (stallCount > 0) {
      const limit = stallTimeoutMs + 2 * probeMs + 10_000
      yield* Effect.timeout(Fiber.joinAll(senders), `${limit} millis`).pipe(Effect.ignore)
    }
    const stalledSet = new Set(stalled)
    const reaped = list.filter((c) => !stalledSet.has(c) && c.unsafeStats().state !== "Active").length
    const stall = stallCount === 0 ? {} : {
      stalled: stallCount,
      stalledReaped: reaps.filter((r) => r.reason === "SendStalled").length,
      maxReapMs: reaps.length === 0 ? -1 : Math.max(...reaps.map((r) => (r.at - blastAt) / 1e6)),
      reapBoundMs: stallTimeoutMs + 2 * probeMs
    }
    // /proc/net/tcp reads in the settle period + window (0 when every idle connection is skipped)
    emit({ result: { ...result, reaped, tableReads: probe.reads() - readsBefore, ...stall } })
    return yield* Effect.never
  }))
  // production setup: one watchdog driver for every connection (no probe fiber per connection)
  await Effect.runPromise(mode === "tether-none" ? program : Effect.provide(program, Watchdog.layerDriver))
}

// ---- backlog: offer cost at a given depth (the peer is down) ----

/**
 * Offer cost at a steady depth: fill to `depth` (untimed), then `offers` timed offers, each evicting the
 * oldest frame (dropOldest at maxMessages = depth), so the depth stays `depth` throughout; `offers` untimed
 * offers before them warm the code up. Frames are
 * 60-byte payloads allocated per offer; maxAge is the default 5 minutes (each offer checks the age bound).
 */
const backlogRaw = (depth: number, offers: number, size: number) => {
  // what a careful user writes: an array used as a deque (push / shift), each entry stamped, the age
  // bound checked on every offer from the front, the count bound by evicting the front
  const maxAgeMillis = 5 * 60_000
  const q: Array<{ readonly frame: Uint8Array; readonly at: number }> = []
  let evicted = 0
  const offer = (frame: Uint8Array) => {
    const now = Date.now()
    while (q.length > 0 && now - q[0]!.at >= maxAgeMillis) q.shift()
    while (q.length >= depth) {
      q.shift()
      evicted++
    }
    q.push({ frame, at: now })
  }
  for (let i = 0; i < depth; i++) offer(payload(i, size))
  for (let i = 0; i < offers; i++) offer(payload(depth + i, size)) // warm-up
  evicted = 0
  const startAt = nowNs()
  for (let i = 0; i < offers; i++) offer(payload(depth + offers + i, size))
  const endAt = nowNs()
  if (q.length !== depth || evicted !== offers) throw new Error(`raw deque: depth ${q.length}, evicted ${evicted}`)
  finish({ startAt, endAt, offers, depth: q.length, evicted, events: 0 })
}

/** The strongest raw baseline: a ring buffer (power-of-two capacity, head index), O(1) at any depth. */
const backlogRawRing = (depth: number, offers: number, size: number) => {
  const maxAgeMillis = 5 * 60_000
  let cap = 16
  while (cap < depth) cap *= 2
  const frames: Array<Uint8Array | undefined> = new Array(cap)
  const stamps = new Float64Array(cap)
  const mask = cap - 1
  let head = 0
  let length = 0
  let evicted = 0
  const popFront = () => {
    frames[head] = undefined
    head = (head + 1) & mask
    length--
  }
  const offer = (frame: Uint8Array) => {
    const now = Date.now()
    while (length > 0 && now - stamps[head]! >= maxAgeMillis) popFront()
    while (length >= depth) {
      popFront()
      evicted++
    }
    const i = (head + length) & mask
    frames[i] = frame
    stamps[i] = now
    length++
  }
  for (let i = 0; i < depth; i++) offer(payload(i, size))
  for (let i = 0; i < offers; i++) offer(payload(depth + i, size)) // warm-up
  evicted = 0
  const startAt = nowNs()
  for (let i = 0; i < offers; i++) offer(payload(depth + offers + i, size))
  const endAt = nowNs()
  if (length !== depth || evicted !== offers) throw new Error(`raw ring: depth ${length}, evicted ${evicted}`)
  finish({ startAt, endAt, offers, depth: length, evicted, events: 0 })
}

const backlogTether = async (depth: number, offers: number, size: number) => {
  const { Effect } = await import("effect")
  const { Backlog } = await loadTether(params)
  let events = 0
  let evicted = 0
  const program = Effect.scoped(Effect.gen(function*() {
    const backlog = yield* Backlog.make({
      maxMessages: depth,
      policy: "dropOldest",
      onEvent: (e) =>
        Effect.sync(() => {
          events++
          if (e._tag === "Evicted") evicted += e.frames.length
        })
    })
    // fill in one call (prepend is a single O(n) step in every implementation), then the timed offers
    const fill: Array<Uint8Array> = []
    for (let i = 0; i < depth; i++) fill.push(payload(i, size))
    yield* backlog.prepend(fill)
    for (let i = 0; i < offers; i++) yield* backlog.offer(payload(depth + i, size)) // warm-up
    yield* Effect.yieldNow() // its last burst is reported
    events = 0
    evicted = 0
    const startAt = nowNs()
    for (let i = 0; i < offers; i++) yield* backlog.offer(payload(depth + offers + i, size))
    const endAt = nowNs()
    const held = backlog.size()
    yield* backlog.drainAll // reports any eviction burst still pending
    return { startAt, endAt, offers, depth: held, evicted, events }
  }))
  const r = await Effect.runPromise(program)
  if (r.depth !== depth || r.evicted !== offers) throw new Error(`tether backlog: depth ${r.depth}, evicted ${r.evicted}`)
  finish(r)
}

/** The same through `Dialer.send` to a peer that is down (the receiver's port refuses connects). */
const backlogDialer = async (depth: number, offers: number, size: number) => {
  const { Effect } = await import("effect")
  const { Dialer } = await loadTether(params)
  let events = 0
  let evicted = 0
  const program = Effect.scoped(Effect.gen(function*() {
    const dialer = yield* Dialer.make({
      host,
      port,
      backlog: { maxMessages: depth, policy: "dropOldest" },
      onEvent: (e) =>
        Effect.sync(() => {
          if (e._tag === "BacklogOverflow") {
            events++
            evicted += e.frames.length
          }
        })
    })
    for (let i = 0; i < depth + offers; i++) yield* dialer.send(payload(i, size)) // fill, then warm-up
    yield* Effect.yieldNow() // the warm-up's last burst is reported
    events = 0
    evicted = 0
    const startAt = nowNs()
    for (let i = 0; i < offers; i++) yield* dialer.send(payload(depth + offers + i, size))
    const endAt = nowNs()
    const held = dialer.unsafeStats().backlogMessages
    const outcome = yield* dialer.stop("done")
    return { startAt, endAt, offers, depth: held, evicted, events, handedBack: outcome.undelivered.length }
  }))
  const r = await Effect.runPromise(program)
  if (r.depth !== depth || r.evicted !== offers || r.handedBack !== depth) {
    throw new Error(`tether dialer: depth ${r.depth}, evicted ${r.evicted}, handed back ${r.handedBack}`)
  }
  finish(r)
}

/**
 * `conns` idle clients for the server-sessions case: `cooperative` ones answer the server's FIN at once
 * and report once every socket is closed; `stubborn` ones never read and never answer (the server must
 * abort them; a paused socket does not notice), so they report once connected and wait to be killed.
 */
const clientsMany = async (conns: number, stubborn: boolean) => {
  let connected = 0
  let closed = 0
  let resets = 0
  let failedConnects = 0
  let done: () => void = () => {}
  const allClosed = new Promise<void>((res) => {
    done = res
  })
  const open = (): Promise<void> =>
    new Promise((resolve) => {
      const socket = Net.connect({ host, port, allowHalfOpen: true, noDelay: true })
      let up = false
      socket.once("connect", () => {
        up = true
        connected++
        if (stubborn) socket.pause()
        resolve()
      })
      socket.on("error", () => {
        resets++
        if (!up) {
          failedConnects++
          resolve()
        }
      })
      if (!stubborn) {
        socket.on("data", () => {})
        socket.on("end", () => socket.end())
      }
      socket.on("close", () => {
        if (++closed === conns) done()
      })
    })
  // a connect that never settles must fail the run at its time limit, not let the process exit silently
  setInterval(() => {}, 1_000)
  // at most 256 connects in flight (the server's accept backlog is 4096)
  const t0 = nowNs()
  let next = 0
  await Promise.all(Array.from({ length: 256 }, async () => {
    while (next < conns) {
      next++
      await open()
    }
  }))
  const connectedAt = nowNs()
  if (stubborn) {
    // paused sockets do not keep the event loop alive (the interval above does)
    return emit({ result: { connected, failedConnects, connectMs: (connectedAt - t0) / 1e6 } })
  }
  await allClosed
  finish({ connected, failedConnects, closed, resets, connectMs: (connectedAt - t0) / 1e6 })
}

// ---- @effect/rpc round trips ----

/**
 * BenchApi calls through an @effect/rpc client: `warmup` + `count` calls one after the other (latency), then
 * `calls` calls from `fibers` fibers (throughput).
 */
const rpcClient = async (kind: "platform" | "tether", warmup: number, count: number, calls: number, fibers: number) => {
  const { Effect, Layer } = await import("effect")
  const { RpcClient, RpcSerialization } = await import("@effect/rpc")
  const { BenchApi, loadTetherModule } = await import("../lib/rpc.js")
  let protocol: import("effect/Layer").Layer<import("@effect/rpc/RpcClient").Protocol, unknown>
  if (kind === "platform") {
    const NodeSocket = await import("@effect/platform-node/NodeSocket")
    protocol = RpcClient.layerProtocolSocket().pipe(
      Layer.provide([NodeSocket.layerNet({ host, port, noDelay: true }), RpcSerialization.layerMsgPack])
    )
  } else {
    const RpcProtocol = await loadTetherModule<typeof import("../../src/RpcProtocol.js")>(params, "RpcProtocol")
    protocol = RpcProtocol.layerClient({ host, port, ...tetherOptions }).pipe(Layer.provide(RpcSerialization.layerMsgPack))
  }
  const program = Effect.gen(function*() {
    const client = yield* RpcClient.make(BenchApi)
    const samples = new Float64Array(count)
    for (let i = 0; i < warmup + count; i++) {
      const t = nowNs()
      const r = yield* client.Echo({ n: i })
      if (r !== i) return yield* Effect.die(new Error(`echo ${r} for call ${i}`))
      if (i >= warmup) samples[i - warmup] = nowNs() - t
    }
    const t0 = nowNs()
    let next = 0
    let sum = 0
    yield* Effect.forEach(Array.from({ length: fibers }), () =>
      Effect.whileLoop({
        while: () => next < calls,
        body: () => client.Echo({ n: next++ }),
        step: (r) => (sum += r)
      }), { concurrency: "unbounded", discard: true })
    const millis = (nowNs() - t0) / 1e6
    if (sum !== (calls * (calls - 1)) / 2) return yield* Effect.die(new Error(`throughput checksum ${sum}`))
    return { ...percentiles(samples), rate: calls / (millis / 1000), millis, unit: "us" }
  }).pipe(Effect.scoped, Effect.provide(protocol))
  finish(await Effect.runPromise(program))
}

const main = async () => {
  const frames = num(params, "frames", 0)
  const size = num(params, "payload", 60)
  switch (params.variant) {
    case "raw-write":
      return rawStream(frames, size, 1)
    case "raw-cork-tick":
      return rawCorkTick(frames, size)
    case "raw-packed":
      return rawStream(frames, size, num(params, "perWrite", 256))
    case "raw-writev":
      return rawWritev(frames, size, num(params, "perWrite", 4))
    case "platform":
      return platformStream(frames, size)
    case "tether-send":
      return tetherStream(frames, size, 1)
    case "tether-sendAll":
      return tetherStream(frames, size, num(params, "batch", 256))
    case "tether-packed":
      return tetherStream(frames, size, 1, num(params, "perWrite", 256))
    case "ws-raw":
      return wsRaw(frames, size)
    case "ws-tether":
      return wsTether(frames, size)
    case "ws-rtt-raw":
      return wsRttRaw(num(params, "warmup"), num(params, "count"))
    case "ws-rtt-tether":
      return wsRttTether(num(params, "warmup"), num(params, "count"))
    case "rtt-raw":
      return rttRaw(num(params, "warmup"), num(params, "count"))
    case "rtt-tether":
      return rttTether(num(params, "warmup"), num(params, "count"))
    case "rtt-tether-read":
      return rttTether(num(params, "warmup"), num(params, "count"), true)
    case "fleet-hub":
      return fleetRtt("hub", num(params, "warmup"), num(params, "count"), num(params, "pipelined"))
    case "fleet-nats":
      return fleetRtt("fleet", num(params, "warmup"), num(params, "count"), num(params, "pipelined"))
    case "bcast-raw":
      return broadcastRaw(num(params, "conns"), num(params, "rounds"), size)
    case "bcast-tether":
      return broadcastTether(num(params, "conns"), num(params, "rounds"), size)
    case "close-raw":
      return closeRaw(frames, size)
    case "close-tether":
      return closeTether(frames, size)
    case "backlog-raw":
      return backlogRaw(num(params, "depth"), num(params, "offers"), size)
    case "backlog-raw-ring":
      return backlogRawRing(num(params, "depth"), num(params, "offers"), size)
    case "backlog-tether":
      return backlogTether(num(params, "depth"), num(params, "offers"), size)
    case "backlog-dialer":
      return backlogDialer(num(params, "depth"), num(params, "offers"), size)
    case "watch-idle":
      return watchIdle(num(params, "conns"), String(params.mode), num(params, "windowMs"), num(params, "settleMs"))
    case "clients-many":
      return clientsMany(num(params, "conns"), params.stubborn === true)
    case "rpc-platform":
    case "rpc-tether":
      return rpcClient(
        params.variant === "rpc-platform" ? "platform" : "tether",
        num(params, "warmup"),
        num(params, "count"),
        num(params, "calls"),
        num(params, "fibers")
      )
    default:
      throw new Error(`unknown sender variant ${params.variant}`)
  }
}

main().catch(fail)
