/**
 * Test helpers for dialers: an in-memory "server" whose `connect` hands out
 * memory transports (the test gets each far end), and frame decoding of what a
 * far end received.
 */
import { Clock, Effect, Queue } from "effect"
import type { Scope } from "effect"
import { Framing, Transport } from "effect-tether"

export interface MemoryServer {
  /** Use as `Dialer.Options.connect`. */
  readonly connect: Effect.Effect<Transport.Transport, Transport.TransportError, Scope.Scope>
  /** Far ends of the accepted connections, in order. */
  readonly peers: Queue.Dequeue<Transport.MemoryPeer>
  /** While true, connects fail with ECONNREFUSED. */
  readonly setRefusing: (refusing: boolean) => void
  /** While true, connects never complete (until the connect timeout). */
  readonly setHanging: (hanging: boolean) => void
  /** Clock millis of every connect attempt. */
  readonly attempts: Array<number>
  /** Applied to every new far end before the dialer sees it. */
  readonly setup: { current: (peer: Transport.MemoryPeer) => void }
}

export const memoryServer = (options?: { readonly kernelBufferBytes?: number }) =>
  Effect.gen(function*() {
    const peers = yield* Queue.bounded<Transport.MemoryPeer>(4096)
    let refusing = false
    let hanging = false
    const attempts: Array<number> = []
    const setup = { current: (_: Transport.MemoryPeer) => {} }
    const connect: MemoryServer["connect"] = Effect.gen(function*() {
      attempts.push(yield* Clock.currentTimeMillis)
      if (hanging) return yield* Effect.never
      if (refusing) {
        return yield* Effect.fail(
          new Transport.TransportError({ reason: "Connect", message: "refused", code: "ECONNREFUSED" })
        )
      }
      const [near, far] = yield* Transport.memoryPair(options)
      setup.current(far)
      yield* Effect.addFinalizer(() => near.destroy)
      yield* Queue.offer(peers, far)
      return near
    })
    const server: MemoryServer = {
      connect,
      peers,
      setRefusing: (r) => {
        refusing = r
      },
      setHanging: (h) => {
        hanging = h
      },
      attempts,
      setup
    }
    return server
  })

/** Decodes length-prefixed frames from raw bytes. */
export const decodeFrames = (bytes: Uint8Array): Array<string> => {
  const out: Array<Uint8Array> = []
  const err = Framing.lengthPrefixed().makeDecoder().decode(bytes, out)
  if (err) throw err
  return out.map(Framing.text)
}

/** The frames a memory far end has received so far (complete frames only). */
export const receivedFrames = (peer: Transport.MemoryPeer): Array<string> => decodeFrames(peer.received())

/** One turn of the event loop (the connection's writer fiber resumes on `setImmediate`). */
export const macrotask: Effect.Effect<void> = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** Lets every ready fiber run, writers included; no virtual time passes. */
export const settle: Effect.Effect<void> = Effect.repeatN(Effect.zipRight(macrotask, Effect.repeatN(Effect.yieldNow(), 5)), 8)
