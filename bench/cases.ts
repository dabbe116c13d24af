/**
 * The bench cases: for each, the variants (receiver + sender process
 * parameters, and how to turn their reports into metrics) and the ratios
 * with their targets.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { Message } from "./lib/child.js"

export type Size = "full" | "quick"

export interface Variant {
  readonly id: string
  readonly label: string
  readonly recv: Message
  readonly send: Message
  readonly limitMs: number
  readonly senderNodeArgs?: ReadonlyArray<string>
  /** Metrics of one run; throws when the run's integrity checks fail. */
  readonly metrics: (r: { send: Message; recv: Message }) => Record<string, number>
}

export interface Ratio {
  readonly label: string
  readonly num: readonly [string, string]
  /** A variant's metric, or a fixed number (an absolute bound, e.g. 1500 ms: the ratio is then metric ÷ bound). */
  readonly den: readonly [string, string] | number
  readonly better: "higher" | "lower"
  readonly target?: number | undefined
  readonly note?: string | undefined
}

export interface Case {
  readonly id: string
  readonly title: string
  readonly notes: ReadonlyArray<string>
  readonly units: Record<string, string>
  readonly unavailable?: () => string | undefined
  readonly variants: (size: Size) => ReadonlyArray<Variant>
  readonly ratios: ReadonlyArray<Ratio>
}

const n = (m: Message, key: string): number => {
  const v = m[key]
  if (typeof v !== "number") throw new Error(`report lacks numeric ${key}: ${JSON.stringify(m).slice(0, 300)}`)
  return v
}

/** Receiver must have verified every frame (count, order, checksum). */
const checkFrames = (recv: Message) => {
  if (recv.error !== null && recv.error !== undefined) throw new Error(`integrity: ${String(recv.error)}`)
}

/** A tether sender must report every frame delivered. */
const checkTether = (send: Message, frames: number) => {
  // a hand-packed sender queues one pre-encoded buffer (`units`) per many frames
  const units = typeof send.units === "number" ? send.units : frames
  if (send.delivered !== undefined && (send.delivered !== units || send.undelivered !== 0)) {
    throw new Error(`tether reported ${String(send.delivered)} delivered, ${String(send.undelivered)} undelivered of ${units}`)
  }
}

const throughput = (frames: number) => (r: { send: Message; recv: Message }) => {
  checkFrames(r.recv)
  checkTether(r.send, frames)
  const seconds = (n(r.recv, "lastFrameAt") - n(r.send, "startAt")) / 1e9
  return { rate: frames / seconds }
}

const bandwidth = (frames: number, payload: number) => (r: { send: Message; recv: Message }) => {
  checkFrames(r.recv)
  checkTether(r.send, frames)
  const seconds = (n(r.recv, "lastFrameAt") - n(r.send, "startAt")) / 1e9
  return { bandwidth: (frames * (payload + 4)) / seconds / 1e6 }
}

const streamVariant = (
  id: string,
  label: string,
  sender: string,
  frames: number,
  payload: number,
  extra: Message = {},
  receiver = "frames"
): Variant => ({
  id,
  label,
  recv: { variant: receiver, frames, payload },
  send: { variant: sender, frames, payload, ...extra },
  limitMs: 120_000,
  metrics: payload >= 1024 ? bandwidth(frames, payload) : throughput(frames)
})

const pick = (size: Size, full: number, quick: number) => (size === "full" ? full : quick)

const small: Case = {
  id: "small",
  title: "Small frames: 64-byte frames (4-byte length + 60 bytes), one sender",
  notes: [
    "Receiver: a raw node:net process that verifies every frame (count, order, checksum of sequence numbers), so the receiver is the same for every sender. `tether → tether` uses a tether Connection on the receiving side too.",
    "Rate = frames / (receiver's last frame − sender's first send), both on the system-wide monotonic clock.",
    "`raw cork per tick` is the baseline a careful Node user writes (ioredis and nats.js do the same): one `write` per frame (one Buffer each), the first write of a tick calls `cork()` and schedules `process.nextTick(() => uncork())`, so the frames written in one tick leave in one writev; when `write` returns false it waits for 'drain'. `raw one write per frame` is the uncorked no-delay sender (one syscall per frame while the socket has room).",
    "Raw senders allocate one Buffer per frame (hand-packed: per write); tether allocates one 60-byte payload per `send`. All sockets are no-delay."
  ],
  units: { rate: "msg/s" },
  variants: (size) => [
    streamVariant(
      "raw-cork",
      "raw node:net, cork on first write, uncork next tick (drain)",
      "raw-cork-tick",
      pick(size, 10_000_000, 1_000_000),
      60
    ),
    streamVariant("raw-write", "raw node:net, one write per frame, no cork (drain)", "raw-write", pick(size, 3_000_000, 300_000), 60),
    streamVariant("raw-packed", "raw node:net, 256 frames packed per write", "raw-packed", pick(size, 20_000_000, 2_000_000), 60),
    streamVariant("platform", "@effect/platform Socket writer, one frame per call", "platform", pick(size, 1_000_000, 150_000), 60),
    streamVariant("tether-send", "tether `send` per frame", "tether-send", pick(size, 10_000_000, 1_000_000), 60),
    streamVariant(
      "tether-e2e",
      "tether `send` → tether `incoming`",
      "tether-send",
      pick(size, 3_000_000, 500_000),
      60,
      {},
      "tether-frames"
    )
  ],
  ratios: [
    { label: "tether send ÷ raw cork-per-tick", num: ["tether-send", "rate"], den: ["raw-cork", "rate"], better: "higher", target: 0.8 },
    { label: "tether send ÷ raw one-write-per-frame", num: ["tether-send", "rate"], den: ["raw-write", "rate"], better: "higher", target: 2.0 },
    { label: "tether send ÷ @effect/platform Socket", num: ["tether-send", "rate"], den: ["platform", "rate"], better: "higher" },
    { label: "tether send ÷ raw hand-packed", num: ["tether-send", "rate"], den: ["raw-packed", "rate"], better: "higher" },
    { label: "tether → tether ÷ raw one-write-per-frame", num: ["tether-e2e", "rate"], den: ["raw-write", "rate"], better: "higher" },
    { label: "raw cork-per-tick ÷ raw one-write-per-frame", num: ["raw-cork", "rate"], den: ["raw-write", "rate"], better: "higher", note: "baselines only: what corking per tick buys" }
  ]
}

