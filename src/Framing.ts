/**
 * Incremental frame codecs: how messages are cut out of a byte stream and
 * written back into one.
 *
 * A {@link Codec} encodes frames straight into a caller-provided buffer (so the
 * connection's writer can pack a whole batch of small frames into one buffer and
 * one syscall) and makes stateful {@link Decoder}s that accept arbitrary chunk
 * boundaries. `maxFrameBytes` is enforced both ways: on encode the offending
 * `send` fails with a {@link FrameError}, on decode the connection ends with a
 * `FrameTooLarge` / `MalformedFrame` reason.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * A frame that could not be encoded or decoded.
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 *
 * const codec = Framing.lengthPrefixed({ maxFrameBytes: 4 })
 * const err = codec.check(new Uint8Array(5))
 * // err?.reason === "FrameTooLarge"
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export class FrameError extends Data.TaggedError("FrameError")<{
  readonly reason: "FrameTooLarge" | "MalformedFrame"
  readonly message: string
  readonly size?: number
  readonly max?: number
}> {}

/**
 * A stateful decoder: feed it chunks in arrival order, get whole frames back.
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 *
 * const decoder = Framing.newline().makeDecoder()
 * const out: Array<Uint8Array> = []
 * decoder.decode(new TextEncoder().encode("a\nb"), out) // out has "a"
 * decoder.decode(new TextEncoder().encode("\n"), out)   // out has "a", "b"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Decoder<In = Uint8Array> {
  /**
   * Appends every complete frame found in `chunk` (plus what was buffered) to
   * `out`. Returns a {@link FrameError} when the stream is malformed or a frame
   * is too large; the decoder must not be used after that.
   */
  readonly decode: (chunk: Uint8Array, out: Array<In>) => FrameError | undefined
  /**
   * Called once at the peer's EOF, after the last `decode` (tokio-util's `decode_eof`): may append
   * a last item, or return an error for bytes that can never complete a frame. Optional: without
   * it, bytes of an incomplete last frame are dropped (they were never a frame).
   */
  readonly decodeEof?: ((out: Array<In>) => FrameError | undefined) | undefined
  /** Bytes held back waiting for the rest of a frame. */
  readonly buffered: () => number
}

/**
 * A frame codec.
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 *
 * const codec = Framing.lengthPrefixed()
 * const payload = new TextEncoder().encode("hello")
 * const wire = new Uint8Array(codec.encodedLength(payload))
 * codec.encodeInto(payload, wire, 0) // [0,0,0,5,h,e,l,l,o]
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Codec<In = Uint8Array, Out = In> {
  readonly name: string
  /** The largest frame, both ways: an outbound message `check` refuses, an inbound one the decoder fails on. */
  readonly maxFrameBytes: number
  /** Returns an error if `message` cannot be encoded (too large, contains the delimiter). */
  readonly check: (message: Out) => FrameError | undefined
  /** Number of bytes `message` occupies on the wire. */
  readonly encodedLength: (message: Out) => number
  /** Writes the encoded frame into `target` at `offset`; returns the new offset. */
  readonly encodeInto: (message: Out, target: Uint8Array, offset: number) => number
  /**
   * The wire chunks of one frame without copying the payload (for large frames
   * that are not worth packing).
   */
  readonly encodeChunks: (message: Out) => ReadonlyArray<Uint8Array>
  /** A fresh stateful decoder of inbound bytes into `In` items (one per connection). */
  readonly makeDecoder: () => Decoder<In>
}

/**
 * Default largest frame: 16 MiB.
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 *
 * Framing.DEFAULT_MAX_FRAME_BYTES // 16777216
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024

const tooLarge = (size: number, max: number) =>
  new FrameError({ reason: "FrameTooLarge", message: `frame of ${size} bytes exceeds maxFrameBytes ${max}`, size, max })

/**
 * Accumulates chunks without copying until a consumer needs contiguous bytes.
 * @internal
 */
