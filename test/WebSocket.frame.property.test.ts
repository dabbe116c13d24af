/**
 * Property: the WebSocket frame decoder (src/internal/wsFrame.ts) gives the same messages and control
 * frames, in the same order and at the same moment, whatever the chunk boundaries of the byte stream.
 *
 * Streams are sequences of frames — text and binary messages, whole or fragmented into continuation
 * frames with PING/PONG interleaved between the fragments, payload lengths around the length-encoding
 * edges (125/126, 65535/65536), masked (to a server) or unmasked (to a client), optionally ended by a
 * Close frame followed by bytes that must not be read. Each frame is written by a small reference
 * encoder below (so the test does not trust the code under test), or, in half the runs, whole messages
 * and control frames by the library's own encoder (checked byte for byte against the reference one).
 * The stream is cut at arbitrary points: 1-byte chunks, random cuts, and cuts at every offset inside
 * frame headers (the first two bytes, the extended length, the mask key) — then fed chunk by chunk.
 *
 * Checked after every chunk: exactly the frames complete so far have produced their message or control
 * event (none late, none early), and `buffered()` is the bytes of the incomplete frame; at the end, the
 * decoded messages equal the input (bytes still intact: nothing decoded later overwrote them).
 * The failures, at the same random boundaries: invalid UTF-8 (also split across fragments) → 1007 at
 * the fragment where the bytes stop being UTF-8; a message above `maxPayload` → 1009 as soon as the
 * header of the frame crossing the limit is complete (and a 64-bit length past 2^53 → 1009); a reserved
 * opcode, an RSV bit without an extension, a frame masked the wrong way for this side, a fragmented or
 * oversized control frame, a continuation without a message or a new message inside a fragmented one
 * → 1002 as soon as that frame's header is complete. After a failure nothing more is decoded.
 *
 * The same streams, fewer of them, also go through the seam (wsFramed.ts under a Connection, over an
 * in-memory transport whose peer writes the chunks): the connection's messages, one PONG per PING with
 * its payload, and the peer's Close code and reason in `PeerClosed`, answered by our Close.
 *
 * The codec and the seam are internal (not part of the public API): the test imports them directly; the
 * codec is a pure function of bytes, and thousands of boundary cases run in a few seconds that way.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, FastCheck as fc, Fiber, Stream } from "effect"
import * as Crypto from "node:crypto"
import { Connection, DisconnectReason, Transport } from "effect-tether"
import { FrameError } from "effect-tether/Framing"
import type * as WS from "effect-tether/WebSocket"
import * as Frame from "../src/internal/wsFrame.js"
import * as WsFramed from "../src/internal/wsFramed.js"

// ---- deterministic filling (payloads are drawn as (length, seed): 64 KiB of random bytes per frame
// through fast-check would dominate the run time) ----
const prng = (seed: number) => {
  let s = seed >>> 0
  return (): number => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
}
type Rng = ReturnType<typeof prng>
const fillBytes = (n: number, rng: Rng): Uint8Array => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = rng() & 0xff
  return out
}
/** Valid UTF-8 of exactly `n` bytes, mixing 1-, 2-, 3- and 4-byte characters. */
const fillUtf8 = (n: number, rng: Rng): Uint8Array => {
  const cps: Array<number> = []
  let left = n
  while (left > 0) {
    const w = 1 + (rng() % Math.min(4, left))
    const r = rng()
    let cp: number
    if (w === 1) cp = 0x20 + (r % 0x5f)
    else if (w === 2) cp = 0x80 + (r % 0x780)
    else if (w === 3) {
      cp = 0x800 + (r % (0x10000 - 0x800 - 0x800))
      if (cp >= 0xd800) cp += 0x800 // no surrogates
    } else cp = 0x10000 + (r % 0x100000)
    cps.push(cp)
    left -= w
  }
  let s = ""
  for (let i = 0; i < cps.length; i += 4096) s += String.fromCodePoint(...cps.slice(i, i + 4096))
  const out = Buffer.from(s, "utf8")
  if (out.length !== n) throw new Error(`fillUtf8: ${out.length} bytes for ${n}`)
  return out
}

