/**
 * `Framed.fromTransport`: a byte transport and a codec as the message seam a connection's single
 * writer and push reader work on. Encodes a batch into as few buffers as possible (one syscall),
 * remembers the batch in flight so that a close can split it at the byte the kernel accepted, and
 * decodes inbound bytes in the reader's callback.
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Framed from "../../Framed.js"
import type * as Framing from "../../Framing.js"
import { TransportError } from "../transportError.js"
import type * as Transport from "../../Transport.js"
import { Encoded } from "./models.js"

/** Frames at least this large are written from their own buffer instead of being copied into a pack. */
const PACK_LIMIT = 64 * 1024
/** Fallback reader (a transport without `unsafePoll`): chunks held before it stops pulling. */
const FALLBACK_HWM = 256 * 1024

/**
 * A push reader over a transport that only has the pulling `read`: one fiber pulls into a bounded
 * buffer (it stops pulling above the high-water mark, so the transport's own backpressure applies).
 */
const pullingReader = (transport: Transport.Transport): Effect.Effect<{
  readonly poll: () => ReadonlyArray<Uint8Array> | TransportError | undefined
  readonly onReadable: (wake: () => void) => void
}, never, Scope.Scope> =>
  Effect.gen(function*() {
    let chunks: Array<Uint8Array> = []
    let bytes = 0
    let end: ReadonlyArray<Uint8Array> | TransportError | undefined
    let wake: (() => void) | undefined
    let resumePull: (() => void) | undefined
    const room = Effect.async<void>((resume) => {
      if (bytes < FALLBACK_HWM) return resume(Effect.void)
      resumePull = () => resume(Effect.void)
    })
    const pull: Effect.Effect<void> = Effect.zipRight(
      room,
      Effect.matchEffect(transport.read, {
        onFailure: (e) => Effect.sync(() => {
          end = e
          wake?.()
        }),
        onSuccess: (cs) =>
          Effect.suspend(() => {
            if (cs.length === 0) {
              end = []
              wake?.()
              return Effect.void
            }
            for (const c of cs) {
              chunks.push(c)
              bytes += c.length
            }
            wake?.()
            return pull
          })
      })
    )
    yield* Effect.forkScoped(pull)
    return {
      poll: () => {
        if (chunks.length > 0) {
          const out = chunks
          chunks = []
          bytes = 0
          const r = resumePull
          resumePull = undefined
          r?.()
          return out
        }
        return end
      },
      onReadable: (w) => {
        wake = w
      }
    }
  })

/** A transport's reader: its own push reader, or the pulling fallback. */
interface Reader {
  readonly poll: () => ReadonlyArray<Uint8Array> | TransportError | undefined
  readonly onReadable: (wake: () => void) => void
}

// The weight function of a codec, shared by every connection using it (the send queue holds it).
const weights = new WeakMap<Framing.Codec<any, any>, (o: any) => number>()
const weightOf = <In, Out>(codec: Framing.Codec<In, Out>): (o: Out | Encoded<Out>) => number => {
  let w = weights.get(codec)
  if (w === undefined) {
    w = (o: Out | Encoded<Out>): number => (o instanceof Encoded ? o.bytes.length : codec.encodedLength(o))
    weights.set(codec, w)
  }
  return w
}

/** The wire chunks of a batch: runs of small frames packed into one buffer, large ones as they are. */
const encodeBatch = <In, Out>(
  codec: Framing.Codec<In, Out>,
  weight: (o: Out | Encoded<Out>) => number,
  batch: ReadonlyArray<Out | Encoded<Out>>
): Array<Uint8Array> => {
  const chunks: Array<Uint8Array> = []
  let runStart = 0
  let runBytes = 0
  const flushRun = (end: number) => {
    if (end === runStart) return
    if (end - runStart === 1) {
      const o = batch[runStart]!
      if (o instanceof Encoded) chunks.push(o.bytes)
      else {
        const buf = Buffer.allocUnsafe(runBytes)
        codec.encodeInto(o, buf, 0)
        chunks.push(buf)
      }
    } else {
      const buf = Buffer.allocUnsafe(runBytes)
      let off = 0
      for (let i = runStart; i < end; i++) {
        const o = batch[i]!
        if (o instanceof Encoded) {
          buf.set(o.bytes, off)
          off += o.bytes.length
        } else off = codec.encodeInto(o, buf, off)
      }
      chunks.push(buf)
    }
  }
  for (let i = 0; i < batch.length; i++) {
    const o = batch[i]!
    const w = weight(o)
    if (w >= PACK_LIMIT) {
      flushRun(i)
      if (o instanceof Encoded) chunks.push(o.bytes)
      else for (const c of codec.encodeChunks(o)) chunks.push(c)
      runStart = i + 1
      runBytes = 0
    } else runBytes += w
  }
  flushRun(batch.length)
  return chunks
}

/**
 * The seam over a byte transport. A class, one per connection: its members are on the prototype
 * (a closure each was ~0.7 KB of every idle connection), the effects are built when used. Decorate
 * it by delegation, not by spreading it (`{ ...framed }` copies none of its methods).
 */