const batch: Case = {
  id: "batch",
  title: "Batch API: `sendAll` of 256 frames per call vs raw hand-packed (256 frames per write)",
  notes: [
    "Same receiver and payloads as the small-frame case; for `sendAll` the sender builds one 60-byte payload (a Buffer) per frame, as the API takes one Uint8Array per frame; raw writes them straight into the packed buffer.",
    "`sendEncoded (hand-packed)` is the same packing as raw, handed to tether as one pre-encoded buffer per call: the cost of going through tether's queue and writer."
  ],
  units: { rate: "msg/s" },
  variants: (size) => [
    streamVariant("raw-packed", "raw node:net, 256 frames packed per write", "raw-packed", pick(size, 20_000_000, 2_000_000), 60),
    streamVariant("tether-sendAll", "tether `sendAll`, 256 frames per call", "tether-sendAll", pick(size, 20_000_000, 2_000_000), 60, { batch: 256 }),
    streamVariant(
      "tether-packed",
      "tether `sendEncoded` of 256 hand-packed frames per call",
      "tether-packed",
      pick(size, 20_000_000, 2_000_000),
      60,
      { perWrite: 256 }
    )
  ],
  ratios: [
    { label: "tether sendAll ÷ raw hand-packed", num: ["tether-sendAll", "rate"], den: ["raw-packed", "rate"], better: "higher", target: 0.8 },
    { label: "tether sendEncoded (hand-packed) ÷ raw hand-packed", num: ["tether-packed", "rate"], den: ["raw-packed", "rate"], better: "higher" }
  ]
}

const bulk: Case = {
  id: "bulk",
  title: "Bulk: 64 KiB frames",
  notes: [
    "Raw: one `write` per 64 KiB frame, waiting for 'drain' (Node's default 16 KiB writable high-water mark). Tether: `send` per frame; the writer passes frames ≥ 64 KiB through without copying (a 4-byte header chunk + the payload, 4 frames per writev with the default 256 KiB maxBatchBytes).",
    "`raw writev` writes header and payload as separate chunks, 4 frames per cork/uncork, like tether's writer: it shows the writev shape costs nothing. `sendQueueCapacity 4` bounds the bytes tether holds in its queue (the default 1024 frames is 64 MiB of 64 KiB payloads)."
  ],
  units: { bandwidth: "MB/s" },
  variants: (size) => [
    streamVariant("raw-bulk", "raw node:net, one write per 64 KiB frame", "raw-packed", pick(size, 32_768, 4_096), 65_536, { perWrite: 1 }),
    streamVariant("raw-writev", "raw node:net, header+payload writev, 4 frames per write", "raw-writev", pick(size, 32_768, 4_096), 65_536, { perWrite: 4 }),
    streamVariant("tether-bulk", "tether `send`, 64 KiB frames (defaults)", "tether-send", pick(size, 32_768, 4_096), 65_536),
    streamVariant("tether-bulk-q4", "tether `send`, 64 KiB frames, sendQueueCapacity 4", "tether-send", pick(size, 32_768, 4_096), 65_536, {
      tether: { sendQueueCapacity: 4 }
    })
  ],
  ratios: [
    { label: "tether bulk ÷ raw", num: ["tether-bulk", "bandwidth"], den: ["raw-bulk", "bandwidth"], better: "higher", target: 0.9 },
    { label: "tether bulk (sendQueueCapacity 4) ÷ raw", num: ["tether-bulk-q4", "bandwidth"], den: ["raw-bulk", "bandwidth"], better: "higher" },
    { label: "raw writev (tether's write shape) ÷ raw", num: ["raw-writev", "bandwidth"], den: ["raw-bulk", "bandwidth"], better: "higher" }
  ]
}

const wsModule = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "src", "WebSocket.ts")