// ---- the reference side: encoder and UTF-8 validator, written from RFC 6455 §5.2 / WHATWG Encoding ----
interface WireFrame {
  readonly fin: boolean
  readonly rsv: number // bits 0x70 of the first byte
  readonly opcode: number
  readonly payload: Uint8Array
  readonly masked: boolean
  /** the event the decoder reports when this frame is complete (undefined: none, e.g. a non-final fragment) */
  readonly event: string | undefined
  /** how the library encodes this frame, when it has an encoder for it (whole messages, control frames) */
  readonly library?: (() => Uint8Array) | undefined
  /** bytes that are not a frame the reference encoder can write (a 64-bit length past 2^53) */
  readonly raw?: { readonly bytes: Uint8Array; readonly header: number } | undefined
}
const headerLength = (n: number, masked: boolean) => (n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0)
const refEncode = (f: WireFrame, key: Uint8Array | undefined): Uint8Array => {
  const n = f.payload.length
  const ext = n < 126 ? 0 : n < 65536 ? 2 : 8
  const out = new Uint8Array(2 + ext + (key ? 4 : 0) + n)
  out[0] = (f.fin ? 0x80 : 0) | f.rsv | f.opcode
  out[1] = (key ? 0x80 : 0) | (ext === 0 ? n : ext === 2 ? 126 : 127)
  for (let i = 0; i < ext; i++) out[2 + i] = Math.floor(n / 256 ** (ext - 1 - i)) % 256
  let at = 2 + ext
  if (key) {
    out.set(key, at)
    at += 4
  }
  for (let i = 0; i < n; i++) out[at + i] = key ? f.payload[i]! ^ key[i % 4]! : f.payload[i]!
  return out
}
/** A Close frame's payload: the code (big-endian) and the UTF-8 reason (RFC 6455 §5.5.1). */
const refClosePayload = (code: number, reason: string): Uint8Array => {
  const r = Buffer.from(reason, "utf8")
  return Buffer.concat([Buffer.from([code >> 8, code & 0xff]), r])
}
/**
 * The index of the first byte at which `b` stops being a prefix of valid UTF-8 (b.length when it is a
 * valid but incomplete prefix), undefined when it is valid UTF-8.
 */
const utf8ErrorAt = (b: Uint8Array): number | undefined => {
  let need = 0
  let lower = 0x80
  let upper = 0xbf
  for (let i = 0; i < b.length; i++) {
    const x = b[i]!
    if (need === 0) {
      if (x <= 0x7f) continue
      if (x >= 0xc2 && x <= 0xdf) need = 1
      else if (x >= 0xe0 && x <= 0xef) {
        if (x === 0xe0) lower = 0xa0
        if (x === 0xed) upper = 0x9f
        need = 2
      } else if (x >= 0xf0 && x <= 0xf4) {
        if (x === 0xf0) lower = 0x90
        if (x === 0xf4) upper = 0x8f
        need = 3
      } else return i
      continue
    }
    if (x < lower || x > upper) return i
    lower = 0x80
    upper = 0xbf
    need--
  }
  return need > 0 ? b.length : undefined
}

const digest = (b: Uint8Array) =>
  b.length <= 48 ? Buffer.from(b).toString("hex") : `${b.length}:${Crypto.createHash("sha1").update(b).digest("hex")}`
const textEvent = (bytes: Uint8Array) => `text ${digest(bytes)}`
const binaryEvent = (bytes: Uint8Array) => `binary ${digest(bytes)}`
const messageEvent = (m: WS.Message) =>
  m._tag === "Text" ? textEvent(Buffer.from(m.text, "utf8")) : binaryEvent(m.data)

// ---- scenarios ----
const lengthArb = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 12 }) },
  { weight: 6, arbitrary: fc.integer({ min: 122, max: 130 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 1500 }) },
  { weight: 1, arbitrary: fc.constantFrom(65534, 65535, 65536, 65537) }
)
const controlLengthArb = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 120, max: 125 }))
const controlArb = fc.record({ opcode: fc.constantFrom(Frame.OP_PING, Frame.OP_PONG), length: controlLengthArb })
type ControlSpec = typeof controlArb extends fc.Arbitrary<infer A> ? A : never
const messageArb = (lengths: fc.Arbitrary<number>) =>
  fc.record({
    text: fc.boolean(),
    fragments: fc.array(lengths, { minLength: 1, maxLength: 4 }),
    // control frames before fragment i (i ≥ 1: between fragments)
    between: fc.array(fc.array(controlArb, { maxLength: 2 }), { maxLength: 4 })
  })
