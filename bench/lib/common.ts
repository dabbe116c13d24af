import { pathToFileURL } from "node:url"

/**
 * Shared by the bench orchestrator and its child processes: the wire format of
 * the test frames, the child-process protocol (one JSON object per stdout
 * line) and a verifying frame parser.
 *
 * Frames are length-prefixed (4-byte big-endian length, then the payload). The
 * first 4 payload bytes carry a sequence number, so a receiver can check count,
 * order and a checksum of every frame without trusting the sender.
 */

/** Monotonic clock in nanoseconds. CLOCK_MONOTONIC is system-wide on Linux, so
 * readings from the sender and the receiver process can be compared. */
export const nowNs = (): number => Number(process.hrtime.bigint())

/** Parameters handed to a child as JSON in argv[2]. */
export type Params = Record<string, unknown> & { readonly variant: string }

export const readParams = (): Params => {
  const raw = process.argv[2]
  if (raw === undefined) throw new Error("missing params (argv[2])")
  return JSON.parse(raw) as Params
}

export const num = (p: Params, key: string, fallback?: number): number => {
  const v = p[key]
  if (typeof v === "number") return v
  if (fallback !== undefined) return fallback
  throw new Error(`missing numeric param ${key}`)
}

/**
 * Loads tether: the compiled build the orchestrator made (param `tetherEntry`,
 * see lib/build.ts), or the TypeScript sources when run by hand.
 */
export const loadTether = (p: Params): Promise<typeof import("../../src/index.js")> =>
  typeof p.tetherEntry === "string"
    ? import(pathToFileURL(p.tetherEntry).href) as Promise<typeof import("../../src/index.js")>
    : import("../../src/index.js")

/** Writes one protocol line to stdout. */
export const emit = (msg: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify(msg) + "\n")
}

/** Reports the final result and exits once stdout is flushed. */
export const finish = (result: Record<string, unknown>): void => {
  process.stdout.write(JSON.stringify({ result }) + "\n", () => process.exit(0))
}

/** Reports a failure and exits non-zero. */
export const fail = (error: unknown): void => {
  const message = error instanceof Error ? `${error.message}\n${error.stack ?? ""}` : String(error)
  process.stdout.write(JSON.stringify({ error: message }) + "\n", () => process.exit(1))
}

/**
 * Every child guards itself: it exits on its own after `limitMs`, and when its
 * parent goes away (stdin closes), so no run can leave processes behind.
 */
export const guardChild = (limitMs: number): void => {
  setTimeout(() => {
    process.stderr.write(`child ${process.pid} hit its own time limit (${limitMs} ms)\n`)
    process.exit(3)
  }, limitMs).unref()
  process.stdin.on("end", () => process.exit(4))
  process.stdin.on("error", () => process.exit(4))
  process.stdin.resume()
  process.stdin.unref?.()
  process.on("uncaughtException", fail)
  process.on("unhandledRejection", fail)
}

/** Test payload: `size` bytes, the first 4 are `seq` (big-endian). */
export const payload = (seq: number, size: number): Buffer => {
  const b = Buffer.allocUnsafe(size)
  b.writeUInt32BE(seq >>> 0, 0)
  return b
}

/** Writes a whole frame (length prefix + payload with `seq`) at `off`; returns the new offset. */
export const writeFrame = (target: Buffer, off: number, seq: number, payloadSize: number): number => {
  target.writeUInt32BE(payloadSize, off)
  target.writeUInt32BE(seq >>> 0, off + 4)
  return off + 4 + payloadSize
}

/**
 * Incremental verifier for length-prefixed test frames. Handles any chunking
 * without copying payloads; checks every length and that sequence numbers
 * arrive as 0, 1, 2, … (mod 2^32).
 */
export class FrameVerifier {
  frames = 0
  bytes = 0
  /** Sum of sequence numbers (exact below 2^53). */
  seqSum = 0
  error: string | undefined
  lastFrameAt = 0
  firstByteAt = 0
  private hdr = Buffer.alloc(8)
  private hdrFill = 0
  private remaining = 0
  private expectedSeq = 0

  constructor(readonly payloadSize: number, readonly onFrame?: (seq: number) => void) {}

  private header(len: number, seq: number) {
    if (len !== this.payloadSize && this.error === undefined) {
      this.error = `frame ${this.frames}: length ${len}, expected ${this.payloadSize}`
    }
    if (seq !== this.expectedSeq && this.error === undefined) {
      this.error = `frame ${this.frames}: seq ${seq}, expected ${this.expectedSeq}`
    }
    this.expectedSeq = (seq + 1) >>> 0
    this.seqSum += seq
    this.remaining = len - 4
  }

  private complete() {
    this.frames++
    this.onFrame?.(this.expectedSeq - 1)
  }

  push(chunk: Uint8Array): void {
    const n = chunk.length
    if (this.firstByteAt === 0) this.firstByteAt = nowNs()
    this.bytes += n
    let p = 0
    while (p < n) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, n - p)
        p += skip
        this.remaining -= skip
        if (this.remaining === 0) this.complete()
        continue
      }
      if (this.hdrFill === 0 && p + 8 <= n) {
        const len = ((chunk[p]! << 24) >>> 0) + (chunk[p + 1]! << 16) + (chunk[p + 2]! << 8) + chunk[p + 3]!
        const seq = ((chunk[p + 4]! << 24) >>> 0) + (chunk[p + 5]! << 16) + (chunk[p + 6]! << 8) + chunk[p + 7]!
        p += 8
        this.header(len, seq)
        if (this.remaining === 0) this.complete()
        continue
      }
      // header split across chunks
      while (this.hdrFill < 8 && p < n) this.hdr[this.hdrFill++] = chunk[p++]!
      if (this.hdrFill === 8) {
        this.hdrFill = 0
        this.header(this.hdr.readUInt32BE(0), this.hdr.readUInt32BE(4))
        if (this.remaining === 0) this.complete()
      }
    }
    this.lastFrameAt = nowNs()
  }

  /** Verifies one already decoded payload (for receivers that use a codec). */
  pushPayload(frame: Uint8Array): void {
    if (this.firstByteAt === 0) this.firstByteAt = nowNs()
    this.bytes += frame.length + 4
    const seq = frame.length >= 4
      ? ((frame[0]! << 24) >>> 0) + (frame[1]! << 16) + (frame[2]! << 8) + frame[3]!
      : -1
    this.header(frame.length, seq)
    this.remaining = 0
    this.complete()
  }

  /** Checks the totals against what was sent. */
  verify(expectedFrames: number): string | undefined {
    if (this.error !== undefined) return this.error
    if (this.remaining > 0 || this.hdrFill > 0) return `stream ended inside frame ${this.frames}`
    if (this.frames !== expectedFrames) return `received ${this.frames} frames, expected ${expectedFrames}`
    // sequence numbers are 0..n-1 (below 2^32 in every case)
    const expectedSum = (expectedFrames * (expectedFrames - 1)) / 2
    if (this.seqSum !== expectedSum) return `sequence checksum ${this.seqSum}, expected ${expectedSum}`
    return undefined
  }
}

/** Memory snapshot after a full GC (children run with --expose-gc). */
export const memorySnapshot = (): { rss: number; heapUsed: number; external: number } => {
  const g = (globalThis as { gc?: () => void }).gc
  if (g) {
    g()
    g()
  }
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external }
}