const websocket: Case = {
  id: "ws",
  title: "WebSocket: 64-byte binary messages, one sender; and a 64-byte ping-pong",
  notes: [
    "Receiver: a raw `ws` server verifying every message (count, order, checksum) for both WebSocket senders. `tether TCP` is tether's own TCP path with the same 60-byte payloads to the raw node:net verifier (the small-frame case's `tether send`), for the per-message cost of the WebSocket framing against tether's own.",
    "Round trip: one 64-byte binary message outstanding; raw `ws` client against a raw `ws` echo server, tether `WebSocket.connect` client against a tether `WebSocket.serve` echo server (tether's cost at both ends, as in the TCP round trip). perMessageDeflate off everywhere. Percentiles after a warm-up."
  ],
  units: { rate: "msg/s", p50: "µs", p99: "µs", p999: "µs" },
  unavailable: () => {
    if (!Fs.existsSync(wsModule)) return "src/WebSocket.ts does not exist yet"
    const src = Fs.readFileSync(wsModule, "utf8")
    if (!/export const connect\b/.test(src)) return "src/WebSocket.ts has no `connect` export"
    return undefined
  },
  variants: (size) => [
    {
      ...streamVariant("ws-raw", "raw `ws`, one send per message", "ws-raw", pick(size, 1_000_000, 100_000), 60, {}, "ws-frames")
    },
    {
      ...streamVariant("ws-tether", "tether WebSocket `send` per message", "ws-tether", pick(size, 1_000_000, 100_000), 60, {}, "ws-frames")
    },
    streamVariant("tcp-tether", "tether TCP `send` per frame (same payloads, raw verifier)", "tether-send", pick(size, 1_000_000, 100_000), 60),
    {
      id: "ws-rtt-raw",
      label: "round trip, raw `ws` ↔ raw `ws` echo",
      recv: { variant: "ws-echo" },
      send: { variant: "ws-rtt-raw", warmup: pick(size, 5_000, 1_000), count: pick(size, 30_000, 5_000) },
      limitMs: 60_000,
      metrics: rttMetrics
    },
    {
      id: "ws-rtt-tether",
      label: "round trip, tether WebSocket ↔ tether WebSocket echo",
      recv: { variant: "ws-tether-echo" },
      send: { variant: "ws-rtt-tether", warmup: pick(size, 5_000, 1_000), count: pick(size, 30_000, 5_000) },
      limitMs: 60_000,
      metrics: rttMetrics
    }
  ],
  ratios: [
    { label: "tether WebSocket ÷ raw ws", num: ["ws-tether", "rate"], den: ["ws-raw", "rate"], better: "higher", target: 4.0 },
    { label: "tether WebSocket ÷ tether TCP, per message", num: ["ws-tether", "rate"], den: ["tcp-tether", "rate"], better: "higher", target: 0.8 },
    { label: "WebSocket RTT p50: tether ÷ raw ws", num: ["ws-rtt-tether", "p50"], den: ["ws-rtt-raw", "p50"], better: "lower", target: 1.2 },
    { label: "WebSocket RTT p99: tether ÷ raw ws", num: ["ws-rtt-tether", "p99"], den: ["ws-rtt-raw", "p99"], better: "lower" }
  ]
}

const rttMetrics = (r: { send: Message; recv: Message }) => ({
  p50: n(r.send, "p50"),
  p99: n(r.send, "p99"),
  p999: n(r.send, "p999")
})

const rtt: Case = {
  id: "rtt",
  title: "Round trip: 64-byte ping-pong, one outstanding ping",
  notes: [
    "Raw: node:net client and echo server, both no-delay. Tether: tether client (`send`, then pull one frame from `incoming`) and tether echo server (`incoming` → `send`), so tether's cost is paid at both ends; the `one tether end` rows pair the tether client with the raw echo server. The `read` loops rows use `conn.read` at both ends instead of a Stream (`Stream.toPull` / `Stream.runForEach` cost ~8–13 µs of Effect's channel machinery per chunk on this machine).",
    "Percentiles over the measured pings after a warm-up."
  ],
  units: { p50: "µs", p99: "µs", p999: "µs" },
  variants: (size) => {
    const warmup = pick(size, 5_000, 1_000)
    const count = pick(size, 30_000, 5_000)
    return [
      { id: "rtt-raw", label: "raw node:net, no-delay", recv: { variant: "echo" }, send: { variant: "rtt-raw", warmup, count }, limitMs: 60_000, metrics: rttMetrics },
      { id: "rtt-tether", label: "tether ↔ tether", recv: { variant: "tether-echo" }, send: { variant: "rtt-tether", warmup, count }, limitMs: 60_000, metrics: rttMetrics },
      { id: "rtt-tether-raw", label: "tether client ↔ raw echo server", recv: { variant: "echo" }, send: { variant: "rtt-tether", warmup, count }, limitMs: 60_000, metrics: rttMetrics },
      { id: "rtt-tether-read", label: "tether ↔ tether, `read` loops", recv: { variant: "tether-echo-read" }, send: { variant: "rtt-tether-read", warmup, count }, limitMs: 60_000, metrics: rttMetrics }
    ]
  },
  ratios: [
    { label: "RTT p50 tether ÷ raw", num: ["rtt-tether", "p50"], den: ["rtt-raw", "p50"], better: "lower", target: 1.1 },
    { label: "RTT p99 tether ÷ raw", num: ["rtt-tether", "p99"], den: ["rtt-raw", "p99"], better: "lower", target: 1.5 },
    { label: "RTT p99.9 tether ÷ raw", num: ["rtt-tether", "p999"], den: ["rtt-raw", "p999"], better: "lower" },
    { label: "RTT p50, `read` loops at both ends ÷ raw", num: ["rtt-tether-read", "p50"], den: ["rtt-raw", "p50"], better: "lower" },
    { label: "RTT p99, `read` loops at both ends ÷ raw", num: ["rtt-tether-read", "p99"], den: ["rtt-raw", "p99"], better: "lower" },
    { label: "RTT p50, one tether end (client) ÷ raw", num: ["rtt-tether-raw", "p50"], den: ["rtt-raw", "p50"], better: "lower" },
    { label: "RTT p99, one tether end (client) ÷ raw", num: ["rtt-tether-raw", "p99"], den: ["rtt-raw", "p99"], better: "lower" }
  ]
}

