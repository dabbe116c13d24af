/**
 * The WebSocket frame codec (RFC 6455 §5, permessage-deflate RFC 7692): typed messages
 * (`Text` / `Binary`) to wire frames and back, with the protocol's checks on the read side —
 * masking, reserved bits and opcodes, control-frame rules, fragmentation, `maxPayload` (1009),
 * UTF-8 validity of text (1007, fragment by fragment) and Close-frame validity.
 *
 * Written here rather than borrowed from `ws`: ws's parser and writer are bound to its
 * `WebSocket` object (and write Close frames from its read callback); tether's writer must be
 * the only one writing, so both sides of the codec are plain functions of bytes.
 * @internal
 */
import { isUtf8 } from "node:buffer"
import { randomFillSync } from "node:crypto"
import * as Zlib from "node:zlib"
import * as Data from "effect/Data"
import { FrameError } from "../Framing.js"
import type * as Framing from "../Framing.js"
import type * as WS from "../WebSocket.js"

// ---- messages ----
// The same objects `Message.Text` / `Message.Binary` make (Data's structural prototype, own `text`/`data`
// then `_tag`), built by plain constructors: the tagged-enum constructor goes through a Proxy, a fresh
// closure, `Object.create` and `Object.assign` per message.
const StructuralPrototype: object = Object.getPrototypeOf(Data.struct({}))
interface MessageCtor<A> {
  new(value: unknown): A
}
const TextMessage = function(this: { text: string; _tag: "Text" }, text: string) {
  this.text = text
  this._tag = "Text"
} as unknown as MessageCtor<WS.Message>
TextMessage.prototype = StructuralPrototype
const BinaryMessage = function(this: { data: Uint8Array; _tag: "Binary" }, data: Uint8Array) {
  this.data = data
  this._tag = "Binary"
} as unknown as MessageCtor<WS.Message>
BinaryMessage.prototype = StructuralPrototype
/** A Text message, equal to `Message.Text({ text })`. @internal */
export const textMessage = (text: string): WS.Message => new TextMessage(text)
/** A Binary message, equal to `Message.Binary({ data })`. @internal */
export const binaryMessage = (data: Uint8Array): WS.Message => new BinaryMessage(data)

/** @internal */
export const OP_CONTINUATION = 0x0
/** @internal */
export const OP_TEXT = 0x1
/** @internal */
export const OP_BINARY = 0x2
/** @internal */
export const OP_CLOSE = 0x8
/** @internal */
export const OP_PING = 0x9
/** @internal */
export const OP_PONG = 0xa

const DEFLATE_TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff])
const WINDOW = 32 * 1024

/** Negotiated permessage-deflate parameters (RFC 7692 §7). @internal */
export interface Deflate {
  /** Window bits of our compressor (9..15). */
  readonly windowBits: number
  /** The peer resets its compressor after every message (we may then drop our inflate window). */
  readonly peerNoContextTakeover: boolean
}

/** What the decoder reports besides data messages. @internal */
export interface ControlSink {
  readonly ping: (payload: Buffer) => void
  readonly pong: (payload: Buffer) => void
  /** The peer's Close frame (code 1005 when it carried none); the decoder reads nothing after it. */
  readonly close: (code: number, reason: string) => void
  /** A protocol error: the Close code we answer with (1002, 1007, 1009). */
  readonly protocolError: (status: number, message: string) => void
}

/** A protocol error found by the decoder: its Close status rides on the FrameError's message. @internal */
const protocolError = (sink: ControlSink, status: number, message: string): FrameError => {
  sink.protocolError(status, message)
  return new FrameError({ reason: "MalformedFrame", message: `WebSocket protocol error (${status}): ${message}` })
}
const tooLarge = (sink: ControlSink, size: number, max: number): FrameError => {
  sink.protocolError(1009, `message of ${size} bytes exceeds maxPayload ${max}`)
  return new FrameError({
    reason: "FrameTooLarge",
    message: `WebSocket message of ${size} bytes exceeds maxPayload ${max}`,
    size,
    max
  })
}