class FramedTransport<In, Out> implements Framed.Framed<In, Out> {
  readonly kind: Transport.Transport["kind"]
  readonly remoteAddress: string | undefined
  readonly localAddress: string | undefined
  readonly check: (message: Out) => Framing.FrameError | undefined
  /** Shared per codec, and safe to pass point-free (the send queue does). */
  readonly weight: (message: Out | Encoded<Out>) => number
  readonly control: Transport.ControlLane | undefined
  /** Present when the transport writes with callbacks: the prototype's `directWrite`, no closure. */
  readonly unsafeWrite: Framed.Framed<In, Out>["unsafeWrite"]
  private lastBatch: ReadonlyArray<Out | Encoded<Out>> | undefined = undefined
  private lastChunks: ReadonlyArray<Uint8Array> | undefined = undefined
  private lastBytes = 0
  private readonly decoder: Framing.Decoder<In>
  private decoding = true
  private ended = false

  constructor(
    readonly transport: Transport.Transport,
    readonly codec: Framing.Codec<In, Out>,
    /** undefined: the transport's own push reader */
    private readonly fallback: Reader | undefined
  ) {
    this.kind = transport.kind
    this.remoteAddress = transport.remoteAddress
    this.localAddress = transport.localAddress
    this.check = codec.check
    this.weight = weightOf(codec)
    this.control = transport.control
    this.decoder = codec.makeDecoder()
    this.unsafeWrite = transport.unsafeWrite !== undefined ? FramedTransport.prototype.directWrite : undefined
  }

  /** Encodes a batch for the wire, remembered for `unsafeSplit`; `lastBytes` is its size. */
  private encode(batch: ReadonlyArray<Out | Encoded<Out>>): ReadonlyArray<Uint8Array> {
    const chunks = encodeBatch(this.codec, this.weight, batch)
    let bytes = 0
    for (const c of chunks) bytes += c.length
    this.lastBatch = batch
    this.lastChunks = chunks
    this.lastBytes = bytes
    return chunks
  }

  directWrite(
    batch: ReadonlyArray<Out | Encoded<Out>>,
    callback: (error: TransportError | undefined, bytes: number) => void
  ): void {
    const chunks = this.encode(batch)
    const bytes = this.lastBytes
    this.transport.unsafeWrite!(chunks, (error) => callback(error, bytes))
  }

  write(batch: ReadonlyArray<Out | Encoded<Out>>): Effect.Effect<number, TransportError> {
    return Effect.suspend(() => {
      const chunks = this.encode(batch)
      return Effect.as(this.transport.write(chunks), this.lastBytes)
    })
  }

  unsafeSplit(batch: ReadonlyArray<Out | Encoded<Out>>): Framed.Split {
    const lastChunks = this.lastChunks
    const accepted = batch !== this.lastBatch || lastChunks === undefined
      ? 0
      : (this.transport.unsafeKernelAccepted?.(lastChunks) ?? 0)
    let offset = 0
    let written = 0
    let truncated = false
    for (const o of batch) {
      const end = offset + this.weight(o)
      if (end <= accepted) written++
      else {
        truncated = offset < accepted
        break
      }
      offset = end
    }
    return { written, truncated, bytes: truncated ? accepted : offset }
  }

  unsafeRead(out: Array<In>): Framed.ReadResult {
    if (this.ended) return "eof"
    const r = this.fallback !== undefined ? this.fallback.poll() : this.transport.unsafePoll!()
    if (r === undefined) return "pending"
    if (r instanceof TransportError) return r
    if (r.length === 0) {
      this.ended = true // the next call answers "eof"
      const decoder = this.decoder
      const err = this.decoding && decoder.decodeEof !== undefined ? decoder.decodeEof(out) : undefined
      return err ?? "eof"
    }
    let bytes = 0
    for (const c of r) bytes += c.length
    if (!this.decoding) return bytes // a framing error ended decoding: discard until EOF
    for (const c of r) {
      const err = this.decoder.decode(c, out)
      if (err) {
        this.decoding = false
        return err
      }
    }
    return bytes
  }

  unsafeOnReadable(wake: () => void): void {
    if (this.fallback !== undefined) this.fallback.onReadable(wake)
    else this.transport.unsafeOnReadable!(wake)
  }

  get shutdownWrite(): Effect.Effect<void, TransportError> {
    return this.transport.shutdownWrite
  }

  get destroy(): Effect.Effect<void> {
    return this.transport.destroy
  }

  stats(): Transport.TransportStats {
    return this.transport.stats()
  }
}

/** @internal */
export const fromTransport = <In, Out>(
  transport: Transport.Transport,
  codec: Framing.Codec<In, Out>
): Effect.Effect<Framed.Framed<In, Out>, never, Scope.Scope> =>
  transport.unsafePoll !== undefined && transport.unsafeOnReadable !== undefined
    ? Effect.sync(() => new FramedTransport(transport, codec, undefined))
    : Effect.map(pullingReader(transport), (reader) => new FramedTransport(transport, codec, reader))