const rpcMetrics = (r: { send: Message; recv: Message }) => ({
  rate: n(r.send, "rate"),
  p50: n(r.send, "p50"),
  p99: n(r.send, "p99")
})

const rpc: Case = {
  id: "rpc",
  title: "@effect/rpc round trips: one `Echo` RPC (MsgPack), sequential latency and 100-fiber throughput",
  notes: [
    "Platform: `RpcClient.layerProtocolSocket` on `NodeSocket.layerNet` against `RpcServer.layerProtocolSocketServer` on `NodeSocketServer`. Tether: `RpcProtocol.layerClient` against the same `RpcServer.layerProtocolSocketServer` on a tether `PlatformSocketServer` (length-prefixed), i.e. `RpcProtocol.layerServer`.",
    "Latency: calls one after the other (p50/p99 after a warm-up). Throughput: `calls` calls from 100 fibers, calls per second."
  ],
  units: { rate: "calls/s", p50: "µs", p99: "µs" },
  variants: (size) => {
    const send = { warmup: pick(size, 2_000, 500), count: pick(size, 10_000, 2_000), calls: pick(size, 50_000, 10_000), fibers: 100 }
    return [
      { id: "rpc-platform", label: "@effect/rpc on NodeSocket / NodeSocketServer", recv: { variant: "rpc-platform" }, send: { variant: "rpc-platform", ...send }, limitMs: 120_000, metrics: rpcMetrics },
      { id: "rpc-tether", label: "@effect/rpc on tether (RpcProtocol)", recv: { variant: "rpc-tether" }, send: { variant: "rpc-tether", ...send }, limitMs: 120_000, metrics: rpcMetrics }
    ]
  },
  ratios: [
    { label: "RPC calls/s (100 fibers): tether ÷ @effect/platform NodeSocket", num: ["rpc-tether", "rate"], den: ["rpc-platform", "rate"], better: "higher", target: 1.0 },
    { label: "RPC p50: tether ÷ @effect/platform NodeSocket", num: ["rpc-tether", "p50"], den: ["rpc-platform", "p50"], better: "lower" },
    { label: "RPC p99: tether ÷ @effect/platform NodeSocket", num: ["rpc-tether", "p99"], den: ["rpc-platform", "p99"], better: "lower", target: 1.2 }
  ]
}

const fleetMetrics = (r: { send: Message; recv: Message }) => ({
  p50: n(r.send, "p50"),
  p99: n(r.send, "p99"),
  fps: n(r.send, "fps")
})

const hasNats = () => {
  const dirs = (process.env["PATH"] ?? "").split(Path.delimiter)
  return dirs.some((d) => Fs.existsSync(Path.join(d, "nats-server")))
}

const fleet: Case = {
  id: "fleet",
  title: "FleetHub over NatsEngine vs the single-process Hub: 64-byte ping-pong through a dialer, and pipelined frames",
  notes: [
    "Both: `send(key, frame)` to an outbound peer whose dialer's session reads the raw echo server's replies. Hub: the frame goes to the dialer's connection. FleetHub: it is appended to the peer's JetStream stream (awaited publish with a message id), read by the holder (the same process, a pull fetch) and acked by the written watermark (ack + purge).",
    "Added latency = fleet − hub at the same percentile. Pipelined: frames/s for N sends awaited one by one (each a durable publish for the fleet) and every echo received. nats-server is started by the sender on a free port with a temporary store (file storage, default fsync)."
  ],
  units: { p50: "µs", p99: "µs", fps: "frames/s" },
  unavailable: () => (hasNats() ? undefined : "nats-server is not installed"),
  variants: (size) => {
    const warmup = pick(size, 2_000, 300)
    const count = pick(size, 10_000, 2_000)
    const pipelined = pick(size, 20_000, 5_000)
    return [
      { id: "fleet-hub", label: "Hub.send → dialer", recv: { variant: "echo" }, send: { variant: "fleet-hub", warmup, count, pipelined }, limitMs: 120_000, metrics: fleetMetrics },
      { id: "fleet-nats", label: "FleetHub.send → JetStream → holder's dialer", recv: { variant: "echo" }, send: { variant: "fleet-nats", warmup, count, pipelined }, limitMs: 120_000, metrics: fleetMetrics }
    ]
  },
  ratios: [
    { label: "ping-pong p50: FleetHub ÷ Hub", num: ["fleet-nats", "p50"], den: ["fleet-hub", "p50"], better: "lower" },
    { label: "ping-pong p99: FleetHub ÷ Hub", num: ["fleet-nats", "p99"], den: ["fleet-hub", "p99"], better: "lower" },
    { label: "pipelined frames/s: FleetHub ÷ Hub", num: ["fleet-nats", "fps"], den: ["fleet-hub", "fps"], better: "higher" }
  ]
}

const BROADCAST_ROUNDS = 10

const broadcastMetrics = (r: { send: Message; recv: Message }) => {
  checkFrames(r.recv)
  const conns = n(r.send, "conns")
  const before = r.send.before as Message
  const idle = r.send.idle as Message
  return {
    broadcast: (n(r.recv, "doneAt") - n(r.send, "startAt")) / 1e6 / BROADCAST_ROUNDS,
    fanout: (n(r.send, "fanoutAt") - n(r.send, "startAt")) / 1e6 / BROADCAST_ROUNDS,
    rssPerConn: (n(idle, "rss") - n(before, "rss")) / conns,
    heapPerConn: (n(idle, "heapUsed") + n(idle, "external") - n(before, "heapUsed") - n(before, "external")) / conns
  }
}

