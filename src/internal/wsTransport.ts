/**
 * A Transport of kind "websocket" over a `ws` WebSocket.
 *
 * Every write on the wire is made by the connection's writer fiber:
 * - data messages through `write` (a batch corked into as few syscalls as possible);
 * - PONGs (answers to the peer's PINGs) and heartbeat PINGs through the control lane;
 * - the Close frame through `shutdownWrite`, which the connection calls after its writer has exited.
 * ws's automatic pong is off, and ws's own Close replies (to the peer's Close, or on a
 * protocol error) are replaced: the peer's Close becomes the read EOF, a protocol error
 * becomes a frame error on the read side, and our Close goes out when the connection closes.
 * @internal
 */
import * as Effect from "effect/Effect"
import type { EventEmitter } from "node:events"
import type * as Net from "node:net"
import type { WebSocket } from "ws"
import * as Framing from "../Framing.js"
import { FrameError } from "../Framing.js"
import type { ControlLane, Transport, TransportState, TransportStats } from "../Transport.js"
import { TransportError } from "./transportError.js"
import * as Inbound from "./inbound.js"
import { transportOf } from "./connection.js"
import type { CloseInfo } from "./wsCloseInfo.js"
import { errorCode } from "./netTransport.js"

/** @internal */
export const KIND_TEXT = 1
/** @internal */
export const KIND_BINARY = 2
const KIND_ERROR = 0xff

const DEFAULT_READ_HWM = 256 * 1024
/** Control frames waiting for the writer beyond this are dropped (a ping flood while we cannot write). */
const MAX_PENDING_CONTROL = 1024
const EMPTY = Buffer.alloc(0)
const OPEN = 1

/** What the transport knows about the close handshake (defined apart from `ws`). @internal */
export type { CloseInfo } from "./wsCloseInfo.js"

/** The WebSocket-specific handle behind a transport. @internal */
export interface WsHandle {
  readonly ws: WebSocket
  readonly socket: Net.Socket
  /** Sets the code and reason of the Close frame `shutdownWrite` will send (`override: false`: only if none is set). */
  readonly setCloseFrame: (code: number, reason: string, override?: boolean) => void
  /** Queues a PING for the writer fiber. */
  readonly queuePing: (data: Uint8Array) => void
  /** Called for every PONG received; returns an unregister function. */
  readonly onPong: (f: (data: Buffer) => void) => () => void
  readonly closeInfo: () => CloseInfo
}

const handles = new WeakMap<Transport, WsHandle>()

/** @internal */
export const handleOf = (t: Transport | undefined): WsHandle | undefined => t === undefined ? undefined : handles.get(t)

/** The WebSocket handle of a connection (undefined when it is not over a WebSocket). @internal */
export const handleOfConnection = (conn: object): WsHandle | undefined =>
  handleOf(transportOf(conn))

const statusOf = (err: Error): number => {
  for (const s of Object.getOwnPropertySymbols(err)) {
    if (s.description === "status-code") {
      const v = (err as unknown as Record<symbol, unknown>)[s]
      if (typeof v === "number") return v
    }
  }
  return 1002
}

const toError = (reason: TransportError["reason"], cause: unknown) =>
  new TransportError({
    reason,
    message: cause instanceof Error ? cause.message : String(cause),
    code: errorCode(cause),
    cause
  })

/** The read-side chunk that carries a protocol error to the codec's decoder. */
const errorMarker = (tooLarge: boolean, size: number, max: number, message: string): Uint8Array => {
  const text = Buffer.from(message)
  const out = Buffer.allocUnsafe(10 + text.length)
  out[0] = KIND_ERROR
  out[1] = tooLarge ? 1 : 2
  out.writeUInt32BE(Math.min(size, 0xffffffff), 2)
  out.writeUInt32BE(Math.min(max, 0xffffffff), 6)
  text.copy(out, 10)
  return out
}

/** @internal */
export const decodeMarker = (chunk: Uint8Array): FrameError => {
  const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length)
  const message = b.subarray(10).toString()
  return b[1] === 1
    ? new FrameError({ reason: "FrameTooLarge", message, size: b.readUInt32BE(2), max: b.readUInt32BE(6) })
    : new FrameError({ reason: "MalformedFrame", message })
}

/** The writer's wire format toward the transport: a 4-byte length prefix marks each message's boundary. */
const wire = Framing.lengthPrefixed({ maxFrameBytes: Number.MAX_SAFE_INTEGER })

/**
 * The connection codec for WebSocket transports: a frame is one message, its
 * first byte the kind (1 text, 2 binary), the rest the payload. On the way to
 * the transport each frame is length-prefixed so that the transport finds the
 * message boundaries in the writer's packed batches.
 * @internal
 */