type MessageSpec = typeof messageArb extends (l: never) => fc.Arbitrary<infer A> ? A : never
const itemArb = (lengths: fc.Arbitrary<number>) =>
  fc.oneof(
    { weight: 3, arbitrary: messageArb(lengths).map((m) => ({ _tag: "message" as const, ...m })) },
    { weight: 1, arbitrary: controlArb.map((c) => ({ _tag: "control" as const, ...c })) }
  )
type ItemSpec = typeof itemArb extends (l: never) => fc.Arbitrary<infer A> ? A : never
const closeArb = fc.option(
  fc.record({
    code: fc.option(fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4000, 4999), { nil: undefined }),
    reason: fc.integer({ min: 0, max: 123 })
  }),
  { nil: undefined }
)
const splitArb = fc.record({
  oneByte: fc.boolean(),
  fractions: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 30 }),
  // cut inside the header of frame `frame` (mod the frame count), `at` bytes into it
  inHeaders: fc.array(fc.record({ frame: fc.nat(), at: fc.integer({ min: 1, max: 14 }) }), { maxLength: 24 }),
  // chunks handed over as Buffers or plain Uint8Arrays, at an offset in a larger ArrayBuffer
  views: fc.nat()
})
type SplitSpec = typeof splitArb extends fc.Arbitrary<infer A> ? A : never

/** Builds frames; `masked` is how this stream's peer sends (a client masks, a server does not). */
const builder = (masked: boolean, library: boolean, rng: Rng) => {
  // the library's encoder of the sending side
  const ignore = () => {}
  const peer = Frame.makeCodec(
    { isServer: !masked, maxPayload: 1 << 24, deflate: undefined },
    { ping: ignore, pong: ignore, close: ignore, protocolError: ignore }
  )
  const frames: Array<WireFrame> = []
  const control = (c: ControlSpec) => {
    const payload = fillBytes(c.length, rng)
    frames.push({
      fin: true,
      rsv: 0,
      opcode: c.opcode,
      payload,
      masked,
      event: `${c.opcode === Frame.OP_PING ? "ping" : "pong"} ${digest(payload)}`,
      library: library ? () => Frame.controlFrame(c.opcode, payload, masked) : undefined
    })
  }
  const message = (m: MessageSpec, options?: { open?: boolean; bytes?: Uint8Array; text?: boolean }) => {
    const text = options?.text ?? m.text
    const total = m.fragments.reduce((a, b) => a + b, 0)
    const bytes = options?.bytes ?? (text ? fillUtf8(total, rng) : fillBytes(total, rng))
    const open = options?.open === true
    let at = 0
    m.fragments.forEach((len, i) => {
      if (i > 0) for (const c of m.between[i] ?? []) control(c)
      const payload = bytes.subarray(at, at + len)
      at += len
      const fin = !open && i === m.fragments.length - 1
      const whole = fin && i === 0
      const event = fin ? (text ? textEvent(bytes) : binaryEvent(bytes)) : undefined
      frames.push({
        fin,
        rsv: 0,
        opcode: i === 0 ? (text ? Frame.OP_TEXT : Frame.OP_BINARY) : Frame.OP_CONTINUATION,
        payload,
        masked,
        event,
        library: library && whole
          ? () => {
            const msg = text ? Frame.textMessage(Buffer.from(payload).toString("utf8")) : Frame.binaryMessage(payload)
            return Buffer.concat(peer.encodeChunks(msg))
          }
          : undefined
      })
    })
  }
  const item = (it: ItemSpec) => (it._tag === "control" ? control(it) : message(it))
  const close = (c: NonNullable<typeof closeArb extends fc.Arbitrary<infer A> ? A : never>) => {
    const reason = Buffer.from(fillUtf8(c.reason, rng)).toString("utf8")
    const payload = c.code === undefined ? new Uint8Array(0) : refClosePayload(c.code, reason)
    frames.push({
      fin: true,
      rsv: 0,
      opcode: Frame.OP_CLOSE,
      payload,
      masked,
      event: `close ${c.code ?? 1005} ${c.code === undefined ? "" : reason}`,
      library: library ? () => Frame.controlFrame(Frame.OP_CLOSE, payload, masked) : undefined
    })
  }
  return { frames, control, message, item, close }
}