const broadcastVariant = (id: string, label: string, sender: string, conns: number): Variant => ({
  id,
  label,
  // the receiver also counts the sender's untimed warm-up round
  recv: { variant: "sink-many", conns, rounds: BROADCAST_ROUNDS + 1, payload: 1024 },
  send: { variant: sender, conns, rounds: BROADCAST_ROUNDS, payload: 1024 },
  limitMs: 120_000,
  metrics: broadcastMetrics
})

const broadcast: Case = {
  id: "broadcast",
  title: `Broadcast: one 1 KiB frame to N connections (${BROADCAST_ROUNDS} rounds, time per round), and idle memory per connection`,
  notes: [
    "Raw: a loop writing one shared Buffer to every socket. Tether: one `Framing.encode`d buffer shared through `sendEncoded` on every connection.",
    "Time per round = (receiver has every frame on every connection − first timed write) ÷ rounds, after one untimed warm-up round that every connection has written (steady state: tether starts a connection's write-deadline fiber on its first write); the receiver verifies every frame on every connection.",
    "Idle memory: sender process RSS and heap+external growth after a full GC, divided by the connection count (raw sockets have a 'data' listener, i.e. are read like tether's)."
  ],
  units: { broadcast: "ms", fanout: "ms", rssPerConn: "B", heapPerConn: "B" },
  variants: (size) => {
    const big = pick(size, 10_000, 2_000)
    return [
      broadcastVariant("raw-1k", "raw loop, 1,000 connections", "bcast-raw", 1_000),
      broadcastVariant("tether-1k", "tether sendEncoded, 1,000 connections", "bcast-tether", 1_000),
      broadcastVariant("raw-many", `raw loop, ${big.toLocaleString("en")} connections`, "bcast-raw", big),
      broadcastVariant("tether-many", `tether sendEncoded, ${big.toLocaleString("en")} connections`, "bcast-tether", big)
    ]
  },
  ratios: [
    { label: "broadcast to 1,000: tether ÷ raw loop", num: ["tether-1k", "broadcast"], den: ["raw-1k", "broadcast"], better: "lower", target: 1.5 },
    { label: "broadcast to 10,000 (2,000 with --quick): tether ÷ raw loop", num: ["tether-many", "broadcast"], den: ["raw-many", "broadcast"], better: "lower", target: 1.5 },
    { label: "idle memory per connection (RSS) at 10,000 (2,000 with --quick): tether ÷ raw", num: ["tether-many", "rssPerConn"], den: ["raw-many", "rssPerConn"], better: "lower", target: 3.0 },
    { label: "idle heap+external per connection at 10,000 (2,000 with --quick): tether ÷ raw", num: ["tether-many", "heapPerConn"], den: ["raw-many", "heapPerConn"], better: "lower" }
  ]
}

const closeMetrics = (frames: number) => (r: { send: Message; recv: Message }) => {
  checkFrames(r.recv)
  checkTether(r.send, frames)
  return {
    fromClose: (n(r.recv, "eofAt") - n(r.send, "closeAt")) / 1e6,
    fromFirstQueue: (n(r.recv, "eofAt") - n(r.send, "queueAt")) / 1e6
  }
}

const close: Case = {
  id: "close",
  title: "Close and drain: 100,000 queued 64-byte frames, then a graceful close",
  notes: [
    "Tether: `sendAll` of 100,000 frames (sendQueueCapacity 100,000), then `close`. Raw: 100,000 `write`s into the socket's buffer, then `end()`.",
    "Measured until the peer has every frame and the EOF (the receiver verifies all frames). Raw `write` hands each frame to the kernel synchronously while the socket buffer has room, so by its `end()` almost nothing is left queued: compare from the first enqueue; the from-close figure is tether's drain + FIN time."
  ],
  units: { fromClose: "ms", fromFirstQueue: "ms" },
  variants: () => [
    { id: "close-raw", label: "raw node:net write × 100k, end()", recv: { variant: "frames", frames: 100_000, payload: 60 }, send: { variant: "close-raw", frames: 100_000, payload: 60 }, limitMs: 60_000, metrics: closeMetrics(100_000) },
    { id: "close-tether", label: "tether sendAll × 100k, close()", recv: { variant: "frames", frames: 100_000, payload: 60 }, send: { variant: "close-tether", frames: 100_000, payload: 60 }, limitMs: 60_000, metrics: closeMetrics(100_000) }
  ],
  ratios: [
    { label: "100k queued + close, until the peer has all (from first enqueue): tether ÷ raw", num: ["close-tether", "fromFirstQueue"], den: ["close-raw", "fromFirstQueue"], better: "lower" },
    { label: "the same, from the close call: tether ÷ raw", num: ["close-tether", "fromClose"], den: ["close-raw", "fromClose"], better: "lower", note: "raw has already written nearly everything by then" }
  ]
}

const BACKLOG_DEPTHS = [1_000, 10_000, 100_000] as const
const depthLabel = (d: number) => `${d / 1000}k`

const backlogMetrics = (r: { send: Message; recv: Message }) => {
  const offers = n(r.send, "offers")
  return {
    offer: (n(r.send, "endAt") - n(r.send, "startAt")) / offers,
    eventsPer1k: (n(r.send, "events") / offers) * 1000
  }
}

