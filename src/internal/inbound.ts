/**
 * The pull-based inbound buffer shared by the socket transports (TCP/TLS and
 * WebSocket): event callbacks push chunks; the connection's reader takes them
 * all at once. Above the high-water mark the source is paused until the reader
 * takes what is buffered, so a slow consumer pushes back on the peer through
 * TCP. One reader at a time. Its members are methods (call them on the buffer).
 * @internal
 */
import * as Effect from "effect/Effect"
import type { TransportState } from "../Transport.js"
import { TransportError } from "./transportError.js"

/** @internal */
export interface Inbound {
  /** Appends a chunk (from a 'data'/'message' callback); pauses the source above the high-water mark. */
  push(chunk: Uint8Array): void
  /** The peer's end of stream. */
  end(): void
  /** A read-side failure (the first one wins). */
  fail(error: TransportError): void
  /** The source closed (without necessarily an EOF or an error). */
  close(): void
  /** Wakes the reader to re-check (after a state change made elsewhere). */
  wake(): void
  /** Every buffered chunk, waiting for one; `[]` is the EOF. */
  readonly read: Effect.Effect<ReadonlyArray<Uint8Array>, TransportError>
  /** `read` without waiting: `undefined` when nothing is buffered and the stream has not ended. */
  poll(): ReadonlyArray<Uint8Array> | TransportError | undefined
  /** Registers the one push reader's wake-up, called on every chunk, end, failure or close. */
  onReadable(wake: () => void): void
  bytesRead(): number
  ended(): boolean
  closed(): boolean
  /** The transport's state, given whether the socket is destroyed and whether our side sent its FIN. */
  state(destroyed: boolean, localEnded: boolean): TransportState
}

/** @internal */
export interface InboundOptions {
  readonly highWaterMark: number
  readonly pause: () => void
  readonly resume: () => void
  /** Whether the underlying socket is already destroyed (then a read fails with `closedMessage`). */
  readonly destroyed: () => boolean
  readonly closedMessage: string
  /** Whether an EOF is reported before a pending failure (WebSocket: a Close frame ends reading cleanly). */
  readonly eofBeforeFailure?: boolean | undefined
}

// A class with its methods on the prototype (one per connection: a closure per method and the
// context they share was ~1 KB of every idle connection); `read`'s waiting effect is built on use.
/** @internal */
export class InboundBuffer implements Inbound {
  private chunks: Array<Uint8Array> = []
  private buffered = 0
  private bytes = 0
  private paused = false
  private isEnded = false
  private isClosed = false
  private failure: TransportError | undefined = undefined
  private waiter: (() => void) | undefined = undefined
  private readable: (() => void) | undefined = undefined
  constructor(private readonly options: InboundOptions) {}

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    this.bytes += chunk.length
    if (this.buffered >= this.options.highWaterMark && !this.paused) {
      this.paused = true
      this.options.pause()
    }
    this.wake()
  }
  end(): void {
    this.isEnded = true
    this.wake()
  }
  fail(error: TransportError): void {
    if (this.failure === undefined) this.failure = error
    this.wake()
  }
  close(): void {
    this.isClosed = true
    this.wake()
  }
  wake(): void {
    const w = this.waiter
    if (w !== undefined) {
      this.waiter = undefined
      w()
    }
    if (this.readable !== undefined) this.readable()
  }
  poll(): ReadonlyArray<Uint8Array> | TransportError | undefined {
    if (this.chunks.length > 0) {
      const out = this.chunks
      this.chunks = []
      this.buffered = 0
      if (this.paused) {
        this.paused = false
        this.options.resume()
      }
      return out
    }
    if (this.options.eofBeforeFailure && this.isEnded) return []
    if (this.failure !== undefined) return this.failure
    if (this.isEnded) return []
    if (this.isClosed || this.options.destroyed()) {
      return new TransportError({ reason: "Closed", message: this.options.closedMessage })
    }
    return undefined
  }
  get read(): Effect.Effect<ReadonlyArray<Uint8Array>, TransportError> {
    const awaitChange = Effect.async<void>((resume) => {
      const w = () => resume(Effect.void)
      this.waiter = w
      return Effect.sync(() => {
        if (this.waiter === w) this.waiter = undefined
      })
    })
    const read: Effect.Effect<ReadonlyArray<Uint8Array>, TransportError> = Effect.suspend(() => {
      const r = this.poll()
      if (r === undefined) return Effect.zipRight(awaitChange, read)
      return r instanceof TransportError ? Effect.fail(r) : Effect.succeed(r)
    })
    return read
  }
  onReadable(wake: () => void): void {
    this.readable = wake
  }
  bytesRead(): number {
    return this.bytes
  }
  ended(): boolean {
    return this.isEnded
  }
  closed(): boolean {
    return this.isClosed
  }
  state(destroyed: boolean, localEnded: boolean): TransportState {
    return destroyed || this.isClosed
      ? "closed"
      : localEnded
      ? "half-closed-local"
      : this.isEnded
      ? "half-closed-remote"
      : "open"
  }
}

/** @internal */
export const make = (options: InboundOptions): Inbound => new InboundBuffer(options)