interface Encoded {
  readonly bytes: Buffer
  /** per frame: where it starts, where its header ends, where it ends */
  readonly spans: ReadonlyArray<{ readonly start: number; readonly header: number; readonly end: number }>
}
const encode = (frames: ReadonlyArray<WireFrame>, rng: Rng): Encoded => {
  const parts: Array<Uint8Array> = []
  const spans: Array<{ start: number; header: number; end: number }> = []
  let at = 0
  for (const f of frames) {
    let bytes: Uint8Array
    let header: number
    if (f.raw !== undefined) {
      bytes = f.raw.bytes
      header = f.raw.header
    } else {
      header = headerLength(f.payload.length, f.masked)
      if (f.library !== undefined) {
        bytes = f.library()
        // the library's encoder agrees with the reference one (given the mask key it picked)
        const key = f.masked ? bytes.subarray(header - 4, header) : undefined
        expect(Buffer.from(bytes).equals(Buffer.from(refEncode(f, key)))).toBe(true)
      } else bytes = refEncode(f, f.masked ? fillBytes(4, rng) : undefined)
    }
    parts.push(bytes)
    spans.push({ start: at, header: at + header, end: at + bytes.length })
    at += bytes.length
  }
  return { bytes: Buffer.concat(parts), spans }
}

const cutPoints = (e: Encoded, split: SplitSpec): Array<number> => {
  const n = e.bytes.length
  if (split.oneByte && n <= 4096) return Array.from({ length: n + 1 }, (_, i) => i)
  const points = new Set<number>([0, n])
  for (const f of split.fractions) points.add(Math.floor(f * n))
  if (e.spans.length > 0) {
    for (const c of split.inHeaders) {
      const s = e.spans[c.frame % e.spans.length]!
      points.add(Math.min(s.start + c.at, s.end))
    }
  }
  return [...points].filter((p) => p >= 0 && p <= n).sort((a, b) => a - b)
}

interface Run {
  readonly events: Array<string>
  /** per decode call: bytes fed so far, events so far, buffered(), the result */
  readonly calls: Array<{ fed: number; events: number; buffered: number; result: FrameError | undefined }>
  readonly protocolErrors: Array<number>
}
const run = (e: Encoded, split: SplitSpec, isServer: boolean, maxPayload: number): Run => {
  const log: Array<string | WS.Message> = []
  const out: Array<WS.Message> = []
  const flush = () => {
    for (const m of out) log.push(m)
    out.length = 0
  }
  const protocolErrors: Array<number> = []
  const codec = Frame.makeCodec({ isServer, maxPayload, deflate: undefined }, {
    // control payloads are read now (the sink may be handed a view of the chunk); messages at the end
    ping: (p) => {
      flush()
      log.push(`ping ${digest(p)}`)
    },
    pong: (p) => {
      flush()
      log.push(`pong ${digest(p)}`)
    },
    close: (code, reason) => {
      flush()
      log.push(`close ${code} ${reason}`)
    },
    protocolError: (status) => {
      flush()
      protocolErrors.push(status)
    }
  })
  const decoder = codec.makeDecoder()
  const points = cutPoints(e, split)
  const views = prng(split.views)
  const calls: Run["calls"] = []
  for (let i = 1; i < points.length; i++) {
    const from = points[i - 1]!
    const to = points[i]!
    // a private copy per chunk (the decoder unmasks in place), at an offset in its ArrayBuffer
    const offset = views() % 3
    const ab = new ArrayBuffer(to - from + offset + 1)
    const view = new Uint8Array(ab, offset, to - from)
    view.set(e.bytes.subarray(from, to))
    const chunk = views() % 2 === 0 ? view : Buffer.from(ab, offset, to - from)
    const result = decoder.decode(chunk, out)
    flush()
    calls.push({ fed: to, events: log.length, buffered: decoder.buffered(), result })
  }
  return { events: log.map((x) => (typeof x === "string" ? x : messageEvent(x))), calls, protocolErrors }
}

/** Checks a run that must succeed: after every call, the events and buffered bytes of the frames complete so far. */
const expectDecoded = (frames: ReadonlyArray<WireFrame>, e: Encoded, r: Run) => {
  const expected = frames.flatMap((f) => (f.event === undefined ? [] : [f.event]))
  const closeAt = frames.findIndex((f) => f.opcode === Frame.OP_CLOSE)
  let frame = 0
  let events = 0
  // the first call that disagrees (plain comparisons: an `expect` per call would dominate the run time)
  for (const c of r.calls) {
    while (frame < frames.length && e.spans[frame]!.end <= c.fed && (closeAt < 0 || frame <= closeAt)) {
      if (frames[frame]!.event !== undefined) events++
      frame++
    }
    const closed = closeAt >= 0 && frame > closeAt
    const buffered = closed ? 0 : c.fed - (frame === 0 ? 0 : e.spans[frame - 1]!.end)
    if (c.result !== undefined || c.events !== events || c.buffered !== buffered) {
      expect({ fed: c.fed, result: c.result, events: c.events, buffered: c.buffered }).toEqual({ fed: c.fed, result: undefined, events, buffered })
    }
  }
  expect(r.events).toEqual(expected)
  expect(r.protocolErrors).toEqual([])
}