const backlogVariant = (id: string, label: string, sender: string, depth: number, offers: number): Variant => ({
  id,
  label,
  recv: { variant: "closed-port" },
  send: { variant: sender, depth, offers, payload: 60 },
  limitMs: 120_000,
  metrics: backlogMetrics
})

const backlog: Case = {
  id: "backlog",
  title: "Backlog: offer cost at 1k, 10k and 100k frames held (peer down, dropOldest, default maxAge 5 minutes)",
  notes: [
    "Steady depth: the backlog is filled to the depth (untimed; `Backlog` by one `prepend`, the Dialer by sends), then `offers` untimed offers warm up, then every timed offer evicts the oldest frame (dropOldest at maxMessages = depth), so the depth never changes. 60-byte payloads allocated per offer; the age bound (5 minutes) is checked on every offer.",
    "Raw: what a careful user writes — a JS array as a deque (`push` / `shift`), entries stamped with `Date.now()`, the age bound checked from the front on every offer (V8's `shift` is O(n) on large arrays: see its 100k row); and the strongest raw baseline, a ring buffer doing the same work. tether `Backlog.offer` is the same work through Effect, with metrics and eviction events; `Dialer.send` adds the send router (the peer's port refuses connects, so every send goes to the backlog).",
    "events/1k offers: eviction events reported per 1 000 evicting offers (bursts coalesce them; before, one event per evicted frame)."
  ],
  units: { offer: "ns", eventsPer1k: "" },
  variants: (size) => {
    const offers = pick(size, 100_000, 5_000)
    return BACKLOG_DEPTHS.flatMap((d) => [
      backlogVariant(`raw-${depthLabel(d)}`, `raw array deque, ${d.toLocaleString("en")} held`, "backlog-raw", d, offers),
      backlogVariant(`ring-${depthLabel(d)}`, `raw ring buffer, ${d.toLocaleString("en")} held`, "backlog-raw-ring", d, offers),
      backlogVariant(`backlog-${depthLabel(d)}`, `tether Backlog.offer, ${d.toLocaleString("en")} held`, "backlog-tether", d, offers),
      backlogVariant(`dialer-${depthLabel(d)}`, `tether Dialer.send (peer down), ${d.toLocaleString("en")} held`, "backlog-dialer", d, offers)
    ])
  },
  ratios: [
    { label: "Backlog.offer cost, 100k held ÷ 1k held", num: ["backlog-100k", "offer"], den: ["backlog-1k", "offer"], better: "lower", target: 2.0 },
    { label: "Backlog.offer cost, 10k held ÷ 1k held", num: ["backlog-10k", "offer"], den: ["backlog-1k", "offer"], better: "lower", target: 2.0 },
    { label: "Dialer.send (peer down) cost, 100k held ÷ 1k held", num: ["dialer-100k", "offer"], den: ["dialer-1k", "offer"], better: "lower", target: 2.0 },
    { label: "raw array deque cost, 100k held ÷ 1k held", num: ["raw-100k", "offer"], den: ["raw-1k", "offer"], better: "lower", note: "V8's Array shift is O(n) on large arrays" },
    { label: "raw ring buffer cost, 100k held ÷ 1k held", num: ["ring-100k", "offer"], den: ["ring-1k", "offer"], better: "lower" },
    ...BACKLOG_DEPTHS.map((d): Ratio => ({
      label: `Backlog.offer ÷ raw array deque, ${depthLabel(d)} held`,
      num: [`backlog-${depthLabel(d)}`, "offer"],
      den: [`raw-${depthLabel(d)}`, "offer"],
      better: "lower"
    })),
    ...BACKLOG_DEPTHS.map((d): Ratio => ({
      label: `Backlog.offer ÷ raw ring buffer, ${depthLabel(d)} held`,
      num: [`backlog-${depthLabel(d)}`, "offer"],
      den: [`ring-${depthLabel(d)}`, "offer"],
      better: "lower"
    })),
    ...BACKLOG_DEPTHS.map((d): Ratio => ({
      label: `Dialer.send (peer down) ÷ raw array deque, ${depthLabel(d)} held`,
      num: [`dialer-${depthLabel(d)}`, "offer"],
      den: [`raw-${depthLabel(d)}`, "offer"],
      better: "lower"
    }))
  ]
}

const sessionsMetrics = (r: { send: Message; recv: Message }) => {
  const conns = n(r.recv, "conns")
  if (n(r.send, "connected") !== conns) throw new Error(`${String(r.send.connected)} of ${conns} clients connected`)
  if (n(r.recv, "sessions") !== conns) throw new Error(`shutdown saw ${String(r.recv.sessions)} of ${conns} sessions`)
  return {
    shutdown: n(r.recv, "shutdownMs"),
    graceful: n(r.recv, "graceful"),
    aborted: n(r.recv, "aborted"),
    acceptRate: n(r.recv, "acceptRate"),
    heapPerSession: n(r.recv, "heapPerSession"),
    rssPerSession: n(r.recv, "rssPerSession")
  }
}

const SESSIONS_LINGER_MS = 200
const STUBBORN_SHUTDOWN_MS = 3_000

/** Sessions at full scale; `BENCH_SESSIONS` overrides it (scaling runs: 1000, 2000, 4000, ...). */
const sessionCount = (size: Size) =>
  process.env.BENCH_SESSIONS !== undefined ? Number(process.env.BENCH_SESSIONS) : pick(size, 10_000, 2_000)

