/**
 * The test kit's scheduling helpers and in-memory dial target.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type * as Dialer from "../Dialer.js"
import * as Framing from "../Framing.js"
import type * as Listener from "../Listener.js"
import * as Transport from "../Transport.js"
import type * as Watchdog from "../Watchdog.js"

/** @internal */
export class TestingError extends Error {
  readonly _tag = "TestingError"
}

/**
 * One turn of the event loop. Not a timer: it queues behind the I/O callbacks
 * and `setImmediate` continuations already due (a connection's writer resumes
 * on `setImmediate`), so it passes no time, real or virtual.
 * @internal
 */
export const macrotask: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** @internal */
export const settle: Effect.Effect<void> = Effect.repeatN(
  Effect.zipRight(macrotask, Effect.repeatN(Effect.yieldNow(), 5)),
  8
)

const DEFAULT_TURNS = 5000

/** @internal */
export const eventually = (
  condition: () => boolean,
  options?: { readonly what?: string | undefined; readonly maxTurns?: number | undefined }
): Effect.Effect<void, TestingError> =>
  Effect.suspend(() => {
    const max = options?.maxTurns ?? DEFAULT_TURNS
    const loop = (turn: number): Effect.Effect<void, TestingError> =>
      condition()
        ? Effect.void
        : turn >= max
        ? Effect.fail(new TestingError(`never: ${options?.what ?? "condition"} (after ${max} event-loop turns)`))
        : Effect.zipRight(macrotask, Effect.suspend(() => loop(turn + 1)))
    return loop(0)
  })

/** @internal */
export const awaitSleeper = (
  at: number,
  options?: { readonly maxTurns?: number | undefined }
): Effect.Effect<void, TestingError> =>
  Effect.gen(function*() {
    const max = options?.maxTurns ?? DEFAULT_TURNS
    for (let turn = 0; turn <= max; turn++) {
      const sleeps = yield* TestClock.sleeps()
      if ([...sleeps].includes(at)) return
      // fibers that are merely scheduled get a chance first, then the event loop
      yield* Effect.yieldNow()
      if (turn % 8 === 7) yield* macrotask
    }
    const sleeps = [...(yield* TestClock.sleeps())]
    return yield* Effect.fail(
      new TestingError(`no fiber sleeps until ${at} (after ${max} turns); sleepers: [${sleeps.join(", ")}]`)
    )
  })

/** @internal */
export const adjustTo = (millis: number): Effect.Effect<void> =>
  Effect.flatMap(TestClock.currentTimeMillis, (now) => TestClock.adjust(Duration.millis(millis - now)))

/** @internal */
export const within = <A, E, R>(
  duration: Duration.DurationInput,
  what: string,
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, E | TestingError, R> =>
  Effect.timeoutFail(self, {
    duration,
    onTimeout: () => new TestingError(`timed out after ${Duration.format(Duration.decode(duration))} waiting for ${what}`)
  })

/** @internal */
export const awaitStatus = (dialer: Dialer.Dialer, status: Dialer.Status): Effect.Effect<void> =>
  Effect.asVoid(Stream.runHead(Stream.filter(dialer.statusChanges, (s) => s === status)))

/** @internal */
export const awaitSessions = (
  server: Listener.Server,
  predicate: (rows: ReadonlyArray<Listener.SessionInfo>) => boolean
): Effect.Effect<ReadonlyArray<Listener.SessionInfo>> =>
  server.sessionChanges.pipe(Stream.filter(predicate), Stream.runHead, Effect.map(Option.getOrThrow))

/** @internal */
export interface MemoryServer {
  readonly connect: Effect.Effect<Transport.Transport, Transport.TransportError, Scope.Scope>
  readonly peers: Queue.Dequeue<Transport.MemoryPeer>
  readonly setRefusing: (refusing: boolean) => void
  readonly setHanging: (hanging: boolean) => void
  readonly attempts: ReadonlyArray<number>
  readonly setup: { current: (peer: Transport.MemoryPeer) => void }
}

/** @internal */
export const memoryServer = (
  options?: { readonly kernelBufferBytes?: number | undefined; readonly capacity?: number | undefined }
): Effect.Effect<MemoryServer> =>
  Effect.gen(function*() {
    const peers = yield* Queue.bounded<Transport.MemoryPeer>(options?.capacity ?? 4096)
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
      const [near, far] = yield* Transport.memoryPair({ kernelBufferBytes: options?.kernelBufferBytes })
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

/** @internal */
export const decodeFrames = (bytes: Uint8Array, codec: Framing.Codec = Framing.lengthPrefixed()): Array<string> => {
  const out: Array<Uint8Array> = []
  const err = codec.makeDecoder().decode(bytes, out)
  if (err) throw err
  return out.map(Framing.text)
}

/** @internal */
export const receivedFrames = (peer: Transport.MemoryPeer, codec?: Framing.Codec): Array<string> =>
  decodeFrames(peer.received(), codec)

/** @internal */
export const scriptedProbe = (
  sample: () => Watchdog.TcpInfo | "absent" | undefined
): Watchdog.TcpProbeService => {
  let reads = 0
  return {
    sample: () =>
      Effect.sync(() => {
        reads++
        return sample()
      }),
    reads: () => reads
  }
}
