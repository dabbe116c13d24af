/**
 * An in-memory transport pair for virtual-time tests.
 *
 * The near end is an ordinary {@link Transport}; the far end is a scriptable
 * peer with a model "kernel buffer": while the peer reads, near-end writes
 * complete at once; while it does not, they complete until `kernelBufferBytes`
 * are pending and then stall, exactly like a socket whose peer stopped reading.
 * Nothing here uses timers except `setWriteDelay`, which sleeps on the Effect
 * `Clock` so TestClock drives it.
 * @internal
 */
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type { MemoryPeer, Transport, TransportStats } from "../Transport.js"
import { TransportError } from "./transportError.js"

interface PendingWrite {
  /** The array given to `write` (the identity `unsafeKernelAccepted` asks about). */
  readonly chunks: ReadonlyArray<Uint8Array>
  readonly total: number
  /** Bytes not yet moved into the "kernel" (a chunk can be taken in part, like a short write). */
  remainingBytes: number
  remaining: Array<Uint8Array>
  readonly resume: (result: Effect.Effect<void, TransportError>) => void
}

class Signal {
  private waiters: Array<() => void> = []
  wait = Effect.async<void>((resume) => {
    const w = () => resume(Effect.void)
    this.waiters.push(w)
    return Effect.sync(() => {
      const i = this.waiters.indexOf(w)
      if (i >= 0) this.waiters.splice(i, 1)
    })
  })
  notify() {
    const ws = this.waiters
    this.waiters = []
    for (const w of ws) w()
  }
}

const resetError = (reason: "Read" | "Write") =>
  new TransportError({ reason, message: "connection reset by peer", code: "ECONNRESET" })
const closedError = () => new TransportError({ reason: "Closed", message: "transport destroyed" })