/**
 * Checks a run that must fail with `status` once `detectAt` bytes are in (and not before), having
 * reported the events of the frames before frame `failing`, and nothing after.
 */
const expectFailure = (
  frames: ReadonlyArray<WireFrame>,
  failing: number,
  detectAt: number,
  status: number,
  r: Run
) => {
  const expected = frames.slice(0, failing).flatMap((f) => (f.event === undefined ? [] : [f.event]))
  const i = r.calls.findIndex((c) => c.result !== undefined)
  const firstAtOrPast = r.calls.findIndex((c) => c.fed >= detectAt)
  expect({ failedAtCall: i, bytesIn: r.calls[i]?.fed }).toEqual({
    failedAtCall: firstAtOrPast,
    bytesIn: r.calls[firstAtOrPast]?.fed
  })
  const err = r.calls[i]!.result!
  expect(err).toBeInstanceOf(FrameError)
  expect(err.reason).toBe(status === 1009 ? "FrameTooLarge" : "MalformedFrame")
  expect(r.protocolErrors).toEqual([status])
  expect(r.events).toEqual(expected)
  // nothing decoded after the failure, nothing kept
  const after = r.calls.slice(i + 1).find((c) => c.result !== undefined || c.events !== expected.length || c.buffered !== 0)
  expect(r.calls[i]!.buffered).toBe(0)
  expect(after).toBeUndefined()
}

/** The property is not vacuous: each kind of case came up in at least 2% of the runs. */
const expectEachSeen = (seen: Record<string, number>, runs: number) => {
  for (const [k, n] of Object.entries(seen)) expect({ [k]: n >= runs / 50 }).toEqual({ [k]: true })
}

const sides = fc.boolean() // true: the decoder is a server's (frames masked), false: a client's

const NUM_RUNS = 200

