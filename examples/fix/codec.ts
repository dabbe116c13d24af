/**
 * FIX 4.4 tag=value framing as a tether `Framing.Codec`, and small helpers to
 * build and read messages.
 *
 * A frame's payload is the message **body**: every field after BodyLength (9)
 * and before CheckSum (10), each terminated by SOH, starting with MsgType (35).
 * The codec writes BeginString (8), BodyLength (9) and CheckSum (10) around it
 * and validates all three on decode.
 *
 * @since 0.1.0
 */
import { Framing } from "effect-tether"

/**
 * The field separator, SOH (0x01).
 *
 * @example
 * ```ts
 * import { SOH } from "./codec.js"
 *
 * const body = ["35=0", "34=2", ""].join(SOH) // "35=0\x0134=2\x01"
 * ```
 */
export const SOH = "\x01"
const SOH_BYTE = 0x01

/**
 * One field: tag and value.
 *
 * @example
 * ```ts
 * import type { Field } from "./codec.js"
 *
 * const f: Field = [35, "0"]
 * ```
 */
export type Field = readonly [tag: number, value: string]

/**
 * A parsed message: its MsgType and every body field in wire order (35 included).
 *
 * @example
 * ```ts
 * import { parseBody } from "./codec.js"
 *
 * const m = parseBody("35=0\x0134=2\x01")
 * m.type // "0"
 * ```
 */
export interface Message {
  readonly type: string
  readonly fields: ReadonlyArray<Field>
}

/**
 * Options of {@link fixCodec}.
 *
 * @example
 * ```ts
 * import type { CodecOptions } from "./codec.js"
 *
 * const o: CodecOptions = { beginString: "FIX.4.4", maxFrameBytes: 64 * 1024, malformed: "deliver" }
 * ```
 */
export interface CodecOptions {
  /** Expected BeginString (default `FIX.4.4`). */
  readonly beginString?: string | undefined
  /** Largest whole message on the wire, header and trailer included (default 1 MiB). */
  readonly maxFrameBytes?: number | undefined
  /**
   * What a decode error does. `"fail"` (default): the decoder returns a
   * `FrameError` and the connection closes with `MalformedFrame` /
   * `FrameTooLarge`. `"deliver"`: the decoder hands one {@link isMalformedMarker}
   * frame to the consumer and discards every later byte, so a session can still
   * send a Logout before it closes.
   */
  readonly malformed?: "fail" | "deliver" | undefined
}

/**
 * Default `maxFrameBytes` of {@link fixCodec}: 1 MiB.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_FRAME_BYTES } from "./codec.js"
 *
 * DEFAULT_MAX_FRAME_BYTES // 1048576
 * ```
 */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024

const enc = new TextEncoder()
const dec = new TextDecoder()

/**
 * The FIX CheckSum of some bytes: their sum modulo 256, as three digits.
 *
 * @example
 * ```ts
 * import { checksum } from "./codec.js"
 *
 * checksum(new TextEncoder().encode("8=FIX.4.4\x019=5\x0135=0\x01")) // "163"
 * ```
 */
export const checksum = (bytes: Uint8Array, from = 0, to = bytes.length): string => {
  let sum = 0
  for (let i = from; i < to; i++) sum += bytes[i]!
  return String(sum % 256).padStart(3, "0")
}

const MARKER = 0x00

/**
 * Whether a decoded frame is the marker a `malformed: "deliver"` codec emits
 * instead of failing (a real body always starts with `35=`).
 *
 * @example
 * ```ts
 * import { isMalformedMarker } from "./codec.js"
 *
 * isMalformedMarker(new Uint8Array([0])) // true
 * ```
 */
export const isMalformedMarker = (frame: Uint8Array): boolean => frame.length > 0 && frame[0] === MARKER

/**
 * The error carried by a {@link isMalformedMarker} frame.
 *
 * @example
 * ```ts
 * import { malformedError } from "./codec.js"
 *
 * const e = malformedError(new Uint8Array([0, 77, 124, 120])) // reason "MalformedFrame", message "x"
 * ```
 */
