/**
 * The close procedure, run once, from the first close request: gate, bounded drain, FIN,
 * bounded linger for the peer's EOF, destroy, outcome. It runs uninterruptibly; only the bounded
 * waits inside are interruptible (a race or timeout must be able to cancel its loser).
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Connection from "../../Connection.js"
import * as DR from "../../DisconnectReason.js"
import * as Metrics from "../../Metrics.js"
import { Encoded } from "./models.js"
import { endInbound, pump, type RequestClose } from "./reader.js"
import type { Core, Outbound } from "./state.js"
import { enter } from "./state.js"
import { awaitIdle, busy } from "./writer.js"

const logAt = (severity: "debug" | "info" | "warning" | "error") =>
  severity === "debug"
    ? Effect.logDebug
    : severity === "info"
    ? Effect.logInfo
    : severity === "warning"
    ? Effect.logWarning
    : Effect.logError

const payloadOf = <Out>(o: Outbound<Out>): Out => (o instanceof Encoded ? (o as Encoded<Out>).payload : o as Out)

/** @internal */
export const procedure = <In, Out>(core: Core<In, Out>, requestClose: RequestClose): Effect.Effect<void> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const { mode, reason } = core.closeRequest!
      const settings = core.settings
      const tags = core.labels.tags
      const requestedAt = core.clock.unsafeCurrentTimeMillis()
      core.abortSignal = Deferred.unsafeMake<void>(FiberId.none)
      if (core.aborted) Deferred.unsafeDone(core.abortSignal, Effect.void)
      core.gate.unsafeClose(reason) // refuse new sends; waiting senders fail
      pump(core, requestClose) // a stalled reader discards from now on (the EOF wait must not block)
      yield* Effect.logDebug(`closing (${mode}): ${DR.describe(reason)}`)
      let drained = false
      let finSent = false
      let lingerExpired = false

      const graceful = Effect.gen(function*() {
        yield* enter(core, "Draining")
        const drainStart = core.clock.unsafeCurrentTimeMillis()
        // nothing to drain (no writer, nothing queued): no timeout (it would fork a fiber pair and a timer)
        const writerDone = busy(core)
          ? yield* awaitIdle(core).pipe(Effect.timeout(settings.drainTimeout), Effect.option)
          : Option.some(undefined)
        Metrics.drainDuration.unsafeUpdate((core.clock.unsafeCurrentTimeMillis() - drainStart) / 1000, tags)
        if (Option.isNone(writerDone)) {
          yield* Effect.logWarning(
            `drain timeout after ${Duration.format(settings.drainTimeout)}: ${
              core.queue.size() + (core.inFlight?.length ?? 0)
            } frames not written`
          )
          return
        }
        // the writer failed (write error or deadline): no point in a FIN
        if (core.aborted) return
        drained = core.queue.size() === 0 && core.inFlight === undefined
        yield* enter(core, "Closing")
        core.peerEof = Deferred.unsafeMake<void>(FiberId.none)
        if (core.eofSeen) Deferred.unsafeDone(core.peerEof, Effect.void)
        const peerEof = core.peerEof
        const fin = core.framed.shutdownWrite.pipe(
          Effect.tap(() => {
            finSent = true
          }),
          Effect.matchEffect({
            onFailure: () => Effect.void, // socket already gone: nothing to wait for
            onSuccess: () => Deferred.await(peerEof)
          })
        )
        const lingered = yield* Effect.timeout(fin, settings.lingerTimeout).pipe(Effect.option)
        if (Option.isNone(lingered)) {
          lingerExpired = true
          yield* Effect.logWarning(
            `linger expired after ${Duration.format(settings.lingerTimeout)}: peer never sent EOF`
          )
        }
      })
      if (mode === "graceful" && !core.aborted) {
        yield* restore(Effect.raceFirst(graceful, Deferred.await(core.abortSignal))).pipe(
          // no stack trace: capturing one costs a `new Error()` per close, paid by every session at shutdown
          Effect.withSpan("tether.close.graceful", {
            attributes: { "tether.connection": core.id },
            captureStackTrace: false
          })
        )
      }
      // destroy: nothing below can block
      core.writerStopped = true
      if (core.writer !== undefined) yield* Fiber.interrupt(core.writer)
      core.writer = undefined
      if (core.deadline !== undefined) yield* Fiber.interrupt(core.deadline)
      core.deadline = undefined
      // The batch in flight, split at what the kernel accepted (read by the transport right before
      // its destroy): frames it took in full were written, a frame it took in part is on the wire
      // truncated (`outcome.truncated`), the others never reached it and are handed back.
      const inFlight = core.inFlight
      yield* core.framed.destroy
      endInbound(core)
      const undelivered: Array<Out> = []
      let truncated: Out | undefined
      if (inFlight !== undefined && inFlight.length > 0) {
        const split = core.framed.unsafeSplit(inFlight)
        for (let i = 0; i < inFlight.length; i++) {
          if (i < split.written) continue
          if (i === split.written && split.truncated) truncated = payloadOf(inFlight[i]!)
          else undelivered.push(payloadOf(inFlight[i]!))
        }
        core.framesOut += split.written
        core.bytesOut += split.bytes
        if (split.written > 0) Metrics.framesOut.unsafeUpdate(split.written, tags)
        if (split.bytes > 0) Metrics.bytesOut.unsafeUpdate(split.bytes, tags)
      }
      core.inFlight = undefined
      for (const o of core.queue.unsafeTakeAll()) undelivered.push(payloadOf(o))
      yield* enter(core, "Closed")
      const outcome: Connection.CloseOutcome<Out> = {
        reason,
        delivered: core.framesOut,
        undelivered,
        truncated,
        drained: drained && undelivered.length === 0 && truncated === undefined,
        finSent,
        peerEof: core.eofSeen,
        lingerExpired,
        discardedInbound: core.discardedInbound,
        closeMillis: core.clock.unsafeCurrentTimeMillis() - requestedAt
      }
      if (core.reportedDepth !== 0) Metrics.sendQueueDepth.unsafeModify(-core.reportedDepth, tags)
      core.reportedDepth = 0
      Metrics.disconnects.unsafeUpdate(1, core.labels.reasonTags(reason._tag))
      Metrics.closeDuration.unsafeUpdate(outcome.closeMillis / 1000, tags)
      yield* logAt(DR.severity(reason))(
        `closed: ${DR.describe(reason)}; ${core.framesOut} frames delivered, ${undelivered.length} undelivered${
          truncated === undefined ? "" : ", 1 truncated"
        }`
      ).pipe(Effect.annotateLogs("reason", reason._tag))
      yield* Deferred.succeed(core.outcome, outcome)
    })
  )
