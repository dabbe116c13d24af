/**
 * A WebSocket as a `Framed<Message, Message>`: the frame codec (wsFrame.ts) over the byte
 * transport of the upgraded socket. Every byte on the wire is written by the connection's single
 * writer:
 * - data messages through `write` (a batch of frames packed into as few syscalls as possible);
 * - PONGs (answers to the peer's PINGs), heartbeat PINGs and an early Close (heartbeat timeout)
 *   through the control lane, ahead of queued data;
 * - the Close frame through `shutdownWrite`, which the connection calls after its writer drained.
 * The peer's Close frame is the read side's EOF (its code and reason become `PeerClosed`'s); a
 * protocol error is a `FrameError` on the read side, and our Close then carries its status.
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as DR from "../DisconnectReason.js"
import type * as Framed from "../Framed.js"
import type * as Framing from "../Framing.js"
import type { ControlLane, Transport } from "../Transport.js"
import type * as WS from "../WebSocket.js"
import { transportOf } from "./connection.js"
import { fromTransport } from "./connection/framed.js"
import { Encoded } from "./connection/models.js"
import { TransportError } from "./transportError.js"
import type { CloseInfo } from "./wsCloseInfo.js"
import * as Frame from "./wsFrame.js"

/** Control frames waiting for the writer beyond this are dropped (a ping flood while we cannot write). */
const MAX_PENDING_CONTROL = 1024

/** The WebSocket-specific handle behind a connection. @internal */
export interface WsHandle {
  /** Sets the code and reason of the Close frame `shutdownWrite` will send (`override: false`: only if none is set). */
  readonly setCloseFrame: (code: number, reason: string, override?: boolean) => void
  /**
   * Queues a Close frame for the writer, ahead of queued data (after it, data writes fail);
   * `then` runs once it was written (or could not be).
   */
  readonly closeNow: (code: number, reason: string, then?: () => void) => void
  /** Queues a PING for the writer. */
  readonly queuePing: (data: Uint8Array) => void
  /** Called for every PONG received; returns an unregister function. */
  readonly onPong: (f: (data: Buffer) => void) => () => void
  readonly closeInfo: () => CloseInfo
  /** The negotiated subprotocol ("" when none) and extensions. */
  readonly protocol: string
  readonly extensions: string
}

const handles = new WeakMap<Transport, WsHandle>()

/** The WebSocket handle of a connection (undefined when it is not over a WebSocket). @internal */
export const handleOfConnection = (conn: object): WsHandle | undefined => {
  const t = transportOf(conn)
  return t === undefined ? undefined : handles.get(t)
}

/** The WebSocket handle of a byte transport under a WebSocket. @internal */
export const handleOfTransport = (t: Transport): WsHandle | undefined => handles.get(t)

/** @internal */
export interface Options {
  readonly isServer: boolean
  readonly maxPayload: number
  readonly deflate: Frame.Deflate | undefined
  readonly protocol?: string | undefined
  readonly extensions?: string | undefined
}