/** A valid close code on the wire (RFC 6455 §7.4). @internal */
export const isValidCloseCode = (code: number): boolean =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)

// ---- masking ----
let maskPool = Buffer.allocUnsafe(0)
let maskOffset = 0
const nextMask = (target: Uint8Array, offset: number): void => {
  if (maskOffset + 4 > maskPool.length) {
    maskPool = randomFillSync(Buffer.allocUnsafe(4096))
    maskOffset = 0
  }
  target[offset] = maskPool[maskOffset]!
  target[offset + 1] = maskPool[maskOffset + 1]!
  target[offset + 2] = maskPool[maskOffset + 2]!
  target[offset + 3] = maskPool[maskOffset + 3]!
  maskOffset += 4
}
/** XORs `data[start, end)` with the mask bytes `m0..m3` (in place). */
const xorMask = (data: Uint8Array, start: number, end: number, m0: number, m1: number, m2: number, m3: number): void => {
  let i = start
  for (; i + 3 < end; i += 4) {
    data[i] = data[i]! ^ m0
    data[i + 1] = data[i + 1]! ^ m1
    data[i + 2] = data[i + 2]! ^ m2
    data[i + 3] = data[i + 3]! ^ m3
  }
  if (i < end) data[i] = data[i]! ^ m0
  if (i + 1 < end) data[i + 1] = data[i + 1]! ^ m1
  if (i + 2 < end) data[i + 2] = data[i + 2]! ^ m2
}
/** XORs `data[start, end)` with the 4-byte mask at `mask[maskAt]` (in place). @internal */
export const applyMask = (data: Uint8Array, start: number, end: number, mask: Uint8Array, maskAt: number): void =>
  xorMask(data, start, end, mask[maskAt]!, mask[maskAt + 1]!, mask[maskAt + 2]!, mask[maskAt + 3]!)
/** Copies `source` to `target[at…]` masked with the 4 bytes before `at` (one pass: copy and XOR). */
const copyMasked = (source: Uint8Array, target: Uint8Array, at: number): void => {
  const m0 = target[at - 4]!, m1 = target[at - 3]!, m2 = target[at - 2]!, m3 = target[at - 1]!
  const n = source.length
  let i = 0
  for (; i + 3 < n; i += 4) {
    target[at + i] = source[i]! ^ m0
    target[at + i + 1] = source[i + 1]! ^ m1
    target[at + i + 2] = source[i + 2]! ^ m2
    target[at + i + 3] = source[i + 3]! ^ m3
  }
  if (i < n) target[at + i] = source[i]! ^ m0
  if (i + 1 < n) target[at + i + 1] = source[i + 1]! ^ m1
  if (i + 2 < n) target[at + i + 2] = source[i + 2]! ^ m2
}
/** Below this a masked binary payload is copied and masked in one JS pass; above, `set` then mask. */
const FUSED_MASK_LIMIT = 256
const EMPTY = Buffer.alloc(0)

/**
 * Whether pre-encoded bytes (a `Connection.Encoded`, typically shared by a broadcast) can go on
 * this side's wire as they are: exactly one complete data frame, unmasked (a server's frames; a
 * client must mask every frame with a fresh key, so nothing pre-encoded fits a client), and
 * compressed (RSV1) only where permessage-deflate was negotiated. Otherwise the message is encoded
 * again from the payload.
 * @internal
 */
export const fitsWire = (bytes: Uint8Array, isServer: boolean, deflate: boolean): boolean => {
  if (!isServer || bytes.length < 2) return false
  const b0 = bytes[0]!
  const b1 = bytes[1]!
  if ((b1 & 0x80) !== 0) return false // masked: a client's frame
  if ((b0 & 0x30) !== 0 || ((b0 & 0x40) !== 0 && !deflate)) return false // RSV2/3, or RSV1 without deflate
  const opcode = b0 & 0x0f
  if ((b0 & 0x80) === 0 || (opcode !== OP_TEXT && opcode !== OP_BINARY)) return false // whole data frames only
  const len7 = b1 & 0x7f
  let header = 2
  let n = len7
  if (len7 === 126) {
    if (bytes.length < 4) return false
    header = 4
    n = (bytes[2]! << 8) | bytes[3]!
  } else if (len7 === 127) {
    if (bytes.length < 10) return false
    header = 10
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    n = view.getUint32(2) * 0x100000000 + view.getUint32(6)
  }
  return header + n === bytes.length
}

