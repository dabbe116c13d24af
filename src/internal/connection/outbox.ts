/**
 * The outbox: the only way into the send queue. Every send checks the message, then the gate,
 * waits for capacity, re-checks and commits (StopGate's gated queue), and starts the writer if it
 * is stopped. The common case (gate open, nobody waiting, room left) commits synchronously.
 * @internal
 */
import * as Effect from "effect/Effect"
import type { DisconnectReason } from "../../DisconnectReason.js"
import type * as Framing from "../../Framing.js"
import type * as StopGate from "../../StopGate.js"
import { ConnectionClosed, type Encoded } from "./models.js"
import type { Core, Outbound } from "./state.js"

/** @internal */
export const makeOutbox = <In, Out>(core: Core<In, Out>, wakeWriter: () => void) => {
  const queue = core.queue
  const framed = core.framed
  const closedError = (r: StopGate.GateClosed<DisconnectReason>) => new ConnectionClosed({ reason: r.reason })
  // One frame. The common case (gate open, nobody waiting, room left) commits synchronously,
  // without building the waiting `offer` effect; otherwise `offer` waits in line as usual.
  const offerOne = (frame: Outbound<Out>): Effect.Effect<void, ConnectionClosed> => {
    const r = queue.unsafeTryOffer(frame)
    if (r === "accepted") {
      wakeWriter()
      return Effect.void
    }
    if (r !== "full") return Effect.fail(closedError(r))
    return Effect.mapError(queue.offer(frame), closedError).pipe(Effect.tap(wakeWriter))
  }
  // Frames in order: synchronously while there is room, waiting (in line) only when full.
  // A close partway fails with `accepted`: how many frames (from the first) were queued.
  const offerFrom = (list: ReadonlyArray<Outbound<Out>>, from: number): Effect.Effect<void, ConnectionClosed> => {
    for (let i = from; i < list.length; i++) {
      const r = queue.unsafeTryOffer(list[i]!)
      if (r === "accepted") continue
      if (i > from) wakeWriter()
      const accepted = i
      if (r !== "full") return Effect.fail(new ConnectionClosed({ reason: r.reason, accepted }))
      return Effect.flatMap(
        Effect.mapError(queue.offer(list[i]!), (c) => new ConnectionClosed({ reason: c.reason, accepted })),
        () => {
          wakeWriter()
          return offerFrom(list, i + 1)
        }
      )
    }
    if (list.length > from) wakeWriter()
    return Effect.void
  }
  const tryOffer = (frame: Outbound<Out>, check: boolean) =>
    Effect.suspend((): Effect.Effect<"accepted" | "full", ConnectionClosed | Framing.FrameError> => {
      if (check) {
        const err = framed.check(frame as Out)
        if (err) return Effect.fail(err)
      }
      const r = queue.unsafeTryOffer(frame)
      if (r === "accepted") wakeWriter()
      return typeof r === "string" ? Effect.succeed(r) : Effect.fail(closedError(r))
    })
  return {
    send: (frame: Out): Effect.Effect<void, ConnectionClosed | Framing.FrameError> =>
      Effect.suspend((): Effect.Effect<void, ConnectionClosed | Framing.FrameError> => {
        const err = framed.check(frame)
        if (err) return Effect.fail(err)
        return offerOne(frame)
      }),
    sendAll: (frames: Iterable<Out>) =>
      Effect.suspend((): Effect.Effect<void, ConnectionClosed | Framing.FrameError> => {
        const list = Array.isArray(frames) ? frames as ReadonlyArray<Out> : Array.from(frames)
        for (let i = 0; i < list.length; i++) {
          const err = framed.check(list[i]!)
          if (err) return Effect.fail(err)
        }
        return offerFrom(list, 0)
      }),
    trySend: (frame: Out) => tryOffer(frame, true),
    sendEncoded: (frame: Encoded<Out>) => Effect.suspend(() => offerOne(frame)),
    trySendEncoded: (frame: Encoded<Out>) =>
      tryOffer(frame, false) as Effect.Effect<"accepted" | "full", ConnectionClosed>
  }
}