export const malformedError = (frame: Uint8Array): Framing.FrameError => {
  const text = dec.decode(frame.subarray(1))
  const sep = text.indexOf("|")
  const kind = text.slice(0, sep)
  return new Framing.FrameError({
    reason: kind === "T" ? "FrameTooLarge" : "MalformedFrame",
    message: text.slice(sep + 1)
  })
}

const markerFrame = (err: Framing.FrameError): Uint8Array =>
  enc.encode(`\x00${err.reason === "FrameTooLarge" ? "T" : "M"}|${err.message}`)

const malformed = (message: string) => new Framing.FrameError({ reason: "MalformedFrame", message })

/**
 * The FIX tag=value codec: payloads are message bodies (see the module
 * comment); BeginString, BodyLength and CheckSum are added on encode and
 * checked on decode. Garbage, a wrong BeginString, a bad BodyLength or a
 * CheckSum mismatch is a `MalformedFrame`; a message above `maxFrameBytes` is
 * `FrameTooLarge` (detected from BodyLength, before the body arrives).
 *
 * @example
 * ```ts
 * import { Connection } from "effect-tether"
 * import { fixCodec } from "./codec.js"
 *
 * const options: Connection.Options = { codec: fixCodec({ maxFrameBytes: 64 * 1024 }) }
 * ```
 */