/** @internal */
export const make = (
  transport: Transport,
  options: Options
): Effect.Effect<Framed.Framed<WS.Message, WS.Message>, never, Scope.Scope> =>
  Effect.suspend(() => {
    const masked = !options.isServer
    let received: CloseInfo["received"]
    let sent: CloseInfo["sent"]
    let protocolError: CloseInfo["protocolError"]
    let closeFrame: { code: number; reason: string } | undefined
    let earlyClose: { code: number; reason: string; then: (() => void) | undefined } | undefined
    let pending: Array<Buffer> = []
    let wakeWriter: (() => void) | undefined
    let eof = false
    const pongListeners = new Set<(data: Buffer) => void>()
    const queueControl = (frame: Buffer) => {
      if (sent !== undefined || earlyClose !== undefined || pending.length >= MAX_PENDING_CONTROL) return
      pending.push(frame)
      wakeWriter?.()
    }
    const sink: Frame.ControlSink = {
      // the peer's PING: the PONG is written by the connection's writer, never from here
      ping: (payload) => queueControl(Frame.controlFrame(Frame.OP_PONG, payload, masked)),
      pong: (payload) => {
        for (const f of pongListeners) f(payload)
      },
      close: (code, reason) => {
        received = { code, reason }
      },
      protocolError: (status, message) => {
        if (protocolError === undefined) protocolError = { status, code: undefined, message }
      }
    }
    const codec = Frame.makeCodec({ isServer: options.isServer, maxPayload: options.maxPayload, deflate: options.deflate }, sink)
    return Effect.map(fromTransport(transport, codec), (inner): Framed.Framed<WS.Message, WS.Message> => {
      const closedError = () =>
        new TransportError({ reason: "Closed", message: "the WebSocket Close frame was sent: no more messages" })
      const writeClose = (frame: { code: number; reason: string }) =>
        Effect.suspend(() => {
          const bytes = Frame.controlFrame(Frame.OP_CLOSE, Frame.closePayload(frame.code, frame.reason), masked)
          // both Close frames exchanged: the TCP close follows (RFC 6455 §7.1.1)
          sent = { code: frame.code, reason: frame.reason }
          return received === undefined
            ? transport.write([bytes])
            : Effect.zipRight(transport.write([bytes]), transport.shutdownWrite)
        })
      const control: ControlLane = {
        unsafeTake: () => {
          if (sent !== undefined) {
            pending = []
            return []
          }
          if (earlyClose !== undefined) {
            const frame = earlyClose
            pending = []
            return [Effect.ensuring(writeClose(frame), Effect.sync(() => frame.then?.()))]
          }
          if (pending.length === 0) return []
          const frames = pending
          pending = []
          return [transport.write(frames)]
        },
        unsafeOnPending: (w) => {
          wakeWriter = w
        }
      }
      const unsafeRead = (out: Array<WS.Message>): Framed.ReadResult => {
        if (eof) return "eof"
        const r = inner.unsafeRead(out)
        if (received !== undefined) {
          // the peer's Close is our EOF (what came after it is not read)
          eof = true
          return typeof r === "number" ? r : "eof"
        }
        if (r === "eof") eof = true
        return r
      }
      // pre-encoded frames go out as they are only where they fit this side's wire (Frame.fitsWire: a
      // client masks every frame with a fresh key, a server never masks); the others are encoded again
      // from their payload, so a broadcast's shared buffer can never put a protocol error on the wire
      const deflating = options.deflate !== undefined
      type Item = WS.Message | Encoded<WS.Message>
      const fit = (o: Item): Item =>
        o instanceof Encoded && !Frame.fitsWire(o.bytes, options.isServer, deflating) ? o.payload : o
      const fitAll = (batch: ReadonlyArray<Item>): ReadonlyArray<Item> => {
        for (let i = 0; i < batch.length; i++) if (fit(batch[i]!) !== batch[i]) return batch.map(fit)
        return batch
      }
      let lastBatch: ReadonlyArray<Item> | undefined
      let lastFitted: ReadonlyArray<Item> = []
      /** The batch as written (fitted), remembered for `unsafeSplit`. */
      const fitted = (batch: ReadonlyArray<Item>): ReadonlyArray<Item> => {
        lastBatch = batch
        lastFitted = fitAll(batch)
        return lastFitted
      }
      // by delegation: the inner seam's members are methods on its prototype (a spread copies none)
      const framed: Framed.Framed<WS.Message, WS.Message> = {
        kind: "websocket",
        remoteAddress: inner.remoteAddress,
        localAddress: inner.localAddress,
        codec: inner.codec,
        check: inner.check,
        unsafeOnReadable: (wake) => inner.unsafeOnReadable(wake),
        get destroy() {
          return inner.destroy
        },
        stats: () => inner.stats(),
        transport: inner.transport,
        weight: (o) => inner.weight(fit(o)),
        write: (batch) => {
          if (sent !== undefined || earlyClose !== undefined) return Effect.fail(closedError())
          return inner.write(fitted(batch))
        },
        // the callback form, for the connection's direct writer (the control lane's writes stay effects:
        // the writer hands over to its fiber for them)
        unsafeWrite: inner.unsafeWrite === undefined ? undefined : (batch, callback) => {
          if (sent !== undefined || earlyClose !== undefined) return callback(closedError(), 0)
          inner.unsafeWrite!(fitted(batch), callback)
        },
        unsafeSplit: (batch) => inner.unsafeSplit(batch === lastBatch ? lastFitted : fitAll(batch)),
        unsafeRead,
        control,
        unsafeEofReason: () =>
          received !== undefined
            ? DR.PeerClosed({ code: received.code, reason: received.reason })
            : DR.PeerClosed({ code: 1006, reason: "" }),
        shutdownWrite: Effect.suspend(() => {
          if (sent !== undefined) return Effect.void // a Close is already out
          const frame = protocolError !== undefined
            ? { code: protocolError.status, reason: "" }
            : closeFrame ?? (received !== undefined && received.code !== 1005
              ? { code: received.code, reason: "" }
              : { code: 1000, reason: "" })
          return writeClose(frame)
        })
      }
      handles.set(transport, {
        setCloseFrame: (code, reason, override = true) => {
          if (override || closeFrame === undefined) closeFrame = { code, reason }
        },
        closeNow: (code, reason, then) => {
          if (sent !== undefined || earlyClose !== undefined) return
          earlyClose = { code, reason, then }
          wakeWriter?.()
        },
        queuePing: (data) => queueControl(Frame.controlFrame(Frame.OP_PING, data, masked)),
        onPong: (f) => {
          pongListeners.add(f)
          return () => pongListeners.delete(f)
        },
        closeInfo: () => ({ received, sent, protocolError }),
        protocol: options.protocol ?? "",
        extensions: options.extensions ?? ""
      })
      return framed
    })
  })