class ChunkAccumulator {
  private chunks: Array<Uint8Array> = []
  size = 0
  push(chunk: Uint8Array) {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.size += chunk.length
  }
  /** The first `n` bytes as one array (copying only when they span chunks), consumed. */
  take(n: number): Uint8Array {
    const first = this.chunks[0]!
    if (first.length >= n) {
      const out = first.subarray(0, n)
      if (first.length === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
      this.size -= n
      return out
    }
    const out = new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const c = this.chunks[0]!
      const need = n - filled
      if (c.length <= need) {
        out.set(c, filled)
        filled += c.length
        this.chunks.shift()
      } else {
        out.set(c.subarray(0, need), filled)
        this.chunks[0] = c.subarray(need)
        filled += need
      }
    }
    this.size -= n
    return out
  }
  /** Reads a big-endian uint32 at the front without consuming it. */
  peekUint32(): number {
    const first = this.chunks[0]!
    if (first.length >= 4) {
      return ((first[0]! << 24) >>> 0) + (first[1]! << 16) + (first[2]! << 8) + first[3]!
    }
    let v = 0
    let i = 0
    for (const c of this.chunks) {
      for (let j = 0; j < c.length && i < 4; j++, i++) v = v * 256 + c[j]!
      if (i === 4) break
    }
    return v
  }
  /** Index of `byte` counting from the front, or -1. */
  indexOf(byte: number, from: number): number {
    let base = 0
    for (const c of this.chunks) {
      if (from < base + c.length) {
        const idx = c.indexOf(byte, Math.max(0, from - base))
        if (idx >= 0) return base + idx
      }
      base += c.length
    }
    return -1
  }
  skip(n: number) {
    this.take(n)
  }
}