const headerLength = (payload: number, masked: boolean): number =>
  (payload < 126 ? 2 : payload < 65536 ? 4 : 10) + (masked ? 4 : 0)

/** Writes a frame header; returns the offset of the payload (after the mask key, if any). */
const writeHeader = (
  target: Uint8Array,
  offset: number,
  opcode: number,
  rsv1: boolean,
  payload: number,
  masked: boolean
): number => {
  target[offset] = 0x80 | (rsv1 ? 0x40 : 0) | opcode
  const m = masked ? 0x80 : 0
  let o = offset + 2
  if (payload < 126) target[offset + 1] = m | payload
  else if (payload < 65536) {
    target[offset + 1] = m | 126
    target[offset + 2] = payload >>> 8
    target[offset + 3] = payload & 0xff
    o = offset + 4
  } else {
    target[offset + 1] = m | 127
    const view = new DataView(target.buffer, target.byteOffset, target.byteLength)
    view.setUint32(offset + 2, Math.floor(payload / 0x100000000))
    view.setUint32(offset + 6, payload >>> 0)
    o = offset + 10
  }
  if (masked) {
    nextMask(target, o)
    o += 4
  }
  return o
}

/** One complete control frame (PING, PONG, Close), masked when `masked`. @internal */
export const controlFrame = (opcode: number, payload: Uint8Array, masked: boolean): Buffer => {
  const out = Buffer.allocUnsafe(headerLength(payload.length, masked) + payload.length)
  const at = writeHeader(out, 0, opcode, false, payload.length, masked)
  out.set(payload, at)
  if (masked) applyMask(out, at, at + payload.length, out, at - 4)
  return out
}

/** A Close frame's payload: the code and a UTF-8 reason cut to fit 125 bytes (no code: empty). @internal */
export const closePayload = (code: number | undefined, reason: string): Buffer => {
  if (code === undefined) return Buffer.alloc(0)
  let r = Buffer.from(reason)
  if (r.length > 123) {
    let end = 123
    while (end > 0 && (r[end]! & 0xc0) === 0x80) end-- // do not cut a character in half
    r = r.subarray(0, end)
  }
  const out = Buffer.allocUnsafe(2 + r.length)
  out.writeUInt16BE(code, 0)
  r.copy(out, 2)
  return out
}

/** The codec's settings for one connection. @internal */
export interface CodecOptions {
  /** Client frames are masked (and a server requires masked frames). */
  readonly isServer: boolean
  readonly maxPayload: number
  readonly deflate: Deflate | undefined
  /** Messages smaller than this are sent uncompressed even with permessage-deflate (default 64 bytes). */
  readonly deflateThreshold?: number | undefined
}

/**
 * The frame codec of one connection: `encodeInto` writes a whole data frame; the decoder parses
 * frames into messages and reports control frames and protocol errors to `sink`.
 * @internal
 */