const sessionsVariant = (
  id: string,
  label: string,
  server: string,
  conns: number,
  stubborn: boolean,
  handler: "drain" | "read" = "drain"
): Variant => ({
  id,
  label,
  recv: {
    variant: server,
    handler,
    conns,
    lingerMs: stubborn ? 60_000 : SESSIONS_LINGER_MS,
    shutdownTimeoutMs: stubborn ? STUBBORN_SHUTDOWN_MS : 10_000
  },
  send: { variant: "clients-many", conns, stubborn },
  limitMs: 240_000,
  metrics: sessionsMetrics
})

const server: Case = {
  id: "server",
  title: "Server sessions: accept rate, idle memory per session and shutdown of N idle sessions (10,000; 2,000 with --quick)",
  notes: [
    "Server and clients in separate processes (N sockets each; mind `ulimit -n`). The server counts N accepted sessions, measures idle memory after a full GC, then shuts down.",
    `Cooperative clients answer the server's FIN at once; tether: lingerTimeout ${SESSIONS_LINGER_MS} ms, sessionGrace 10 ms, shutdownTimeout 10 s, a handler draining \`incoming\` (\`Stream.runDrain\`), or (\`read\` handler) a loop over \`conn.read\` until it is \`None\`: the Stream consumer's channel machinery holds ~20 KB per idle session and runs ~470 Effect operations when the stream ends. Raw: \`server.close()\`, \`end()\` on every socket, destroy on the peer's FIN or after ${SESSIONS_LINGER_MS} ms.`,
    `Stubborn clients never read and never answer the FIN; lingerTimeout 60 s, so each session must be aborted at shutdownTimeout (${STUBBORN_SHUTDOWN_MS} ms here).`,
    "Accept rate = N ÷ (last session's handler start − first one's). Memory: heap+external and RSS growth divided by N."
  ],
  units: {
    shutdown: "ms",
    graceful: "",
    aborted: "",
    acceptRate: "conn/s",
    heapPerSession: "B",
    rssPerSession: "B"
  },
  variants: (size) => {
    const conns = sessionCount(size)
    return [
      sessionsVariant("raw-coop", `raw node:net, ${conns.toLocaleString("en")} cooperative clients`, "sessions-raw", conns, false),
      sessionsVariant("tether-coop", `tether Listener, ${conns.toLocaleString("en")} cooperative clients`, "sessions-tether", conns, false),
      sessionsVariant(
        "tether-coop-read",
        `tether Listener, ${conns.toLocaleString("en")} cooperative clients, handler a \`read\` loop`,
        "sessions-tether",
        conns,
        false,
        "read"
      ),
      sessionsVariant("tether-stubborn", `tether Listener, ${conns.toLocaleString("en")} stubborn clients`, "sessions-tether", conns, true),
      sessionsVariant(
        "tether-stubborn-read",
        `tether Listener, ${conns.toLocaleString("en")} stubborn clients, handler a \`read\` loop`,
        "sessions-tether",
        conns,
        true,
        "read"
      )
    ]
  },
  ratios: [
    { label: "shutdown of N cooperative sessions ÷ 1.5 s", num: ["tether-coop", "shutdown"], den: 1_500, better: "lower", target: 1 },
    { label: "cooperative sessions closed gracefully ÷ N", num: ["tether-coop", "graceful"], den: ["raw-coop", "graceful"], better: "higher", target: 1 },
    {
      label: `shutdown of N stubborn sessions ÷ (shutdownTimeout + 1 s = ${STUBBORN_SHUTDOWN_MS + 1_000} ms)`,
      num: ["tether-stubborn", "shutdown"],
      den: STUBBORN_SHUTDOWN_MS + 1_000,
      better: "lower",
      target: 1
    },
    { label: "shutdown of N cooperative sessions: tether ÷ raw", num: ["tether-coop", "shutdown"], den: ["raw-coop", "shutdown"], better: "lower" },
    { label: "accept rate: tether ÷ raw", num: ["tether-coop", "acceptRate"], den: ["raw-coop", "acceptRate"], better: "higher" },
    { label: "idle heap+external per session: tether ÷ raw", num: ["tether-coop", "heapPerSession"], den: ["raw-coop", "heapPerSession"], better: "lower" },
    { label: "idle RSS per session: tether ÷ raw", num: ["tether-coop", "rssPerSession"], den: ["raw-coop", "rssPerSession"], better: "lower", target: 4.0 },
    {
      label: `shutdown of N stubborn sessions, \`read\` handler ÷ (shutdownTimeout + 1 s = ${STUBBORN_SHUTDOWN_MS + 1_000} ms)`,
      num: ["tether-stubborn-read", "shutdown"],
      den: STUBBORN_SHUTDOWN_MS + 1_000,
      better: "lower",
      target: 1
    },
    { label: "shutdown of N cooperative sessions, `read` handler ÷ 1.5 s", num: ["tether-coop-read", "shutdown"], den: 1_500, better: "lower", target: 1 },
    { label: "accept rate, `read` handler: tether ÷ raw", num: ["tether-coop-read", "acceptRate"], den: ["raw-coop", "acceptRate"], better: "higher" },
    { label: "idle RSS per session, `read` handler: tether ÷ raw", num: ["tether-coop-read", "rssPerSession"], den: ["raw-coop", "rssPerSession"], better: "lower", target: 4.0 }
  ]
}