export const codec = (maxPayload: number): Framing.Codec => ({
  ...wire,
  name: "websocket",
  maxFrameBytes: maxPayload,
  check: (frame) => {
    if (frame.length === 0 || (frame[0] !== KIND_TEXT && frame[0] !== KIND_BINARY)) {
      return new FrameError({
        reason: "MalformedFrame",
        message: "not a WebSocket message frame (make one with WebSocket.text or WebSocket.binary)"
      })
    }
    const size = frame.length - 1
    return size > maxPayload
      ? new FrameError({
        reason: "FrameTooLarge",
        message: `message of ${size} bytes exceeds maxPayload ${maxPayload}`,
        size,
        max: maxPayload
      })
      : undefined
  },
  makeDecoder: () => ({
    buffered: () => 0,
    decode: (chunk, out) => {
      if (chunk[0] === KIND_ERROR) return decodeMarker(chunk)
      out.push(chunk)
      return undefined
    }
  })
})

/** Splits the writer's batch (whole length-prefixed frames, possibly split across chunks) into messages. */
const parseBatch = (chunks: ReadonlyArray<Uint8Array>): Array<{ binary: boolean; data: Buffer }> => {
  const frames: Array<Uint8Array> = []
  const decoder = wire.makeDecoder()
  for (const c of chunks) decoder.decode(c, frames) // no limit: cannot fail
  return frames.map((frame) => {
    const b = Buffer.from(frame.buffer, frame.byteOffset, frame.length)
    return { binary: b[0] === KIND_BINARY, data: b.subarray(1) }
  })
}