export const makeCodec = (options: CodecOptions, sink: ControlSink): Framing.Codec<WS.Message, WS.Message> => {
  const masked = !options.isServer
  const max = options.maxPayload
  const deflate = options.deflate
  const threshold = options.deflateThreshold ?? 64
  // compressed payloads, computed once per message (the weight and the encoder both need the size)
  const compressed = new WeakMap<WS.Message, Buffer>()
  const deflated = (m: WS.Message): Buffer | undefined => {
    if (deflate === undefined) return undefined
    let c = compressed.get(m)
    if (c === undefined) {
      const raw = m._tag === "Text" ? Buffer.from(m.text) : m.data
      if (raw.length < threshold) return undefined
      const out = Zlib.deflateRawSync(raw, {
        windowBits: deflate.windowBits,
        finishFlush: Zlib.constants.Z_SYNC_FLUSH
      })
      c = out.subarray(0, out.length - 4) // RFC 7692 §7.2.1: without the trailing 00 00 ff ff
      compressed.set(m, c)
    }
    return c
  }
  const payloadLength = (m: WS.Message): number => {
    const c = deflated(m)
    if (c !== undefined) return c.length
    return m._tag === "Text" ? Buffer.byteLength(m.text) : m.data.length
  }
  const rawLength = (m: WS.Message): number => (m._tag === "Text" ? Buffer.byteLength(m.text) : m.data.length)
  const encodedLength = (m: WS.Message): number => {
    const n = payloadLength(m)
    return headerLength(n, masked) + n
  }
  const encodeInto = (m: WS.Message, target: Uint8Array, offset: number): number => {
    const c = deflated(m)
    const opcode = m._tag === "Text" ? OP_TEXT : OP_BINARY
    const n = c !== undefined ? c.length : m._tag === "Text" ? Buffer.byteLength(m.text) : m.data.length
    const at = writeHeader(target, offset, opcode, c !== undefined, n, masked)
    if (c !== undefined) target.set(c, at)
    else if (m._tag === "Text") {
      const b = Buffer.isBuffer(target) ? target : Buffer.from(target.buffer, target.byteOffset, target.byteLength)
      b.write(m.text, at, n, "utf8")
    } else if (masked && n < FUSED_MASK_LIMIT) {
      copyMasked(m.data, target, at)
      return at + n
    } else target.set(m.data, at)
    if (masked) applyMask(target, at, at + n, target, at - 4)
    return at + n
  }
  const check = (m: WS.Message): FrameError | undefined => {
    if (m === null || typeof m !== "object" || (m._tag !== "Text" && m._tag !== "Binary")) {
      return new FrameError({
        reason: "MalformedFrame",
        message: "not a WebSocket message (make one with WebSocket.text or WebSocket.binary)"
      })
    }
    const size = rawLength(m)
    return size > max
      ? new FrameError({
        reason: "FrameTooLarge",
        message: `message of ${size} bytes exceeds maxPayload ${max}`,
        size,
        max
      })
      : undefined
  }

  const makeDecoder = (): Framing.Decoder<WS.Message> => {
    // unparsed bytes: a list of chunks, concatenated only when a header or payload spans them
    let chunks: Array<Buffer> = []
    let buffered = 0
    let stopped = false
    // the message being assembled from fragments
    let fragOpcode = -1
    let fragCompressed = false
    let fragParts: Array<Buffer> = []
    let fragBytes = 0
    let fragText = ""
    const utf8 = new TextDecoder("utf-8", { fatal: true })
    // the peer's compression window (context takeover)
    let window: Buffer | undefined

    // bytes of chunks[0] already consumed: frames are cut out of a chunk by moving this cursor, so a
    // frame costs one subarray (its payload), not a re-slice of the chunk's rest per header and payload
    let pos = 0
    const take = (n: number): Buffer => {
      const first = chunks[0]!
      if (first.length - pos >= n) {
        const out = first.subarray(pos, pos + n)
        pos += n
        if (pos === first.length) {
          chunks.shift()
          pos = 0
        }
        buffered -= n
        return out
      }
      const out = Buffer.allocUnsafe(n)
      let o = 0
      while (o < n) {
        const c = chunks[0]!
        const k = Math.min(c.length - pos, n - o)
        c.copy(out, o, pos, pos + k)
        o += k
        if (pos + k === c.length) {
          chunks.shift()
          pos = 0
        } else pos += k
      }
      buffered -= n
      return out
    }
    const skip = (n: number): void => {
      while (n > 0) {
        const c = chunks[0]!
        const k = Math.min(c.length - pos, n)
        n -= k
        buffered -= k
        if (pos + k === c.length) {
          chunks.shift()
          pos = 0
        } else pos += k
      }
    }
    const byteAt = (i: number): number => {
      const first = chunks[0]!
      let j = pos + i
      if (j < first.length) return first[j]!
      j -= first.length
      for (let k = 1; k < chunks.length; k++) {
        const c = chunks[k]!
        if (j < c.length) return c[j]!
        j -= c.length
      }
      return 0
    }

    const inflate = (data: Buffer): Buffer | FrameError => {
      try {
        const out = Zlib.inflateRawSync(Buffer.concat([data, DEFLATE_TRAILER]), {
          finishFlush: Zlib.constants.Z_SYNC_FLUSH,
          maxOutputLength: max + 1,
          ...(window === undefined || window.length === 0 ? {} : { dictionary: window })
        })
        if (out.length > max) return tooLarge(sink, out.length, max)
        if (!deflate!.peerNoContextTakeover) {
          const joined = window === undefined ? out : Buffer.concat([window, out])
          window = Buffer.from(joined.subarray(Math.max(0, joined.length - WINDOW)))
        }
        return out
      } catch (e) {
        if (e instanceof RangeError || (e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
          return tooLarge(sink, max + 1, max)
        }
        return protocolError(sink, 1007, `permessage-deflate: ${(e as Error).message}`)
      }
    }

    const deliver = (opcode: number, data: Buffer, out: Array<WS.Message>): FrameError | undefined => {
      if (opcode === OP_BINARY) {
        out.push(new BinaryMessage(data))
        return undefined
      }
      if (!isUtf8(data)) return protocolError(sink, 1007, "invalid UTF-8 in a text message")
      out.push(new TextMessage(data.toString("utf8")))
      return undefined
    }

    const decode = (chunk: Uint8Array, out: Array<WS.Message>): FrameError | undefined => {
      if (stopped || chunk.length === 0) return undefined
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length))
      buffered += chunk.length
      for (;;) {
        if (buffered < 2) return undefined
        const b0 = byteAt(0)
        const b1 = byteAt(1)
        const fin = (b0 & 0x80) !== 0
        const rsv1 = (b0 & 0x40) !== 0
        const opcode = b0 & 0x0f
        const isMasked = (b1 & 0x80) !== 0
        let len = b1 & 0x7f
        let hdr = 2
        if (len === 126) hdr = 4
        else if (len === 127) hdr = 10
        if (isMasked) hdr += 4
        if (buffered < hdr) return undefined
        if (len === 126) len = (byteAt(2) << 8) | byteAt(3)
        else if (len === 127) {
          const hi = byteAt(2) * 0x1000000 + ((byteAt(3) << 16) | (byteAt(4) << 8) | byteAt(5))
          len = hi * 0x100000000 + (byteAt(6) * 0x1000000 + ((byteAt(7) << 16) | (byteAt(8) << 8) | byteAt(9)))
          // 2^53 or more (not exact as a number): too large whatever maxPayload, and reported like any other
          // message too large (FrameTooLarge, as the 1009 Close says), not as a malformed frame
          if (hi > 0x1fffff) return fail(tooLarge(sink, len, max))
        }
        // header checks, before waiting for the payload
        if ((b0 & 0x30) !== 0) return fail(protocolError(sink, 1002, "reserved bits RSV2/RSV3 set"))
        if (isMasked !== options.isServer) {
          return fail(protocolError(sink, 1002, options.isServer ? "unmasked client frame" : "masked server frame"))
        }
        const control = opcode >= 0x8
        if (control) {
          if (opcode > OP_PONG) return fail(protocolError(sink, 1002, `reserved opcode ${opcode}`))
          if (!fin) return fail(protocolError(sink, 1002, "fragmented control frame"))
          if (len > 125) return fail(protocolError(sink, 1002, "control frame payload over 125 bytes"))
          if (rsv1) return fail(protocolError(sink, 1002, "RSV1 set on a control frame"))
        } else if (opcode === OP_CONTINUATION) {
          if (fragOpcode < 0) return fail(protocolError(sink, 1002, "continuation frame without a message"))
          if (rsv1) return fail(protocolError(sink, 1002, "RSV1 set on a continuation frame"))
        } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
          if (fragOpcode >= 0) return fail(protocolError(sink, 1002, "new message inside a fragmented one"))
          if (rsv1 && deflate === undefined) return fail(protocolError(sink, 1002, "RSV1 set without permessage-deflate"))
        } else return fail(protocolError(sink, 1002, `reserved opcode ${opcode}`))
        if (!control) {
          const total = (opcode === OP_CONTINUATION ? fragBytes : 0) + len
          const compressedMessage = opcode === OP_CONTINUATION ? fragCompressed : rsv1
          // compressed: the limit applies to the inflated size (checked there); the wire size is bounded too
          if (total > max && !compressedMessage) return fail(tooLarge(sink, total, max))
          if (compressedMessage && total > max + 1024 + Math.ceil(max / 100)) return fail(tooLarge(sink, total, max))
        }
        if (buffered < hdr + len) return undefined
        let m0 = 0, m1 = 0, m2 = 0, m3 = 0
        if (isMasked) {
          m0 = byteAt(hdr - 4)
          m1 = byteAt(hdr - 3)
          m2 = byteAt(hdr - 2)
          m3 = byteAt(hdr - 1)
        }
        skip(hdr)
        const payload = len === 0 ? EMPTY : take(len)
        if (isMasked) xorMask(payload, 0, len, m0, m1, m2, m3)

        if (control) {
          if (opcode === OP_PING) sink.ping(payload)
          else if (opcode === OP_PONG) sink.pong(payload)
          else {
            if (len === 1) return fail(protocolError(sink, 1002, "Close frame with a 1-byte payload"))
            const code = len === 0 ? 1005 : payload.readUInt16BE(0)
            if (len > 0 && !isValidCloseCode(code)) return fail(protocolError(sink, 1002, `invalid close code ${code}`))
            const reason = payload.subarray(2)
            if (!isUtf8(reason)) return fail(protocolError(sink, 1007, "invalid UTF-8 in a Close reason"))
            stopped = true // nothing is read after the peer's Close
            chunks = []
            pos = 0
            buffered = 0
            sink.close(code, reason.toString("utf8"))
            return undefined
          }
          continue
        }

        if (opcode !== OP_CONTINUATION) {
          if (fin) {
            // a whole message in one frame (the common case)
            let data: Buffer = payload
            if (rsv1) {
              const r = inflate(payload)
              if (r instanceof FrameError) return fail(r)
              data = r
            }
            const err = deliver(opcode, data, out)
            if (err) return fail(err)
            continue
          }
          fragOpcode = opcode
          fragCompressed = rsv1
          fragParts = []
          fragBytes = 0
          fragText = ""
        }
        fragBytes += len
        if (fragOpcode === OP_TEXT && !fragCompressed) {
          // validated fragment by fragment: a bad sequence fails at the fragment that has it
          try {
            fragText += utf8.decode(payload, { stream: !fin })
          } catch {
            return fail(protocolError(sink, 1007, "invalid UTF-8 in a text message"))
          }
        } else fragParts.push(payload)
        if (!fin) continue
        const op = fragOpcode
        fragOpcode = -1
        if (op === OP_TEXT && !fragCompressed) {
          out.push(new TextMessage(fragText))
          fragText = ""
          continue
        }
        let data: Buffer = Buffer.concat(fragParts)
        fragParts = []
        if (fragCompressed) {
          const r = inflate(data)
          if (r instanceof FrameError) return fail(r)
          data = r
        }
        const err = deliver(op, data, out)
        if (err) return fail(err)
      }
    }
    const fail = (e: FrameError): FrameError => {
      stopped = true
      chunks = []
      pos = 0
      buffered = 0
      return e
    }
    return { decode, buffered: () => buffered }
  }

  return {
    name: "websocket",
    maxFrameBytes: max,
    check,
    encodedLength,
    encodeInto,
    encodeChunks: (m) => {
      const buf = Buffer.allocUnsafe(encodedLength(m))
      encodeInto(m, buf, 0)
      return [buf]
    },
    makeDecoder
  }
}