const watchMetrics = (conns: number) => (r: { send: Message; recv: Message }) => {
  if (n(r.send, "conns") !== conns) throw new Error(`${String(r.send.conns)} connections, expected ${conns}`)
  if (r.send.reaped !== undefined && n(r.send, "reaped") !== 0) throw new Error(`${String(r.send.reaped)} idle connections reaped`)
  const reads = typeof r.send.tableReads === "number" ? { tableReads: r.send.tableReads } : {}
  const stall = typeof r.send.stalled === "number" ? stallMetrics(r.send) : {}
  return { cpu: n(r.send, "cpuPct"), maxDelay: n(r.send, "maxDelayMs"), p99Delay: n(r.send, "p99DelayMs"), ...reads, ...stall }
}

/** The connections whose peer stopped reading: every one reaped as SendStalled, within the bound. */
const stallMetrics = (send: Message) => {
  const stalled = n(send, "stalled")
  const reaped = n(send, "stalledReaped")
  if (reaped !== stalled) throw new Error(`${reaped} of ${stalled} stalled connections reaped as SendStalled`)
  if (n(send, "maxReapMs") > n(send, "reapBoundMs")) {
    throw new Error(`a stalled connection reaped ${n(send, "maxReapMs")} ms after its first send (bound ${n(send, "reapBoundMs")} ms)`)
  }
  return { stalledReaped: reaped, maxReap: n(send, "maxReapMs") }
}

/** Stall timeout of the stop-reading variant (1 s probe): the bound is this + 2 probes. */
const WATCH_STALL_MS = 5_000

const watchVariant = (
  id: string,
  label: string,
  mode: string,
  conns: number,
  windowMs: number,
  stall?: number
): Variant => ({
  id,
  label,
  recv: { variant: "hold-many", conns, pauseOnData: stall !== undefined },
  send: { variant: "watch-idle", conns, mode, windowMs, settleMs: 3_000, ...(stall === undefined ? {} : { stall, stallTimeoutMs: WATCH_STALL_MS }) },
  limitMs: 180_000,
  metrics: watchMetrics(conns)
})

const watchdogs: Case = {
  id: "watchdogs",
  title: "Watchdogs at scale: N client connections (10,000; 2,000 with --quick), idle or 10 of them stalled, CPU and worst event-loop delay over a 10 s window",
  notes: [
    "Clients in the sender process, a raw node:net server holding every connection in the other (2N sockets on loopback: both ends appear in /proc/net/tcp; mind `ulimit -n`).",
    "After connecting, 3 s to settle, then a 10 s window (5 s with --quick): CPU = (user + system) of the client process ÷ wall time, in % of one core; worst delay = max of `monitorEventLoopDelay` (5 ms resolution).",
    "`Watchdog.defaults()` = liveness + send-stall + peer-gone reaper, 1 s probe, with `Watchdog.layerDriver` provided (one driver fiber for every connection, as in production). No idle connection may be reaped (a run that reaps one fails).",
    `Stop-reading variant: the same N connections with a ${WATCH_STALL_MS / 1000} s stall timeout; from the window's start 10 of them send 64 KiB frames as fast as they are taken and the receiver stops reading every socket that sends. All 10 must be reaped as SendStalled within stallTimeout + 2 probes of their first send (maxReap, which includes filling the loopback buffers), and none of the others.`
  ],
  units: { cpu: "% core", maxDelay: "ms", p99Delay: "ms", tableReads: "reads", stalledReaped: "", maxReap: "ms" },
  variants: (size) => {
    const conns = pick(size, 10_000, 2_000)
    const windowMs = pick(size, 10_000, 5_000)
    const c = conns.toLocaleString("en")
    return [
      watchVariant("raw", `raw node:net, ${c} idle connections`, "raw", conns, windowMs),
      watchVariant("none", `tether, no watchdogs, ${c} idle connections`, "tether-none", conns, windowMs),
      watchVariant("defaults", `tether, Watchdog.defaults() + driver, ${c} idle connections`, "tether-defaults", conns, windowMs),
      watchVariant("stall", `tether, Watchdog.defaults() + driver, ${c} connections, 10 stop reading`, "tether-stall", conns, windowMs, 10)
    ]
  },
  ratios: [
    { label: "CPU, Watchdog.defaults() ÷ no watchdogs (target: ≤ 2 % of a core above, read from the table)", num: ["defaults", "cpu"], den: ["none", "cpu"], better: "lower" },
    { label: "worst event-loop delay with Watchdog.defaults() ÷ 20 ms", num: ["defaults", "maxDelay"], den: 20, better: "lower", target: 1 },
    { label: "worst event-loop delay without watchdogs ÷ 20 ms", num: ["none", "maxDelay"], den: 20, better: "lower" },
    {
      label: `10 stalled of N: slowest reap after the first send ÷ (stallTimeout + 2 probes = ${WATCH_STALL_MS + 2_000} ms)`,
      num: ["stall", "maxReap"],
      den: WATCH_STALL_MS + 2_000,
      better: "lower",
      target: 1
    },
    // no target: the window includes the 10 senders' own burst (each fills its 1024-frame queue at the start)
    { label: "worst event-loop delay with 10 stalled of N ÷ 20 ms (includes the senders' burst)", num: ["stall", "maxDelay"], den: 20, better: "lower" }
  ]
}

export const cases: ReadonlyArray<Case> = [small, batch, bulk, rtt, rpc, broadcast, close, websocket, backlog, server, watchdogs, fleet]
