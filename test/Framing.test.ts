/**
 * Codecs: round trips across arbitrary chunk boundaries, and the size limits both ways.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc } from "effect"
import { Connection, Framing, Transport } from "effect-tether"

const chunked = (bytes: Uint8Array, cuts: Array<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Array<Uint8Array> = []
  let prev = 0
  for (const p of points) {
    out.push(bytes.subarray(prev, p))
    prev = p
  }
  out.push(bytes.subarray(prev))
  return out
}
const encodeAll = (codec: Framing.Codec, frames: Array<Uint8Array>) =>
  Buffer.concat(frames.map((f) => Framing.encode(codec, f)))

describe("Framing", () => {
  it("length-prefixed: round trip whatever the chunk boundaries", () =>
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (frames, cuts) => {
          const codec = Framing.lengthPrefixed()
          const decoder = codec.makeDecoder()
          const out: Array<Uint8Array> = []
          for (const c of chunked(encodeAll(codec, frames), cuts)) expect(decoder.decode(c, out)).toBeUndefined()
          expect(out.map((f) => Buffer.from(f).toString("hex"))).toEqual(frames.map((f) => Buffer.from(f).toString("hex")))
          expect(decoder.buffered()).toBe(0)
        }
      ),
      { numRuns: 300 }
    ))

  it("newline: round trip whatever the chunk boundaries; CRLF is accepted", () =>
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 50 }).map((s) => s.replace(/[\r\n]/g, "")), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (lines, cuts) => {
          const codec = Framing.newline()
          const decoder = codec.makeDecoder()
          const out: Array<Uint8Array> = []
          const wire = Buffer.from(lines.map((l, i) => l + (i % 2 === 0 ? "\n" : "\r\n")).join(""))
          for (const c of chunked(wire, cuts)) expect(decoder.decode(c, out)).toBeUndefined()
          expect(out.map(Framing.text)).toEqual(lines)
        }
      ),
      { numRuns: 300 }
    ))

  it("length-prefixed: a declared length over maxFrameBytes is FrameTooLarge before the body arrives", () => {
    const codec = Framing.lengthPrefixed({ maxFrameBytes: 10 })
    const decoder = codec.makeDecoder()
    const err = decoder.decode(new Uint8Array([0, 0, 0, 11]), [])
    expect(err).toMatchObject({ _tag: "FrameError", reason: "FrameTooLarge", size: 11, max: 10 })
  })

  it("newline: a line growing past maxFrameBytes without a delimiter is FrameTooLarge", () => {
    const decoder = Framing.newline({ maxFrameBytes: 8 }).makeDecoder()
    const out: Array<Uint8Array> = []
    expect(decoder.decode(Buffer.from("12345"), out)).toBeUndefined()
    expect(decoder.decode(Buffer.from("6789"), out)).toMatchObject({ reason: "FrameTooLarge" })
  })

  it("encode side: too large and (newline) delimiter inside the payload are refused", () => {
    expect(Framing.lengthPrefixed({ maxFrameBytes: 3 }).check(new Uint8Array(4))).toMatchObject({
      reason: "FrameTooLarge",
      size: 4,
      max: 3
    })
    expect(Framing.newline().check(Buffer.from("a\nb"))).toMatchObject({ reason: "MalformedFrame" })
    expect(Framing.lengthPrefixed({ maxFrameBytes: 3 }).check(new Uint8Array(3))).toBeUndefined()
  })

  it("newline: a payload ending in \\r is refused (the decoder would strip it); a \\r inside is kept", () => {
    const codec = Framing.newline()
    const err = codec.check(Buffer.from("abc\r"))
    expect(err).toMatchObject({ _tag: "FrameError", reason: "MalformedFrame" })
    expect(err?.message).toContain("ends with \\r")
    expect(codec.check(Buffer.from("\r"))).toMatchObject({ reason: "MalformedFrame" })
    expect(codec.check(Buffer.from("a\rb"))).toBeUndefined()
    expect(codec.check(Buffer.from("\rabc"))).toBeUndefined()
    expect(codec.check(new Uint8Array(0))).toBeUndefined()
    // what a refused payload would have become: "abc\r" arrives as "abc"
    const out: Array<Uint8Array> = []
    codec.makeDecoder().decode(Framing.encode(codec, Buffer.from("abc\r")), out)
    expect(out.map(Framing.text)).toEqual(["abc"])
  })

  it.effect("newline: send of a payload ending in \\r fails with FrameError; nothing is written", () =>
    Effect.gen(function*() {
      const [t, peer] = yield* Transport.memoryPair()
      const conn = yield* Connection.make(t, { codec: Framing.newline() })
      const err = yield* Effect.flip(conn.send(Framing.utf8("abc\r")))
      expect(err).toMatchObject({ _tag: "FrameError", reason: "MalformedFrame" })
      yield* conn.send(Framing.utf8("a\rb"))
      yield* conn.close()
      const wire = Buffer.from(peer.received())
      expect(wire.toString("latin1")).toBe("a\rb\n")
    }).pipe(Effect.scoped))

  it("newline: any payload that check accepts round trips unchanged (\\r and \\n anywhere in the input)", () =>
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[a\r\n\u00e9]{0,12}$/), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (candidates, cuts) => {
          const codec = Framing.newline()
          const accepted: Array<string> = []
          for (const c of candidates) {
            const err = codec.check(Framing.utf8(c))
            const ambiguous = c.includes("\n") || c.endsWith("\r")
            expect(err === undefined).toBe(!ambiguous)
            if (err === undefined) accepted.push(c)
          }
          const decoder = codec.makeDecoder()
          const out: Array<Uint8Array> = []
          const wire = encodeAll(codec, accepted.map((c) => Framing.utf8(c)))
          for (const c of chunked(wire, cuts)) expect(decoder.decode(c, out)).toBeUndefined()
          expect(out.map(Framing.text)).toEqual(accepted)
        }
      ),
      { numRuns: 300 }
    ))

  it("raw: chunks pass through, split at maxFrameBytes", () => {
    const decoder = Framing.raw({ maxFrameBytes: 4 }).makeDecoder()
    const out: Array<Uint8Array> = []
    decoder.decode(new Uint8Array([1, 2, 3, 4, 5, 6]), out)
    expect(out.map((f) => Array.from(f))).toEqual([[1, 2, 3, 4], [5, 6]])
  })

  it("zero-length frames round trip", () => {
    const codec = Framing.lengthPrefixed()
    const out: Array<Uint8Array> = []
    codec.makeDecoder().decode(encodeAll(codec, [new Uint8Array(0), new Uint8Array([7])]), out)
    expect(out.map((f) => Array.from(f))).toEqual([[], [7]])
  })
})