/**
 * 4-byte big-endian length prefix followed by the payload.
 *
 * @example
 * ```ts
 * import { Connection, Framing } from "effect-tether"
 *
 * const options: Connection.Options = { codec: Framing.lengthPrefixed({ maxFrameBytes: 1024 * 1024 }) }
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const lengthPrefixed = (options?: { readonly maxFrameBytes?: number | undefined }): Codec => {
  const max = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
  // a codec holds no state (each decoder has its own): one instance with the default bound serves every
  // connection that names no codec, instead of a codec object and six closures per connection
  if (max === DEFAULT_MAX_FRAME_BYTES) return defaultLengthPrefixed ??= makeLengthPrefixed(max)
  return makeLengthPrefixed(max)
}

let defaultLengthPrefixed: Codec | undefined

const makeLengthPrefixed = (max: number): Codec => {
  return {
    name: "length-prefixed",
    maxFrameBytes: max,
    check: (payload) => (payload.length > max ? tooLarge(payload.length, max) : undefined),
    encodedLength: (payload) => payload.length + 4,
    encodeInto: (payload, target, offset) => {
      const n = payload.length
      target[offset] = n >>> 24
      target[offset + 1] = (n >>> 16) & 0xff
      target[offset + 2] = (n >>> 8) & 0xff
      target[offset + 3] = n & 0xff
      target.set(payload, offset + 4)
      return offset + 4 + n
    },
    encodeChunks: (payload) => {
      const header = new Uint8Array(4)
      new DataView(header.buffer).setUint32(0, payload.length)
      return [header, payload]
    },
    makeDecoder: () => {
      const acc = new ChunkAccumulator()
      return {
        buffered: () => acc.size,
        decode: (chunk, out) => {
          acc.push(chunk)
          while (acc.size >= 4) {
            const len = acc.peekUint32()
            if (len > max) return tooLarge(len, max)
            if (acc.size < len + 4) break
            acc.skip(4)
            out.push(len === 0 ? new Uint8Array(0) : acc.take(len))
          }
          return undefined
        }
      }
    }
  }
}

/**
 * Newline-delimited frames (`\n`; a trailing `\r` is stripped on decode, so
 * CRLF lines are accepted). A payload that contains a newline, or ends with
 * `\r` (it would arrive without it), cannot be encoded: `check` (and so
 * `send`) refuses it with a `MalformedFrame` {@link FrameError}. A `\r`
 * elsewhere in the payload is kept.
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 *
 * const codec = Framing.newline({ maxFrameBytes: 64 * 1024 })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const newline = (options?: { readonly maxFrameBytes?: number | undefined }): Codec => {
  const max = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
  const NL = 0x0a
  const CR = 0x0d
  return {
    name: "newline",
    maxFrameBytes: max,
    check: (payload) =>
      payload.length > max
        ? tooLarge(payload.length, max)
        : payload.indexOf(NL) >= 0
        ? new FrameError({ reason: "MalformedFrame", message: "payload contains the newline delimiter" })
        : payload.length > 0 && payload[payload.length - 1] === CR
        ? new FrameError({
          reason: "MalformedFrame",
          message: "payload ends with \\r, which the decoder would strip as part of a CRLF delimiter"
        })
        : undefined,
    encodedLength: (payload) => payload.length + 1,
    encodeInto: (payload, target, offset) => {
      target.set(payload, offset)
      target[offset + payload.length] = NL
      return offset + payload.length + 1
    },
    encodeChunks: (payload) => [payload, NEWLINE],
    makeDecoder: () => {
      const acc = new ChunkAccumulator()
      let scanned = 0
      return {
        buffered: () => acc.size,
        decode: (chunk, out) => {
          acc.push(chunk)
          for (;;) {
            const idx = acc.indexOf(NL, scanned)
            if (idx < 0) {
              scanned = acc.size
              if (acc.size > max) return tooLarge(acc.size, max)
              return undefined
            }
            if (idx > max) return tooLarge(idx, max)
            let line = acc.take(idx)
            acc.skip(1)
            scanned = 0
            if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1)
            out.push(line)
          }
        }
      }
    }
  }
}

const NEWLINE = new Uint8Array([0x0a])

/**
 * No framing: every inbound chunk is a frame (split at `maxFrameBytes`), every
 * outbound frame is written as is.
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 *
 * const codec = Framing.raw({ maxFrameBytes: 64 * 1024 })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const raw = (options?: { readonly maxFrameBytes?: number | undefined }): Codec => {
  const max = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
  return {
    name: "raw",
    maxFrameBytes: max,
    check: (payload) => (payload.length > max ? tooLarge(payload.length, max) : undefined),
    encodedLength: (payload) => payload.length,
    encodeInto: (payload, target, offset) => {
      target.set(payload, offset)
      return offset + payload.length
    },
    encodeChunks: (payload) => [payload],
    makeDecoder: () => ({
      buffered: () => 0,
      decode: (chunk, out) => {
        for (let i = 0; i < chunk.length; i += max) out.push(chunk.subarray(i, Math.min(chunk.length, i + max)))
        return undefined
      }
    })
  }
}

/**
 * Encodes one frame into a fresh buffer (for broadcast: encode once, share the
 * bytes with every connection through `Connection.sendEncoded`).
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 *
 * const wire = Framing.encode(Framing.lengthPrefixed(), new Uint8Array([1, 2, 3]))
 * // wire: Uint8Array [0, 0, 0, 3, 1, 2, 3]
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const encode = (codec: Codec, payload: Uint8Array): Uint8Array => {
  const out = Buffer.allocUnsafe(codec.encodedLength(payload))
  codec.encodeInto(payload, out, 0)
  return out
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder()

/**
 * UTF-8 helpers for text protocols.
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 *
 * Framing.text(Framing.utf8("héllo")) // "héllo"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const utf8 = (s: string): Uint8Array => textEncoder.encode(s)

/**
 * Decodes a UTF-8 frame to a string.
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 *
 * Framing.text(new Uint8Array([104, 105])) // "hi"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const text = (frame: Uint8Array): string => textDecoder.decode(frame)