/** @internal */
export const make = (
  ws: WebSocket,
  options: { readonly isServer: boolean; readonly maxPayload: number; readonly readHighWaterMark?: number | undefined }
): Transport => {
  const internals = ws as unknown as {
    _socket: Net.Socket
    _receiver: EventEmitter & { _payloadLength?: number; _totalPayloadLength?: number }
    _closeFrameReceived: boolean
    _closeFrameSent: boolean
    _closeCode: number
    _closeMessage: Buffer
  }
  const socket = internals._socket
  const receiver = internals._receiver
  const hwm = options.readHighWaterMark ?? DEFAULT_READ_HWM

  const inbound = Inbound.make({
    highWaterMark: hwm,
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    destroyed: () => socket.destroyed,
    closedMessage: "WebSocket closed without a Close frame (1006)",
    eofBeforeFailure: true
  })
  let received: CloseInfo["received"]
  let sent: CloseInfo["sent"]
  let protocolError: CloseInfo["protocolError"]
  let closeFrame: { code: number; reason: string } | undefined
  let pendingControl: Array<{ readonly ping: boolean; readonly data: Buffer }> = []
  let wakeWriter: (() => void) | undefined
  const pongListeners = new Set<(data: Buffer) => void>()


  // ---- read side ----
  ws.on("message", (data: Buffer | ArrayBuffer | Array<Buffer>, isBinary: boolean) => {
    const payload = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
    const chunk = Buffer.allocUnsafe(payload.length + 1)
    chunk[0] = isBinary ? KIND_BINARY : KIND_TEXT
    payload.copy(chunk, 1)
    inbound.push(chunk)
  })
  // the peer's PING: the PONG is written by the connection's writer fiber, never from here
  ws.on("ping", (data: Buffer) => {
    if (pendingControl.length >= MAX_PENDING_CONTROL) return
    pendingControl.push({ ping: false, data: Buffer.from(data) })
    wakeWriter?.()
  })
  ws.on("pong", (data: Buffer) => {
    for (const f of pongListeners) f(data)
  })
  ws.on("error", (cause: Error) => {
    inbound.fail(toError("Read", cause))
  })
  ws.on("close", inbound.close)
  socket.on("end", inbound.end)

  // stop feeding ws's parser (what ws does itself when a Close frame or a protocol error ends reading)
  const wsDataListeners = socket.listeners("data") as Array<(chunk: Buffer) => void>
  const stopReading = () => {
    for (const l of wsDataListeners) socket.removeListener("data", l)
    process.nextTick(() => {
      if (!socket.destroyed) socket.resume()
    })
  }
  // replace ws's handlers that would write a Close frame from the read callback
  receiver.removeAllListeners("conclude")
  receiver.removeAllListeners("error")
  receiver.on("conclude", (code: number, reason: Buffer) => {
    internals._closeFrameReceived = true
    internals._closeCode = code
    internals._closeMessage = Buffer.from(reason)
    received = { code, reason: reason.toString() }
    stopReading()
    if (internals._closeFrameSent) socket.end() // both Close frames exchanged
    inbound.end()
  })
  receiver.on("error", (err: Error) => {
    const status = statusOf(err)
    protocolError = { status, code: errorCode(err), message: err.message }
    stopReading()
    const size = (receiver._totalPayloadLength ?? 0) + (receiver._payloadLength ?? 0)
    inbound.push(errorMarker(status === 1009, status === 1009 ? size : 0, options.maxPayload, err.message))
  })

  const read = inbound.read

  // ---- write side (the connection's writer fiber only) ----
  const notOpen = () =>
    new TransportError({ reason: "Closed", message: `WebSocket is not open (readyState ${ws.readyState})` })
  const write = (batch: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> =>
    Effect.async<void, TransportError>((resume) => {
      if (ws.readyState !== OPEN || socket.destroyed) return resume(Effect.fail(notOpen()))
      const messages = parseBatch(batch)
      const n = messages.length
      if (n === 0) return resume(Effect.void)
      const done = (err?: Error | null) => resume(err ? Effect.fail(toError("Write", err)) : Effect.void)
      socket.cork()
      for (let i = 0; i < n - 1; i++) {
        const m = messages[i]!
        ws.send(m.data, { binary: m.binary })
      }
      const last = messages[n - 1]!
      ws.send(last.data, { binary: last.binary }, done)
      socket.uncork()
    })

  const writeControl = (ops: ReadonlyArray<{ readonly ping: boolean; readonly data: Buffer }>) =>
    Effect.async<void, TransportError>((resume) => {
      // closing: a control frame after our Close is not allowed, and no longer needed
      if (ws.readyState !== OPEN || socket.destroyed) return resume(Effect.void)
      const done = (err?: Error | null) => resume(err ? Effect.fail(toError("Write", err)) : Effect.void)
      socket.cork()
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i]!
        const cb = i === ops.length - 1 ? done : undefined
        if (op.ping) ws.ping(op.data, undefined, cb)
        else ws.pong(op.data, undefined, cb)
      }
      socket.uncork()
    })
  const control: ControlLane = {
    unsafeTake: () => {
      if (pendingControl.length === 0) return []
      const ops = pendingControl
      pendingControl = []
      return [writeControl(ops)]
    },
    unsafeOnPending: (w) => {
      wakeWriter = w
    }
  }

  // the Close frame, written after the writer has exited; completes once it is flushed to the kernel
  const shutdownWrite: Effect.Effect<void, TransportError> = Effect.async<void, TransportError>((resume) => {
    if (socket.destroyed) {
      return resume(Effect.fail(new TransportError({ reason: "Closed", message: "socket destroyed before Close" })))
    }
    if (ws.readyState !== OPEN) return resume(Effect.void) // a Close is already out (or the socket ended)
    const frame = protocolError !== undefined
      ? { code: protocolError.status, reason: "" }
      : closeFrame ?? (received !== undefined && received.code !== 1005
        ? { code: received.code, reason: "" }
        : { code: 1000, reason: "" })
    try {
      ws.close(frame.code, frame.reason)
    } catch {
      ws.close(1000)
    }
    sent = frame
    socket.write(EMPTY, (err?: Error | null) =>
      resume(err ? Effect.fail(toError("Shutdown", err)) : Effect.void)
    )
  })

  const destroy = Effect.sync(() => {
    ws.terminate()
    if (!socket.destroyed) socket.destroy()
  })

  const state = (): TransportState => inbound.state(socket.destroyed, sent !== undefined || socket.writableEnded)

  const stats = (): TransportStats => {
    const queued = ws.bufferedAmount
    return {
      queuedBytes: queued,
      bytesHandedToKernel: Math.max(0, socket.bytesWritten - socket.writableLength),
      bytesRead: socket.bytesRead,
      state: state(),
      socket
    }
  }

  const address = (host: string | undefined, port: number | undefined) =>
    host === undefined ? undefined : `${host.includes(":") ? `[${host}]` : host}:${port}`

  const transport: Transport = {
    kind: "websocket",
    remoteAddress: address(socket.remoteAddress, socket.remotePort),
    localAddress: address(socket.localAddress, socket.localPort),
    read,
    unsafePoll: inbound.poll,
    unsafeOnReadable: inbound.onReadable,
    write,
    shutdownWrite,
    destroy,
    stats,
    control
  }
  handles.set(transport, {
    ws,
    socket,
    setCloseFrame: (code, reason, override = true) => {
      if (override || closeFrame === undefined) closeFrame = { code, reason }
    },
    queuePing: (data) => {
      if (pendingControl.length >= MAX_PENDING_CONTROL) return
      pendingControl.push({ ping: true, data: Buffer.from(data) })
      wakeWriter?.()
    },
    onPong: (f) => {
      pongListeners.add(f)
      return () => pongListeners.delete(f)
    },
    closeInfo: () => ({ received, sent, protocolError })
  })
  return transport
}