export const fixCodec = (options?: CodecOptions): Framing.Codec => {
  const beginString = options?.beginString ?? "FIX.4.4"
  const max = options?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
  const deliverErrors = options?.malformed === "deliver"
  const prefix = enc.encode(`8=${beginString}${SOH}9=`)
  const headerOf = (bodyLength: number) => enc.encode(`8=${beginString}${SOH}9=${bodyLength}${SOH}`)
  const encodedLength = (payload: Uint8Array) => prefix.length + String(payload.length).length + 1 + payload.length + 7
  const check = (payload: Uint8Array): Framing.FrameError | undefined => {
    const size = encodedLength(payload)
    if (size > max) {
      return new Framing.FrameError({ reason: "FrameTooLarge", message: `FIX message of ${size} bytes exceeds ${max}`, size, max })
    }
    if (payload.length < 5 || payload[0] !== 0x33 || payload[1] !== 0x35 || payload[2] !== 0x3d) {
      return malformed("a FIX body must start with 35=")
    }
    if (payload[payload.length - 1] !== SOH_BYTE) return malformed("a FIX body must end with SOH")
    return undefined
  }
  const encodeInto = (payload: Uint8Array, target: Uint8Array, offset: number): number => {
    const header = headerOf(payload.length)
    target.set(header, offset)
    target.set(payload, offset + header.length)
    const end = offset + header.length + payload.length
    const trailer = enc.encode(`10=${checksum(target, offset, end)}${SOH}`)
    target.set(trailer, end)
    return end + trailer.length
  }
  return {
    name: `fix(${beginString})`,
    maxFrameBytes: max,
    check,
    encodedLength,
    encodeInto,
    encodeChunks: (payload) => {
      const out = new Uint8Array(encodedLength(payload))
      encodeInto(payload, out, 0)
      return [out]
    },
    makeDecoder: () => {
      let pending: Uint8Array = new Uint8Array(0)
      let broken = false
      const fail = (err: Framing.FrameError, out: Array<Uint8Array>): Framing.FrameError | undefined => {
        broken = true
        pending = new Uint8Array(0)
        if (!deliverErrors) return err
        out.push(markerFrame(err))
        return undefined
      }
      return {
        buffered: () => pending.length,
        decode: (chunk, out) => {
          if (broken) return undefined
          if (chunk.length > 0) {
            if (pending.length === 0) pending = chunk
            else {
              const joined = new Uint8Array(pending.length + chunk.length)
              joined.set(pending, 0)
              joined.set(chunk, pending.length)
              pending = joined
            }
          }
          let pos = 0
          while (pos < pending.length) {
            // "8=<BeginString>|9=" must match as far as we have bytes
            const avail = pending.length - pos
            const n = Math.min(avail, prefix.length)
            for (let i = 0; i < n; i++) {
              if (pending[pos + i] !== prefix[i]) {
                return fail(
                  malformed(
                    i < 2 + beginString.length + 1
                      ? `expected BeginString ${beginString} at the start of a message`
                      : "expected BodyLength (9) after BeginString"
                  ),
                  out
                )
              }
            }
            if (avail <= prefix.length) break
            // BodyLength digits up to SOH
            let i = pos + prefix.length
            let bodyLength = 0
            let digits = 0
            while (i < pending.length && pending[i] !== SOH_BYTE) {
              const c = pending[i]!
              if (c < 0x30 || c > 0x39 || digits >= 9) return fail(malformed("BodyLength (9) is not a number"), out)
              bodyLength = bodyLength * 10 + (c - 0x30)
              digits++
              i++
            }
            if (i >= pending.length) break
            if (digits === 0) return fail(malformed("BodyLength (9) is empty"), out)
            const bodyStart = i + 1
            const headerLength = bodyStart - pos
            const total = headerLength + bodyLength + 7
            if (total > max) {
              return fail(
                new Framing.FrameError({
                  reason: "FrameTooLarge",
                  message: `FIX message of ${total} bytes exceeds ${max}`,
                  size: total,
                  max
                }),
                out
              )
            }
            if (pending.length - pos < total) break
            const bodyEnd = bodyStart + bodyLength
            // trailer: "10=" three digits SOH, exactly at BodyLength
            if (
              pending[bodyEnd] !== 0x31 || pending[bodyEnd + 1] !== 0x30 || pending[bodyEnd + 2] !== 0x3d ||
              pending[bodyEnd + 6] !== SOH_BYTE || (bodyLength > 0 && pending[bodyEnd - 1] !== SOH_BYTE)
            ) {
              return fail(malformed("BodyLength (9) does not end where CheckSum (10) starts"), out)
            }
            const got = dec.decode(pending.subarray(bodyEnd + 3, bodyEnd + 6))
            const want = checksum(pending, pos, bodyEnd)
            if (got !== want) return fail(malformed(`CheckSum (10) mismatch: got ${got}, computed ${want}`), out)
            out.push(pending.slice(bodyStart, bodyEnd))
            pos += total
          }
          pending = pos === 0 ? pending : pending.slice(pos)
          return undefined
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// messages

/**
 * Encodes fields as a body payload (`tag=value` SOH ...).
 *
 * @example
 * ```ts
 * import { encodeBody } from "./codec.js"
 *
 * encodeBody([[35, "0"], [34, "2"]]) // bytes of "35=0\x0134=2\x01"
 * ```
 */
export const encodeBody = (fields: ReadonlyArray<Field>): Uint8Array => {
  let s = ""
  for (const [tag, value] of fields) s += `${tag}=${value}${SOH}`
  return enc.encode(s)
}

/**
 * Parses a body payload (bytes or text) into a {@link Message}. Throws a
 * `FrameError` (MalformedFrame) when a field has no `=`, a tag is not a
 * number, or the first field is not MsgType (35).
 *
 * @example
 * ```ts
 * import { parseBody } from "./codec.js"
 *
 * parseBody("35=1\x01112=ping\x01").fields // [[35, "1"], [112, "ping"]]
 * ```
 */
export const parseBody = (body: Uint8Array | string): Message => {
  const text = typeof body === "string" ? body : dec.decode(body)
  const fields: Array<Field> = []
  let start = 0
  while (start < text.length) {
    let end = text.indexOf(SOH, start)
    if (end < 0) end = text.length
    const eq = text.indexOf("=", start)
    if (eq < 0 || eq >= end) throw malformed(`field without '=' at offset ${start}`)
    const tag = Number(text.slice(start, eq))
    if (!Number.isInteger(tag) || tag <= 0) throw malformed(`bad tag '${text.slice(start, eq)}'`)
    fields.push([tag, text.slice(eq + 1, end)])
    start = end + 1
  }
  const first = fields[0]
  if (first === undefined || first[0] !== 35) throw malformed("the first field must be MsgType (35)")
  return { type: first[1], fields }
}

/**
 * The first value of `tag`, if present.
 *
 * @example
 * ```ts
 * import { get, parseBody } from "./codec.js"
 *
 * get(parseBody("35=0\x01112=x\x01"), 112) // "x"
 * ```
 */
export const get = (message: Message, tag: number): string | undefined => {
  for (const [t, v] of message.fields) if (t === tag) return v
  return undefined
}

/**
 * The first value of `tag` as an integer, if present and numeric.
 *
 * @example
 * ```ts
 * import { getInt, parseBody } from "./codec.js"
 *
 * getInt(parseBody("35=0\x0134=7\x01"), 34) // 7
 * ```
 */
export const getInt = (message: Message, tag: number): number | undefined => {
  const v = get(message, tag)
  if (v === undefined || !/^-?\d+$/.test(v)) return undefined
  return Number(v)
}

/**
 * A message as readable text, SOH shown as `|`.
 *
 * @example
 * ```ts
 * import { show, parseBody } from "./codec.js"
 *
 * show(parseBody("35=0\x0134=7\x01")) // "35=0|34=7|"
 * ```
 */
export const show = (message: Message): string => message.fields.map(([t, v]) => `${t}=${v}|`).join("")

/**
 * A whole wire message (header, body, trailer) as bytes, for raw-socket
 * peers and tests. `bodyFields` start with 35.
 *
 * @example
 * ```ts
 * import { wire } from "./codec.js"
 *
 * const bytes = wire([[35, "0"], [49, "A"], [56, "B"], [34, "1"], [52, "20240101-00:00:00.000"]])
 * ```
 */
export const wire = (bodyFields: ReadonlyArray<Field>, beginString = "FIX.4.4"): Uint8Array =>
  Framing.encode(fixCodec({ beginString }), encodeBody(bodyFields))

/**
 * FIX UTCTimestamp (`YYYYMMDD-HH:MM:SS.sss`) of epoch millis.
 *
 * @example
 * ```ts
 * import { utcTimestamp } from "./codec.js"
 *
 * utcTimestamp(0) // "19700101-00:00:00.000"
 * ```
 */
export const utcTimestamp = (millis: number): string => {
  const d = new Date(millis)
  const p = (n: number, w = 2) => String(n).padStart(w, "0")
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}:${
    p(d.getUTCMinutes())
  }:${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`
}

/**
 * Message types used by the session layer.
 *
 * @example
 * ```ts
 * import { MsgType } from "./codec.js"
 *
 * MsgType.Logon // "A"
 * ```
 */
export const MsgType = {
  Heartbeat: "0",
  TestRequest: "1",
  ResendRequest: "2",
  Reject: "3",
  SequenceReset: "4",
  Logout: "5",
  Logon: "A"
} as const

/**
 * Tag numbers used by the session layer.
 *
 * @example
 * ```ts
 * import { Tag } from "./codec.js"
 *
 * Tag.MsgSeqNum // 34
 * ```
 */
export const Tag = {
  BeginSeqNo: 7,
  EndSeqNo: 16,
  MsgSeqNum: 34,
  MsgType: 35,
  NewSeqNo: 36,
  PossDupFlag: 43,
  SenderCompID: 49,
  SendingTime: 52,
  TargetCompID: 56,
  Text: 58,
  EncryptMethod: 98,
  HeartBtInt: 108,
  TestReqID: 112,
  OrigSendingTime: 122,
  GapFillFlag: 123,
  ResetSeqNumFlag: 141
} as const