/**
 * A WebSocket seam of bytes (for the byte-typed `Dialer`): each `Uint8Array` sent is one Binary
 * message; a received Binary message is its bytes, a Text message its UTF-8 bytes.
 * @internal
 */
export const binaryFramed = (
  inner: Framed.Framed<WS.Message, WS.Message>
): Framed.Framed<Uint8Array, Uint8Array> => {
  // one Message per buffer, kept while the buffer lives: weight, check and write see the same object
  const messages = new WeakMap<Uint8Array, WS.Message>()
  const messageOf = (b: Uint8Array): WS.Message => {
    let m = messages.get(b)
    if (m === undefined) {
      m = Frame.binaryMessage(b)
      messages.set(b, m)
    }
    return m
  }
  type Out = Uint8Array | Encoded<Uint8Array>
  // an Encoded of bytes carries bytes as its payload: the inner seam gets it with a Message payload, in
  // case its bytes do not fit the wire and the message must be encoded again (one per Encoded)
  const encodedMessages = new WeakMap<Encoded<Uint8Array>, Encoded<WS.Message>>()
  const map = (o: Out): WS.Message | Encoded<WS.Message> => {
    if (!(o instanceof Encoded)) return messageOf(o)
    let e = encodedMessages.get(o)
    if (e === undefined) {
      e = new Encoded(o.bytes, messageOf(o.payload))
      encodedMessages.set(o, e)
    }
    return e
  }
  let lastBatch: ReadonlyArray<Out> | undefined
  let lastMapped: ReadonlyArray<WS.Message | Encoded<WS.Message>> = []
  /** The batch as written (as messages), remembered for `unsafeSplit`. */
  const mapped = (batch: ReadonlyArray<Out>): ReadonlyArray<WS.Message | Encoded<WS.Message>> => {
    lastBatch = batch
    lastMapped = batch.map(map)
    return lastMapped
  }
  const scratch: Array<WS.Message> = []
  const encoder = new TextEncoder()
  const toBytes = (m: WS.Message): Uint8Array => (m._tag === "Binary" ? m.data : encoder.encode(m.text))
  const codec: Framing.Codec<Uint8Array, Uint8Array> = {
    name: "websocket-binary",
    maxFrameBytes: inner.codec.maxFrameBytes,
    check: (b) => inner.codec.check(messageOf(b)),
    encodedLength: (b) => inner.codec.encodedLength(messageOf(b)),
    encodeInto: (b, target, offset) => inner.codec.encodeInto(messageOf(b), target, offset),
    encodeChunks: (b) => inner.codec.encodeChunks(messageOf(b)),
    makeDecoder: () => {
      const d = inner.codec.makeDecoder()
      return {
        buffered: d.buffered,
        decode: (chunk, out) => {
          const ms: Array<WS.Message> = []
          const err = d.decode(chunk, ms)
          for (const m of ms) out.push(toBytes(m))
          return err
        }
      }
    }
  }
  return {
    kind: inner.kind,
    remoteAddress: inner.remoteAddress,
    localAddress: inner.localAddress,
    unsafeOnReadable: (wake) => inner.unsafeOnReadable(wake),
    unsafeEofReason: inner.unsafeEofReason,
    control: inner.control,
    get shutdownWrite() {
      return inner.shutdownWrite
    },
    get destroy() {
      return inner.destroy
    },
    stats: () => inner.stats(),
    transport: inner.transport,
    codec,
    check: (b) => inner.check(messageOf(b)),
    weight: (o) => inner.weight(map(o)),
    write: (batch) => Effect.suspend(() => inner.write(mapped(batch))),
    unsafeWrite: inner.unsafeWrite === undefined ? undefined : (batch, callback) => {
      inner.unsafeWrite!(mapped(batch), callback)
    },
    unsafeSplit: (batch) =>
      batch === lastBatch ? inner.unsafeSplit(lastMapped) : { written: 0, truncated: false, bytes: 0 },
    unsafeRead: (out) => {
      scratch.length = 0
      const r = inner.unsafeRead(scratch)
      for (const m of scratch) out.push(toBytes(m))
      scratch.length = 0
      return r
    }
  }
}