/** @internal */
export const memoryPair = (options?: {
  readonly kernelBufferBytes?: number | undefined
  readonly readHighWaterMark?: number | undefined
}): Effect.Effect<readonly [Transport, MemoryPeer]> =>
  Effect.sync(() => {
    const kernelCap = options?.kernelBufferBytes ?? 64 * 1024
    const nearHwm = options?.readHighWaterMark ?? 256 * 1024

    // peer -> near
    let toNear: Array<Uint8Array> = []
    let toNearBytes = 0
    let nearEof = false
    const nearReadable = new Signal()
    let nearWaker: (() => void) | undefined
    const notifyNear = () => {
      nearReadable.notify()
      if (nearWaker !== undefined) nearWaker()
    }
    const peerWritable = new Signal()

    // near -> peer
    const pending: Array<PendingWrite> = []
    let pendingBytes = 0
    let kernel: Array<Uint8Array> = [] // handed to the "kernel", not yet read by the peer
    let kernelBytes = 0
    let handedToKernel = 0
    let finInKernel = false
    let finSeenByPeer = false
    let toPeer: Array<Uint8Array> = []
    const received: Array<Uint8Array> = []
    const peerReadable = new Signal()
    const flushed = new Signal()

    let reading = true
    let ignoreFin = false
    let writeDelay: Duration.DurationInput | undefined
    let shutdownHangs = false
    let isReset = false
    let destroyed = false
    let finRequested = false
    const destroyedDeferred = Deferred.unsafeMake<void>(FiberId.none)
    let readClosed: TransportError | undefined
    let bytesRead = 0

    // the peer consumes the kernel buffer while it reads
    const deliverToPeer = () => {
      if (!reading) return
      if (kernel.length > 0) {
        for (const c of kernel) {
          toPeer.push(c)
          received.push(c)
        }
        kernel = []
        kernelBytes = 0
        peerReadable.notify()
      }
      if (finInKernel && !finSeenByPeer) {
        finSeenByPeer = true
        peerReadable.notify()
        if (!ignoreFin) {
          nearEof = true
          notifyNear()
        }
      }
    }
    // move pending user-space writes into the kernel buffer while there is room
    const pump = () => {
      deliverToPeer()
      while (pending.length > 0 && !isReset && !destroyed) {
        const w = pending[0]!
        while (w.remaining.length > 0) {
          const room = reading ? Infinity : kernelCap - kernelBytes
          if (room <= 0) break
          const c = w.remaining[0]!
          const n = Math.min(room, c.length)
          kernel.push(c.subarray(0, n))
          kernelBytes += n
          handedToKernel += n
          pendingBytes -= n
          w.remainingBytes -= n
          if (n === c.length) w.remaining.shift()
          else w.remaining[0] = c.subarray(n)
        }
        deliverToPeer()
        if (w.remaining.length > 0) break
        pending.shift()
        w.resume(Effect.void)
      }
      if (pending.length === 0) flushed.notify()
    }
    // the error is made only when a write waits for it (a TransportError captures a stack trace)
    const failAll = (err: () => TransportError) => {
      if (pending.length > 0) {
        const e = err()
        for (const w of pending.splice(0)) w.resume(Effect.fail(e))
      }
      pendingBytes = 0
      flushed.notify()
      notifyNear()
      peerReadable.notify()
      peerWritable.notify()
    }

    const poll = (): ReadonlyArray<Uint8Array> | TransportError | undefined => {
      if (isReset) return resetError("Read")
      if (toNear.length > 0) {
        const out = toNear
        toNear = []
        toNearBytes = 0
        for (const c of out) bytesRead += c.length
        peerWritable.notify()
        return out
      }
      if (destroyed) return (readClosed ??= closedError()) // one per pair: the reader may poll again
      if (nearEof) return []
      return undefined
    }
    const read: Effect.Effect<ReadonlyArray<Uint8Array>, TransportError> = Effect.suspend(() => {
      const r = poll()
      if (r === undefined) return Effect.zipRight(nearReadable.wait, read)
      return r instanceof TransportError ? Effect.fail(r) : Effect.succeed(r)
    })

    let lastWrite: PendingWrite | undefined
    const enqueue = (chunks: ReadonlyArray<Uint8Array>) =>
      Effect.async<void, TransportError>((resume) => {
        if (isReset) return resume(Effect.fail(resetError("Write")))
        if (destroyed || finRequested) return resume(Effect.fail(closedError()))
        const remaining = chunks.filter((c) => c.length > 0)
        let total = 0
        for (const c of remaining) total += c.length
        pendingBytes += total
        const w: PendingWrite = { chunks, total, remainingBytes: total, remaining, resume: (r) => resume(r) }
        lastWrite = w
        pending.push(w)
        pump()
      })
    // exact, like the socket transports: the part of a write that moved into the "kernel" stays there
    const unsafeKernelAccepted = (chunks: ReadonlyArray<Uint8Array>): number =>
      lastWrite === undefined || lastWrite.chunks !== chunks ? 0 : lastWrite.total - lastWrite.remainingBytes
    const write = (chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> =>
      writeDelay === undefined ? enqueue(chunks) : Effect.zipRight(Effect.sleep(writeDelay), enqueue(chunks))

    const shutdownWrite: Effect.Effect<void, TransportError> = Effect.suspend(() => {
      if (isReset) return Effect.fail(resetError("Write"))
      if (destroyed) return Effect.fail(closedError())
      finRequested = true
      if (shutdownHangs) return Effect.never
      const waitFlushed: Effect.Effect<void, TransportError> = Effect.suspend(() => {
        if (destroyed || isReset) return Effect.fail(closedError())
        if (pending.length === 0) {
          finInKernel = true
          deliverToPeer()
          return Effect.void
        }
        return Effect.zipRight(flushed.wait, waitFlushed)
      })
      return waitFlushed
    })

    const destroy = Effect.sync(() => {
      if (destroyed) return
      destroyed = true
      failAll(closedError)
      Deferred.unsafeDone(destroyedDeferred, Effect.void)
    })

    const stats = (): TransportStats => ({
      queuedBytes: pendingBytes,
      bytesHandedToKernel: handedToKernel,
      bytesRead,
      state: destroyed || isReset ? "closed" : finRequested ? "half-closed-local" : nearEof ? "half-closed-remote" : "open",
      socket: undefined
    })

    const transport: Transport = {
      kind: "memory",
      remoteAddress: "memory:peer",
      localAddress: "memory:near",
      read,
      unsafePoll: poll,
      unsafeOnReadable: (wake) => {
        nearWaker = wake
      },
      write,
      shutdownWrite,
      destroy,
      stats,
      unsafeKernelAccepted
    }

    const peerWrite = (bytes: Uint8Array): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (destroyed || isReset) return Effect.void
        if (toNearBytes >= nearHwm) return Effect.zipRight(peerWritable.wait, peerWrite(bytes))
        toNear.push(bytes)
        toNearBytes += bytes.length
        notifyNear()
        return Effect.void
      })

    const peerRead: Effect.Effect<ReadonlyArray<Uint8Array>> = Effect.suspend(() => {
      if (toPeer.length > 0) {
        const out = toPeer
        toPeer = []
        return Effect.succeed(out)
      }
      if (finSeenByPeer || destroyed || isReset) return Effect.succeed([])
      return Effect.zipRight(peerReadable.wait, peerRead)
    })

    const peer: MemoryPeer = {
      write: peerWrite,
      read: peerRead,
      received: () => Buffer.concat(received),
      end: Effect.sync(() => {
        nearEof = true
        notifyNear()
      }),
      reset: Effect.sync(() => {
        isReset = true
        failAll(() => resetError("Write"))
      }),
      setReading: (r) => {
        reading = r
        pump()
      },
      setIgnoreFin: (i) => {
        ignoreFin = i
      },
      setWriteDelay: (d) => {
        writeDelay = d
      },
      setShutdownHangs: (h) => {
        shutdownHangs = h
      },
      finReceived: () => finSeenByPeer,
      destroyed: () => destroyed,
      awaitDestroyed: Deferred.await(destroyedDeferred)
    }
    return [transport, peer] as const
  })
