/**
 * The push reader: driven by the transport's readable callback, it takes what arrived, decodes
 * it (in the framed seam) and queues the items for the consumer of `incoming`. It parks no
 * fiber: an idle connection costs a registered callback. Backpressure: above `inboundCapacity`
 * queued items it stops taking from the transport (whose buffer then pauses the socket, so TCP
 * pushes back on the peer) until the consumer takes. During a close nobody may be consuming any
 * more: then what does not fit is discarded (counted), so the linger's wait for the peer's EOF is
 * never blocked.
 * @internal
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as DR from "../../DisconnectReason.js"
import { FrameError } from "../../Framing.js"
import * as Metrics from "../../Metrics.js"
import type { Core } from "./state.js"
import { signalEof, touch } from "./state.js"

/** How the reader asks for a close. @internal */
export type RequestClose = (reason: DR.DisconnectReason, mode: "graceful" | "abort") => void

const wakeConsumer = <In, Out>(core: Core<In, Out>): void => {
  const c = core.consumer
  if (c !== undefined) {
    core.consumer = undefined
    c()
  }
}

/**
 * Takes from the framed seam until it has nothing more now, the consumer is behind, or the
 * stream ended. Re-entrant calls (a wake-up from inside a read) are folded into the running one.
 * @internal
 */
export const pump = <In, Out>(core: Core<In, Out>, requestClose: RequestClose): void => {
  // every wake-up of the reader is activity, also one it cannot act on (the consumer is behind): bytes
  // arriving, the transport pausing or resuming its socket, an EOF, an error
  touch(core)
  if (core.pumping || core.readerDone) return
  core.pumping = true
  try {
    const capacity = core.settings.inboundCapacity
    while (!core.readerDone) {
      const closing = core.closeRequest !== undefined
      if (core.items.length >= capacity && !closing) {
        core.stalled = true
        return
      }
      core.stalled = false
      const before = core.items.length
      const r = core.framed.unsafeRead(core.items)
      touch(core)
      if (typeof r === "number") {
        Metrics.bytesIn.unsafeUpdate(r, core.labels.tags)
        core.lastReadAt = core.clock.unsafeCurrentTimeMillis()
        const added = core.items.length - before
        if (added > 0) {
          Metrics.framesIn.unsafeUpdate(added, core.labels.tags)
          // closing: what does not fit is dropped (nobody may be consuming any more)
          if (closing && core.items.length > capacity) {
            const keep = Math.max(before, capacity)
            core.discardedInbound += core.items.length - keep
            core.items.length = keep
          }
          core.framesIn += core.items.length - before
          wakeConsumer(core)
        }
        continue
      }
      if (r === "pending") return
      if (r === "eof") {
        core.readerDone = true
        signalEof(core)
        requestClose(core.framed.unsafeEofReason?.() ?? DR.PeerClosed({}), "graceful")
        return
      }
      if (r instanceof FrameError) {
        requestClose(
          r.reason === "FrameTooLarge"
            ? DR.FrameTooLarge({ size: r.size ?? 0, max: r.max ?? core.framed.codec?.maxFrameBytes ?? 0 })
            : DR.MalformedFrame({ message: r.message }),
          "graceful"
        )
        continue // the seam discards until the EOF
      }
      // the read side failed: nothing more will come
      core.readerDone = true
      signalEof(core)
      requestClose(DR.IoError({ message: r.message, code: r.code }), "abort")
      return
    }
  } finally {
    core.pumping = false
  }
}

/** No more items: the consumer's stream ends once it has taken what is queued. @internal */
export const endInbound = <In, Out>(core: Core<In, Out>): void => {
  core.readerDone = true
  core.inboundEnded = true
  wakeConsumer(core)
}

/** Suspends until the reader has items for the consumer (or the inbound side ended). */
const waitForItems = <In, Out>(core: Core<In, Out>): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const w = () => resume(Effect.void)
    core.consumer = w
    return Effect.sync(() => {
      if (core.consumer === w) core.consumer = undefined
    })
  })

/** Every queued item at once (taking restarts a stalled reader); undefined when none is queued. */
const takeQueued = <In, Out>(core: Core<In, Out>, requestClose: RequestClose): Chunk.Chunk<In> | undefined => {
  if (core.items.length === 0) return undefined
  const out = core.items
  core.items = []
  if (core.stalled) pump(core, requestClose)
  return Chunk.unsafeFromArray(out)
}

/**
 * The consumer's side: every queued item at once (a chunk per pull), waiting when there is
 * none; taking restarts a stalled reader. Single consumer.
 * @internal
 */
export const incoming = <In, Out>(core: Core<In, Out>, requestClose: RequestClose): Stream.Stream<In> => {
  const wait = waitForItems(core)
  const take: Effect.Effect<Chunk.Chunk<In>, Option.Option<never>> = Effect.suspend(() => {
    const chunk = takeQueued(core, requestClose)
    if (chunk !== undefined) return Effect.succeed(chunk)
    if (core.inboundEnded) return Effect.fail(Option.none())
    return Effect.zipRight(wait, take)
  })
  return Stream.repeatEffectChunkOption(take)
}

/**
 * The same queue as `incoming`, pulled one chunk at a time without a Stream: `Option.none()` once
 * the inbound side has ended and everything queued was taken.
 * @internal
 */
export const read = <In, Out>(
  core: Core<In, Out>,
  requestClose: RequestClose
): Effect.Effect<Option.Option<Chunk.Chunk<In>>> => {
  const wait = waitForItems(core)
  const pull: Effect.Effect<Option.Option<Chunk.Chunk<In>>> = Effect.suspend(() => {
    const chunk = takeQueued(core, requestClose)
    if (chunk !== undefined) return Effect.succeed(Option.some(chunk))
    if (core.inboundEnded) return Effect.succeed(Option.none())
    return Effect.zipRight(wait, pull)
  })
  return pull
}