describe("WebSocket frame decoder (property): chunk boundaries", () => {
  it("decodes every message and control frame, in order and on time, whatever the chunk boundaries", () => {
    const seen = { fragmented: 0, big: 0, oneByte: 0, library: 0, close: 0, splitHeaders: 0 }
    fc.assert(
      fc.property(
        sides,
        fc.boolean(),
        fc.array(itemArb(lengthArb), { minLength: 1, maxLength: 8 }),
        closeArb,
        fc.integer({ min: 0, max: 40 }),
        splitArb,
        fc.nat(),
        (isServer, library, items, close, trailing, split, seed) => {
          const rng = prng(seed)
          const b = builder(isServer, library, rng)
          for (const it of items) b.item(it)
          if (close !== undefined) b.close(close)
          const e0 = encode(b.frames, rng)
          // bytes after a Close frame are never read (here: the start of another message)
          const e: Encoded = close === undefined
            ? e0
            : { bytes: Buffer.concat([e0.bytes, Buffer.from([0x81, trailing]), fillBytes(trailing, rng)]), spans: e0.spans }
          const r = run(e, split, isServer, 1 << 24)
          expectDecoded(b.frames, e, r)
          if (b.frames.some((f) => f.opcode === Frame.OP_CONTINUATION)) seen.fragmented++
          if (b.frames.some((f) => f.payload.length >= 65536)) seen.big++
          if (r.calls.length === e.bytes.length) seen.oneByte++
          if (b.frames.some((f) => f.library !== undefined)) seen.library++
          if (close !== undefined) seen.close++
          if (r.calls.some((c) => e.spans.some((s) => c.fed > s.start && c.fed < s.header))) seen.splitHeaders++
        }
      ),
      { numRuns: NUM_RUNS }
    )
    expectEachSeen(seen, NUM_RUNS)
  })

  const badUtf8 = [
    [0x80], // a lone continuation byte
    [0xff],
    [0xc0, 0xaf], // overlong
    [0xe0, 0x80, 0xaf], // overlong
    [0xed, 0xa0, 0x80], // a surrogate
    [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
    [0xe2, 0x82, 0x41], // a character cut short, then ASCII
    [0xf0, 0x9f, 0x98] // a character cut short at the end of the message
  ] as const
  it("invalid UTF-8, also split across fragments → 1007 at the fragment where it stops being UTF-8", () => {
    const seen = { inContinuation: 0, inFirstOfSeveral: 0, wholeMessage: 0 }
    fc.assert(
      fc.property(
        sides,
        fc.array(itemArb(lengthArb), { maxLength: 4 }),
        messageArb(fc.integer({ min: 0, max: 140 })),
        fc.integer({ min: 0, max: badUtf8.length - 1 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        splitArb,
        fc.nat(),
        (isServer, before, bad, which, where, split, seed) => {
          const rng = prng(seed)
          const b = builder(isServer, false, rng)
          for (const it of before) b.item(it)
          const failingFrom = b.frames.length
          const seq = badUtf8[which]!
          const total = Math.max(bad.fragments.reduce((x, y) => x + y, 0), seq.length)
          // valid UTF-8 around the bad sequence (at the end when it is the truncated one)
          const at = which === badUtf8.length - 1 ? total - seq.length : Math.floor(where * (total - seq.length))
          const bytes = Buffer.concat([fillUtf8(at, rng), Buffer.from(seq), fillUtf8(total - seq.length - at, rng)])
          const fragments = [...bad.fragments.slice(0, -1), total - bad.fragments.slice(0, -1).reduce((x, y) => x + y, 0)]
          b.message({ ...bad, fragments }, { bytes, text: true })
          b.message({ text: false, fragments: [3], between: [] }) // never decoded
          const e = encode(b.frames, rng)
          const errorAt = utf8ErrorAt(bytes)!
          // the data frame of the bad message that holds byte `errorAt` (the last one when the text ends cut short)
          let failing = -1
          let bytesBefore = 0
          for (let i = failingFrom; i < b.frames.length - 1; i++) {
            const f = b.frames[i]!
            if (f.opcode !== Frame.OP_TEXT && f.opcode !== Frame.OP_CONTINUATION) continue
            if (errorAt < bytesBefore + f.payload.length || (f.fin && failing < 0)) {
              failing = i
              break
            }
            bytesBefore += f.payload.length
          }
          const f = b.frames[failing]!
          if (f.opcode === Frame.OP_CONTINUATION) seen.inContinuation++
          else if (f.fin) seen.wholeMessage++
          else seen.inFirstOfSeveral++
          expectFailure(b.frames, failing, e.spans[failing]!.end, 1007, run(e, split, isServer, 1 << 24))
        }
      ),
      { numRuns: NUM_RUNS }
    )
    expectEachSeen(seen, NUM_RUNS)
  })

  it("a message above maxPayload → 1009 once the header of the frame crossing it is in; a 64-bit length past 2^53 → 1009", () => {
    const seen = { inContinuation: 0, wholeMessage: 0, firstOfSeveral: 0, huge: 0 }
    fc.assert(
      fc.property(
        sides,
        fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 65530, max: 65540 })),
        fc.array(itemArb(fc.integer({ min: 0, max: 130 })), { maxLength: 4 }),
        fc.record({
          text: fc.boolean(),
          under: fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 3 }),
          over: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 70000 })),
          between: fc.array(fc.array(controlArb, { maxLength: 2 }), { maxLength: 4 }),
          // the crossing frame is the message's last (FIN) or more fragments follow
          last: fc.boolean()
        }),
        fc.boolean(),
        splitArb,
        fc.nat(),
        (isServer, max, before, big, huge, split, seed) => {
          const rng = prng(seed)
          const b = builder(isServer, false, rng)
          // what comes before fits the limit
          for (const it of before) {
            if (it._tag === "control" || it.fragments.reduce((x, y) => x + y, 0) <= max) b.item(it)
          }
          let failing: number
          if (huge) {
            // a 64-bit length of 2^53 or more
            const header = 10 + (isServer ? 4 : 0)
            const bytes = new Uint8Array(header + 8)
            bytes[0] = 0x82
            bytes[1] = (isServer ? 0x80 : 0) | 127
            bytes[2] = rng() & 0xff
            bytes[3] = 0x20 | (rng() & 0x1f) // ≥ 0x200000 in the high 32 bits
            failing = b.frames.length
            b.frames.push({ fin: true, rsv: 0, opcode: 2, payload: new Uint8Array(0), masked: isServer, event: undefined, raw: { bytes, header } })
          } else {
            const under: Array<number> = []
            let sum = 0
            for (const n of big.under) if (sum + n <= max) (under.push(n), sum += n)
            const crossing = max + big.over - sum
            const start = b.frames.length
            const fragments = big.last ? [...under, crossing] : [...under, crossing, 5]
            b.message({ text: big.text, fragments, between: big.between }, { open: !big.last })
            // the frame that carries the message past the limit: the one after the `under` data frames
            let data = 0
            failing = start
            for (let i = start; i < b.frames.length; i++) {
              const op = b.frames[i]!.opcode
              if (op === Frame.OP_TEXT || op === Frame.OP_BINARY || op === Frame.OP_CONTINUATION) {
                if (data === under.length) {
                  failing = i
                  break
                }
                data++
              }
            }
          }
          const e = encode(b.frames, rng)
          const f = b.frames[failing]!
          if (huge) seen.huge++
          else if (f.opcode === Frame.OP_CONTINUATION) seen.inContinuation++
          else if (f.fin) seen.wholeMessage++
          else seen.firstOfSeveral++
          expectFailure(b.frames, failing, e.spans[failing]!.header, 1009, run(e, split, isServer, max))
        }
      ),
      { numRuns: NUM_RUNS }
    )
    expectEachSeen(seen, NUM_RUNS)
  })

  const protocolErrorKinds = [
    "reservedOpcode",
    "rsv1WithoutExtension",
    "rsv2or3",
    "wrongMask",
    "fragmentedControl",
    "controlTooLong",
    "continuationWithoutMessage",
    "newMessageInsideFragmented"
  ] as const
  it("a reserved opcode, an RSV bit, a frame masked the wrong way, bad control or continuation frames → 1002 once the header is in", () => {
    const seen: Record<string, number> = { insideFragmented: 0, betweenMessages: 0 }
    fc.assert(
      fc.property(
        sides,
        fc.array(itemArb(fc.integer({ min: 0, max: 140 })), { maxLength: 4 }),
        fc.option(messageArb(fc.integer({ min: 0, max: 140 })), { nil: undefined }),
        fc.constantFrom(...protocolErrorKinds),
        fc.record({
          opcode: fc.constantFrom(3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf),
          rsv23: fc.constantFrom(0x20, 0x10, 0x30, 0x70),
          rsvOpcode: fc.constantFrom(Frame.OP_TEXT, Frame.OP_BINARY, Frame.OP_PING, Frame.OP_CLOSE),
          fin: fc.boolean(),
          length: lengthArb
        }),
        splitArb,
        fc.nat(),
        (isServer, before, open, kind, bad, split, seed) => {
          const rng = prng(seed)
          const b = builder(isServer, false, rng)
          for (const it of before) b.item(it)
          // inside a fragmented message or between messages (a new message needs the one, a continuation the other;
          // RSV1 on a new message is checked between messages, where nothing else is wrong with it)
          const inside = kind === "newMessageInsideFragmented" ||
            (kind !== "continuationWithoutMessage" && kind !== "rsv1WithoutExtension" && open !== undefined)
          if (inside) b.message(open ?? { text: true, fragments: [2], between: [] }, { open: true })
          const control = kind === "fragmentedControl" || kind === "controlTooLong"
          const length = kind === "controlTooLong" ? 126 + (bad.length % 100) : control ? bad.length % 126 : bad.length
          const frame: WireFrame = {
            fin: kind === "fragmentedControl" ? false : bad.fin,
            rsv: kind === "rsv1WithoutExtension" ? 0x40 : kind === "rsv2or3" ? bad.rsv23 : 0,
            opcode: kind === "reservedOpcode"
              ? bad.opcode
              : kind === "rsv2or3"
              ? bad.rsvOpcode
              : kind === "rsv1WithoutExtension"
              ? (bad.fin ? Frame.OP_TEXT : Frame.OP_BINARY)
              : control
              ? Frame.OP_PING
              : kind === "continuationWithoutMessage"
              ? Frame.OP_CONTINUATION
              : bad.fin
              ? Frame.OP_TEXT
              : Frame.OP_BINARY,
            payload: fillBytes(length, rng),
            masked: kind === "wrongMask" ? !isServer : isServer,
            event: undefined
          }
          const failing = b.frames.length
          b.frames.push(frame)
          b.control({ opcode: Frame.OP_PING, length: 1 }) // never decoded
          const e = encode(b.frames, rng)
          if (inside) seen.insideFragmented!++
          else seen.betweenMessages!++
          seen[kind] = (seen[kind] ?? 0) + 1
          expectFailure(b.frames, failing, e.spans[failing]!.header, 1002, run(e, split, isServer, 1 << 24))
        }
      ),
      { numRuns: NUM_RUNS }
    )
    expectEachSeen(seen, NUM_RUNS)
  })

  /** The frames the near end wrote (a server's unmasked, a client's masked: checked), parsed by the reference rules. */
  const parseFrames = (bytes: Uint8Array, masked: boolean) => {
    const frames: Array<{ opcode: number; payload: Buffer }> = []
    const b = Buffer.from(bytes)
    let at = 0
    while (at < b.length) {
      expect(b.length - at).toBeGreaterThanOrEqual(2)
      expect(b[at]! & 0xf0).toBe(0x80) // FIN, no RSV
      expect((b[at + 1]! & 0x80) !== 0).toBe(masked)
      let n = b[at + 1]! & 0x7f
      let o = at + 2
      if (n === 126) (n = b.readUInt16BE(o), o += 2)
      else if (n === 127) (n = Number(b.readBigUInt64BE(o)), o += 8)
      const key = masked ? b.subarray(o, o + 4) : undefined
      if (masked) o += 4
      const payload = Buffer.from(b.subarray(o, o + n))
      if (key) for (let i = 0; i < n; i++) payload[i] = payload[i]! ^ key[i % 4]!
      frames.push({ opcode: b[at]! & 0x0f, payload })
      at = o + n
    }
    expect(at).toBe(b.length)
    return frames
  }

  it.live.prop(
    "through the seam: the connection's messages, a PONG per PING, PeerClosed with the peer's Close code, whatever the chunks",
    {
      isServer: sides,
      items: fc.array(itemArb(lengthArb), { minLength: 1, maxLength: 6 }),
      close: closeArb,
      split: splitArb,
      seed: fc.nat()
    },
    ({ close, isServer, items, seed, split }) =>
      Effect.gen(function*() {
        const rng = prng(seed)
        const b = builder(isServer, false, rng)
        for (const it of items) b.item(it)
        b.close(close ?? { code: undefined, reason: 0 })
        const e = encode(b.frames, rng)
        const [transport, peer] = yield* Transport.memoryPair()
        const framed = yield* WsFramed.make(transport, { isServer, maxPayload: 1 << 24, deflate: undefined })
        const conn = yield* Connection.fromFramed(framed)
        const incoming = yield* Effect.fork(Stream.runCollect(conn.incoming))
        const points = cutPoints(e, split)
        for (let i = 1; i < points.length; i++) {
          yield* peer.write(Buffer.from(e.bytes.subarray(points[i - 1]!, points[i]!)))
        }
        const closed = yield* conn.closed.pipe(Effect.timeout("5 seconds"))
        const code = close?.code ?? 1005
        const closeEvent = b.frames[b.frames.length - 1]!.event!
        expect(closed).toEqual(DisconnectReason.PeerClosed({ code, reason: closeEvent.slice(`close ${code} `.length) }))
        const messages = Chunk.toArray(yield* Fiber.join(incoming).pipe(Effect.timeout("5 seconds")))
        expect(messages.map(messageEvent)).toEqual(
          b.frames.flatMap((f) =>
            f.event !== undefined && (f.event.startsWith("text") || f.event.startsWith("binary")) ? [f.event] : []
          )
        )
        // what we wrote: a PONG per PING (its payload, in order), then our Close (the peer's code echoed, 1000 for none)
        yield* transport.destroy
        const written = parseFrames(peer.received(), !isServer)
        expect(written.map((f) => `${f.opcode === Frame.OP_PONG ? "pong" : f.opcode} ${digest(f.payload)}`)).toEqual([
          ...b.frames.filter((f) => f.opcode === Frame.OP_PING).map((f) => `pong ${digest(f.payload)}`),
          `${Frame.OP_CLOSE} ${digest(refClosePayload(code === 1005 ? 1000 : code, ""))}`
        ])
      }).pipe(Effect.scoped),
    { fastCheck: { numRuns: 30 } }
  )
})
