/**
 * The pull-based inbound buffer shared by the socket transports (TCP/TLS and
 * WebSocket): event callbacks push chunks; the connection's reader takes them
 * all at once. Above the high-water mark the source is paused until the reader
 * takes what is buffered, so a slow consumer pushes back on the peer through
 * TCP. One reader at a time.
 * @internal
 */
import * as Effect from "effect/Effect"
import type { TransportState } from "../Transport.js"
import { TransportError } from "./transportError.js"

/** @internal */
export interface Inbound {
  /** Appends a chunk (from a 'data'/'message' callback); pauses the source above the high-water mark. */
  readonly push: (chunk: Uint8Array) => void
  /** The peer's end of stream. */
  readonly end: () => void
  /** A read-side failure (the first one wins). */
  readonly fail: (error: TransportError) => void
  /** The source closed (without necessarily an EOF or an error). */
  readonly close: () => void
  /** Wakes the reader to re-check (after a state change made elsewhere). */
  readonly wake: () => void
  /** Every buffered chunk, waiting for one; `[]` is the EOF. */
  readonly read: Effect.Effect<ReadonlyArray<Uint8Array>, TransportError>
  /** `read` without waiting: `undefined` when nothing is buffered and the stream has not ended. */
  readonly poll: () => ReadonlyArray<Uint8Array> | TransportError | undefined
  /** Registers the one push reader's wake-up, called on every chunk, end, failure or close. */
  readonly onReadable: (wake: () => void) => void
  readonly bytesRead: () => number
  readonly ended: () => boolean
  readonly closed: () => boolean
  /** The transport's state, given whether the socket is destroyed and whether our side sent its FIN. */
  readonly state: (destroyed: boolean, localEnded: boolean) => TransportState
}

/** @internal */
export const make = (options: {
  readonly highWaterMark: number
  readonly pause: () => void
  readonly resume: () => void
  /** Whether the underlying socket is already destroyed (then a read fails with `closedMessage`). */
  readonly destroyed: () => boolean
  readonly closedMessage: string
  /** Whether an EOF is reported before a pending failure (WebSocket: a Close frame ends reading cleanly). */
  readonly eofBeforeFailure?: boolean | undefined
}): Inbound => {
  let chunks: Array<Uint8Array> = []
  let buffered = 0
  let bytesRead = 0
  let paused = false
  let ended = false
  let closed = false
  let failure: TransportError | undefined
  let waiter: (() => void) | undefined
  let readable: (() => void) | undefined

  const wake = () => {
    if (waiter !== undefined) {
      const w = waiter
      waiter = undefined
      w()
    }
    if (readable !== undefined) readable()
  }
  const awaitChange = Effect.async<void>((resume) => {
    const w = () => resume(Effect.void)
    waiter = w
    return Effect.sync(() => {
      if (waiter === w) waiter = undefined
    })
  })

  const poll = (): ReadonlyArray<Uint8Array> | TransportError | undefined => {
    if (chunks.length > 0) {
      const out = chunks
      chunks = []
      buffered = 0
      if (paused) {
        paused = false
        options.resume()
      }
      return out
    }
    if (options.eofBeforeFailure && ended) return []
    if (failure !== undefined) return failure
    if (ended) return []
    if (closed || options.destroyed()) {
      return new TransportError({ reason: "Closed", message: options.closedMessage })
    }
    return undefined
  }

  const read: Effect.Effect<ReadonlyArray<Uint8Array>, TransportError> = Effect.suspend(() => {
    const r = poll()
    if (r === undefined) return Effect.zipRight(awaitChange, read)
    return r instanceof TransportError ? Effect.fail(r) : Effect.succeed(r)
  })

  return {
    push: (chunk) => {
      chunks.push(chunk)
      buffered += chunk.length
      bytesRead += chunk.length
      if (buffered >= options.highWaterMark && !paused) {
        paused = true
        options.pause()
      }
      wake()
    },
    end: () => {
      ended = true
      wake()
    },
    fail: (error) => {
      if (failure === undefined) failure = error
      wake()
    },
    close: () => {
      closed = true
      wake()
    },
    wake,
    read,
    poll,
    onReadable: (w) => {
      readable = w
    },
    bytesRead: () => bytesRead,
    ended: () => ended,
    closed: () => closed,
    state: (destroyed, localEnded) =>
      destroyed || closed ? "closed" : localEnded ? "half-closed-local" : ended ? "half-closed-remote" : "open"
  }
}
