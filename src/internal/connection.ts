/**
 * The scoped connection: gated send queue, one writer fiber, a reader with
 * backpressure, and a supervisor fiber that runs the close procedure.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Scope from "effect/Scope"
import type * as Tls from "node:tls"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type * as Connection from "../Connection.js"
import { ConnectionClosed, Encoded } from "../Connection.js"
import * as DR from "../DisconnectReason.js"
import type { DisconnectReason } from "../DisconnectReason.js"
import * as Framing from "../Framing.js"
import * as Metrics from "../Metrics.js"
import * as MetricLabel from "effect/MetricLabel"
import * as StopGate from "../StopGate.js"
import * as cfg from "./config.js"
import { macrotask } from "./scheduler.js"
import * as Transport from "../Transport.js"

/** @internal */
export const defaults = {
  sendQueueCapacity: 1024,
  maxBatchFrames: 1024,
  maxBatchBytes: 256 * 1024,
  writeTimeout: "10 seconds",
  drainTimeout: "5 seconds",
  lingerTimeout: "5 seconds",
  inboundCapacity: 1024,
  maxFrameBytes: Framing.DEFAULT_MAX_FRAME_BYTES
} as const

/** Frames at least this large are written from their own buffer instead of being copied into a pack. */
const PACK_LIMIT = 64 * 1024

type Outbound = Uint8Array | Encoded

let nextId = 0

class WriteTimeoutError {
  readonly _tag = "WriteTimeoutError"
}

const logAt = (severity: "debug" | "info" | "warning" | "error") =>
  severity === "debug"
    ? Effect.logDebug
    : severity === "info"
    ? Effect.logInfo
    : severity === "warning"
    ? Effect.logWarning
    : Effect.logError

const toReason = (reason: string | DisconnectReason | undefined, fallback: (m: string) => DisconnectReason) =>
  reason === undefined ? fallback("requested") : typeof reason === "string" ? fallback(reason) : reason

const ioReason = (e: Transport.TransportError): DisconnectReason =>
  DR.IoError({ message: e.message, code: e.code })

/**
 * The metric label arrays of one label set (role, endpoint), interned: one instance per distinct set
 * for the whole process. Effect caches a metric's hook per label-array *identity* (a WeakMap); an array
 * built per connection misses that cache on every update, and each miss builds a MetricKey (hashing the
 * labels and formatting the description) and looks it up in the global registry. With arrays built per
 * connection that was ~15 misses per session (open and close), a large share of a session's CPU at
 * 10,000 sessions. The set of distinct label sets is small (the application's role/endpoint pairs).
 */
interface LabelSet {
  readonly tags: ReadonlyArray<MetricLabel.MetricLabel>
  readonly stateTags: Record<Connection.State, ReadonlyArray<MetricLabel.MetricLabel>>
  readonly reasonTags: (reason: string) => ReadonlyArray<MetricLabel.MetricLabel>
}
const labelSets = new Map<string, LabelSet>()
const labelSetOf = (labels: Metrics.Labels | undefined): LabelSet => {
  const tags = Metrics.labelsOf(labels)
  const key = tags.map((l) => `${l.key}\u0000${l.value}`).join("\u0001")
  const known = labelSets.get(key)
  if (known !== undefined) return known
  const byReason = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  const set: LabelSet = {
    tags,
    stateTags: {
      Active: [...tags, MetricLabel.make("state", "Active")],
      Draining: [...tags, MetricLabel.make("state", "Draining")],
      Closing: [...tags, MetricLabel.make("state", "Closing")],
      Closed: [...tags, MetricLabel.make("state", "Closed")]
    },
    reasonTags: (reason) => {
      let t = byReason.get(reason)
      if (t === undefined) {
        t = [...tags, MetricLabel.make("reason", reason)]
        byReason.set(reason, t)
      }
      return t
    }
  }
  labelSets.set(key, set)
  return set
}

/** @internal */
export const make = (
  transport: Transport.Transport,
  options?: Connection.Options,
  /** Internal observers: `onState` runs synchronously on every state change (the listener's registry). */
  hooks?: { readonly onState?: ((state: Connection.State) => void) | undefined }
): Effect.Effect<Connection.Connection, never, Scope.Scope> =>
  Effect.gen(function*() {
    const id = options?.id ?? `conn-${++nextId}`
    const codec = options?.codec ?? Framing.lengthPrefixed()
    const maxBatchFrames = options?.maxBatchFrames ?? defaults.maxBatchFrames
    const maxBatchBytes = options?.maxBatchBytes ?? defaults.maxBatchBytes
    const writeTimeout = Duration.decode(options?.writeTimeout ?? defaults.writeTimeout)
    const drainTimeout = Duration.decode(options?.drainTimeout ?? defaults.drainTimeout)
    const lingerTimeout = Duration.decode(options?.lingerTimeout ?? defaults.lingerTimeout)

    // the write-deadline fiber lives in a child scope: it closes after the graceful close (added last) has run
    const deadlineScope = yield* Effect.flatMap(Effect.scope, (scope) => Scope.fork(scope, ExecutionStrategy.sequential))
    const gate = StopGate.unsafeMake<DisconnectReason>()
    const weight = (o: Outbound) => (o instanceof Encoded ? o.bytes.length : codec.encodedLength(o))
    const queue = StopGate.unsafeMakeQueue<Outbound, DisconnectReason>(gate, {
      capacity: options?.sendQueueCapacity ?? defaults.sendQueueCapacity,
      weight
    })
    const inbound = yield* Mailbox.make<Uint8Array>({ capacity: options?.inboundCapacity ?? defaults.inboundCapacity })
    // metric label arrays are shared by every connection with the same labels (see `labelSetOf`)
    const labelSet = labelSetOf(options?.labels)
    const tags = labelSet.tags
    const stateTags = labelSet.stateTags
    const stateRef = yield* SubscriptionRef.make<Connection.State>("Active")
    let currentState: Connection.State = "Active"
    Metrics.connects.unsafeUpdate(1, tags)
    Metrics.connections.unsafeModify(1, stateTags.Active)
    const setState = (s: Connection.State) =>
      Effect.suspend(() => {
        if (currentState !== "Closed") Metrics.connections.unsafeModify(-1, stateTags[currentState])
        if (s !== "Closed") Metrics.connections.unsafeModify(1, stateTags[s])
        currentState = s
        hooks?.onState?.(s)
        return SubscriptionRef.set(stateRef, s)
      })
    // the send-queue gauge moves by deltas, once per write batch
    let reportedDepth = 0
    const reportDepth = () => {
      const depth = queue.size()
      if (depth !== reportedDepth) {
        Metrics.sendQueueDepth.unsafeModify(depth - reportedDepth, tags)
        reportedDepth = depth
      }
    }

    const startedAt = yield* Clock.currentTimeMillis
    let framesIn = 0
    let framesOut = 0
    let bytesOut = 0
    let lastReadAt = startedAt
    let lastWriteAt = startedAt
    let discardedInbound = 0
    let inFlight: Array<Outbound> = []
    let inFlightChunks: ReadonlyArray<Uint8Array> | undefined // what `inFlight` was encoded into

    // close requests: the first reason wins; an abort request can cut a graceful close short
    const closeRequest = Deferred.unsafeMake<{ reason: DisconnectReason; mode: "graceful" | "abort" }>(
      undefined as never
    )
    const abortRequest = Deferred.unsafeMake<void>(undefined as never)
    const peerEof = Deferred.unsafeMake<void>(undefined as never)
    const outcomeDeferred = Deferred.unsafeMake<Connection.CloseOutcome>(undefined as never)

    let aborted = false
    let eofSeen = false
    const unsafeRequestClose = (reason: DisconnectReason, mode: "graceful" | "abort") => {
      Deferred.unsafeDone(closeRequest, Effect.succeed({ reason, mode }))
      if (mode === "abort") {
        aborted = true
        Deferred.unsafeDone(abortRequest, Effect.void)
      }
    }
    const signalEof = () => {
      eofSeen = true
      Deferred.unsafeDone(peerEof, Effect.void)
    }
    const annotate = Effect.annotateLogs({ connection: id, remote: transport.remoteAddress ?? "?" })

    // ---- writer: the only code that writes to the transport ----
    const encodeBatch = (batch: ReadonlyArray<Outbound>): Array<Uint8Array> => {
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

    // ---- write deadline ----
    // One fiber per connection enforces writeTimeout, instead of a timer and two forked fibers
    // (Effect.timeoutFail) per write: it sleeps until the deadline of the write in progress, then
    // re-reads which write is in progress; if that write started writeTimeout ago or earlier, it
    // ends the connection with WriteTimeout. With back-to-back writes it wakes once per writeTimeout.
    let writeStartedAt: bigint | undefined // Clock nanos when the write in progress started
    let wakeDeadline: (() => void) | undefined
    const beginWrite = (nanos: bigint) => {
      writeStartedAt = nanos
      if (wakeDeadline !== undefined) {
        const wake = wakeDeadline
        wakeDeadline = undefined
        wake()
      }
    }
    const awaitWriteStart = Effect.async<void>((resume) => {
      wakeDeadline = () => resume(Effect.void)
      return Effect.sync(() => {
        wakeDeadline = undefined
      })
    })
    const writeDeadline = (timeoutNanos: bigint): Effect.Effect<void> => {
      const loop: Effect.Effect<void> = Effect.flatMap(Clock.currentTimeNanos, (now) => {
        const started = writeStartedAt
        if (started === undefined) return Effect.zipRight(awaitWriteStart, loop)
        const left = started + timeoutNanos - now
        if (left > 0n) return Effect.zipRight(Effect.sleep(Duration.nanos(left)), loop)
        return Effect.sync(() =>
          unsafeRequestClose(
            DR.WriteTimeout({ timeout: writeTimeout, queuedBytes: transport.stats().queuedBytes }),
            "abort"
          )
        )
      })
      return loop
    }

    // started by the first write (idle connections do not pay for it); an infinite writeTimeout has none
    const writeTimeoutNanos = Option.getOrUndefined(Duration.toNanos(writeTimeout))
    let deadlineFiber: Fiber.RuntimeFiber<void> | undefined
    const startDeadline = (timeoutNanos: bigint) =>
      Effect.map(Effect.forkIn(writeDeadline(timeoutNanos), deadlineScope), (fiber) => {
        deadlineFiber = fiber
      })

    const writeBatch = (batch: Array<Outbound>) =>
      Effect.flatMap(Clock.currentTimeNanos, (startedNanos) => {
        inFlight = batch
        reportDepth()
        const chunks = encodeBatch(batch)
        inFlightChunks = chunks
        beginWrite(startedNanos)
        const write = deadlineFiber === undefined && writeTimeoutNanos !== undefined
          ? Effect.zipRight(startDeadline(writeTimeoutNanos), transport.write(chunks))
          : transport.write(chunks)
        return write.pipe(
          Effect.zipRight(Clock.currentTimeNanos),
          Effect.map((nowNanos) => {
            writeStartedAt = undefined
            inFlight = []
            inFlightChunks = undefined
            let bytes = 0
            for (const c of chunks) bytes += c.length
            framesOut += batch.length
            bytesOut += bytes
            lastWriteAt = Number(nowNanos / 1_000_000n)
            Metrics.framesOut.unsafeUpdate(batch.length, tags)
            Metrics.bytesOut.unsafeUpdate(bytes, tags)
            Metrics.writeLatency.unsafeUpdate(Number(nowNanos - startedNanos) / 1e9, tags)
          })
        )
      })
    // control writes of the transport (e.g. WebSocket PONGs) go first, each with its own deadline
    const control = transport.control
    control?.unsafeOnPending(() => queue.unsafeNotify())
    const writeControl = (): Effect.Effect<void, Transport.TransportError | WriteTimeoutError> => {
      const pending = control?.unsafeTake()
      if (pending === undefined || pending.length === 0) return Effect.void
      return Effect.forEach(
        pending,
        (w) => Effect.timeoutFail(w, { duration: writeTimeout, onTimeout: () => new WriteTimeoutError() }),
        { discard: true }
      )
    }
    // true while the writer waits in `awaitItems` with nothing in hand (see the drain in the close below)
    let writerWaiting = false
    const awaitItems = Effect.suspend(() => {
      writerWaiting = true
      return Effect.map(queue.awaitItems, (more) => {
        writerWaiting = false
        return more
      })
    })
    const writerLoop: Effect.Effect<void, Transport.TransportError | WriteTimeoutError> = Effect.flatMap(
      awaitItems,
      (more) => {
        if (!more) return Effect.void
        const batch = queue.unsafeTakeUpTo(maxBatchFrames, maxBatchBytes)
        const data = batch.length === 0 ? writerLoop : Effect.zipRight(writeBatch(batch), writerLoop)
        return control === undefined ? data : Effect.zipRight(writeControl(), data)
      }
    )
    const writer = writerLoop.pipe(
      Effect.catchAll((e) =>
        Effect.sync(() => {
          writeStartedAt = undefined
          const reason = e._tag === "WriteTimeoutError"
            ? DR.WriteTimeout({ timeout: writeTimeout, queuedBytes: transport.stats().queuedBytes })
            : ioReason(e)
          unsafeRequestClose(reason, "abort")
        })
      )
    )

    // ---- reader: decode, deliver with backpressure, watch for EOF ----
    const decoder = codec.makeDecoder()
    let decoding = true
    const deliver = (frames: Array<Uint8Array>): Effect.Effect<void> => {
      for (let i = 0; i < frames.length; i++) {
        const f = frames[i]!
        if (inbound.unsafeOffer(f)) {
          framesIn++
          continue
        }
        if (Option.isSome(gate.unsafeReason())) {
          // closing: nobody may be consuming any more; never block the EOF wait
          discardedInbound++
          continue
        }
        // consumer is slow: wait for room (the socket stays paused meanwhile), unless the gate closes
        const rest = frames.slice(i)
        return Effect.raceFirst(
          Effect.map(inbound.offer(f), () => true),
          Effect.as(StopGate.await(gate), false)
        ).pipe(Effect.flatMap((offered) => {
          if (offered) framesIn++
          else discardedInbound++
          return deliver(rest.slice(1))
        }))
      }
      return Effect.void
    }
    const readerLoop: Effect.Effect<void, Transport.TransportError> = Effect.flatMap(
      transport.read,
      (chunks): Effect.Effect<void, Transport.TransportError> => {
        if (chunks.length === 0) {
          signalEof()
          unsafeRequestClose(DR.PeerClosed(), "graceful")
          return Effect.void
        }
        let bytes = 0
        for (const c of chunks) bytes += c.length
        Metrics.bytesIn.unsafeUpdate(bytes, tags)
        if (!decoding) return readerLoop // a framing error ended delivery: discard until EOF
        const frames: Array<Uint8Array> = []
        for (const c of chunks) {
          const err = decoder.decode(c, frames)
          if (err) {
            decoding = false
            unsafeRequestClose(
              err.reason === "FrameTooLarge"
                ? DR.FrameTooLarge({ size: err.size ?? 0, max: err.max ?? codec.maxFrameBytes })
                : DR.MalformedFrame({ message: err.message }),
              "graceful"
            )
            break
          }
        }
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          lastReadAt = now
          if (frames.length > 0) Metrics.framesIn.unsafeUpdate(frames.length, tags)
          return Effect.zipRight(deliver(frames), readerLoop)
        })
      }
    )
    const reader = readerLoop.pipe(
      Effect.catchAll((e) =>
        Effect.sync(() => {
          signalEof()
          unsafeRequestClose(ioReason(e), "abort")
        })
      )
    )

    // the writer resumes on a macrotask so that synchronous socket writes cannot starve the event loop
    // The fibers inherit the log annotations at the fork: annotating inside each fiber instead would
    // keep a copy of the annotations and a restore frame alive per fiber (~3 KB each while suspended).
    const [writerFiber, readerFiber] = yield* annotate(Effect.all([
      Effect.forkScoped(Effect.withScheduler(writer, macrotask)),
      Effect.forkScoped(reader)
    ]))

    // ---- supervisor: the close procedure, run once ----
    // Runs uninterruptibly once a close is requested; only the bounded waits inside are interruptible
    // (a race or timeout must be able to cancel its loser).
    const closeProcedure = Effect.uninterruptibleMask((restore) => Effect.gen(function*() {
      const { mode, reason } = yield* restore(Deferred.await(closeRequest))
      const requestedAt = yield* Clock.currentTimeMillis
      gate.unsafeClose(reason) // refuse new sends; waiting senders fail
      yield* Effect.logDebug(`closing (${mode}): ${DR.describe(reason)}`)
      let drained = false
      let finSent = false
      let lingerExpired = false

      const graceful = Effect.gen(function*() {
        yield* setState("Draining")
        const drainStart = yield* Clock.currentTimeMillis
        // Nothing to drain (the writer waits for items, none queued, and the transport has no control lane
        // that could still wake it with a write): the closed gate ends the writer at once, so the wait needs
        // no timeout (a timeout forks a fiber pair and a timer per close).
        const writerDone = writerWaiting && queue.size() === 0 && control === undefined
          ? Option.some(yield* Fiber.await(writerFiber))
          : yield* Fiber.await(writerFiber).pipe(Effect.timeout(drainTimeout), Effect.option)
        Metrics.drainDuration.unsafeUpdate(((yield* Clock.currentTimeMillis) - drainStart) / 1000, tags)
        if (Option.isNone(writerDone)) {
          yield* Effect.logWarning(
            `drain timeout after ${Duration.format(drainTimeout)}: ${queue.size() + inFlight.length} frames not written`
          )
          return
        }
        // the writer failed (write error or deadline): no point in a FIN
        if (aborted) return
        drained = queue.size() === 0 && inFlight.length === 0
        yield* setState("Closing")
        const fin = transport.shutdownWrite.pipe(
          Effect.tap(() => {
            finSent = true
          }),
          Effect.matchEffect({
            onFailure: () => Effect.void, // socket already gone: nothing to wait for
            onSuccess: () => Deferred.await(peerEof)
          })
        )
        const lingered = yield* Effect.timeout(fin, lingerTimeout).pipe(Effect.option)
        if (Option.isNone(lingered)) {
          lingerExpired = true
          yield* Effect.logWarning(`linger expired after ${Duration.format(lingerTimeout)}: peer never sent EOF`)
        }
      })
      if (mode === "graceful") {
        yield* restore(Effect.raceFirst(graceful, Deferred.await(abortRequest))).pipe(
          // no stack trace: capturing one costs a `new Error()` per close, paid by every session at shutdown
          Effect.withSpan("tether.close.graceful", { attributes: { "tether.connection": id }, captureStackTrace: false })
        )
      }
      // destroy: nothing below can block
      yield* Fiber.interrupt(writerFiber)
      if (deadlineFiber !== undefined) yield* Fiber.interrupt(deadlineFiber)
      yield* transport.destroy
      yield* Fiber.interrupt(readerFiber)
      // The batch in flight, split at what the kernel accepted (read by the transport right before
      // the destroy above): frames it took in full were written, a frame it took in part is on the
      // wire truncated (`outcome.truncated`), the others never reached it and are handed back.
      const undelivered: Array<Uint8Array> = []
      let truncated: Uint8Array | undefined
      if (inFlight.length > 0) {
        const accepted = inFlightChunks === undefined ? 0 : (transport.unsafeKernelAccepted?.(inFlightChunks) ?? 0)
        let offset = 0
        let written = 0
        for (const o of inFlight) {
          const end = offset + weight(o)
          if (end <= accepted) written++
          else if (offset < accepted) truncated = o instanceof Encoded ? o.payload : o
          else undelivered.push(o instanceof Encoded ? o.payload : o)
          offset = end
        }
        framesOut += written
        bytesOut += Math.min(accepted, offset)
        if (written > 0) Metrics.framesOut.unsafeUpdate(written, tags)
        if (accepted > 0) Metrics.bytesOut.unsafeUpdate(Math.min(accepted, offset), tags)
      }
      inFlight = []
      inFlightChunks = undefined
      for (const o of queue.unsafeTakeAll()) undelivered.push(o instanceof Encoded ? o.payload : o)
      yield* inbound.end
      yield* setState("Closed")
      const now = yield* Clock.currentTimeMillis
      const outcome: Connection.CloseOutcome = {
        reason,
        delivered: framesOut,
        undelivered,
        truncated,
        drained: drained && undelivered.length === 0 && truncated === undefined,
        finSent,
        peerEof: eofSeen,
        lingerExpired,
        discardedInbound,
        closeMillis: now - requestedAt
      }
      if (reportedDepth !== 0) Metrics.sendQueueDepth.unsafeModify(-reportedDepth, tags)
      reportedDepth = 0
      Metrics.disconnects.unsafeUpdate(1, labelSet.reasonTags(reason._tag))
      Metrics.closeDuration.unsafeUpdate(outcome.closeMillis / 1000, tags)
      yield* logAt(DR.severity(reason))(
        `closed: ${DR.describe(reason)}; ${framesOut} frames delivered, ${undelivered.length} undelivered${
          truncated === undefined ? "" : ", 1 truncated"
        }`
      ).pipe(Effect.annotateLogs("reason", reason._tag))
      yield* Deferred.succeed(outcomeDeferred, outcome)
    }))
    yield* annotate(Effect.forkScoped(closeProcedure))

    const closedError = (r: StopGate.GateClosed<DisconnectReason>) => new ConnectionClosed({ reason: r.reason })
    // Queues one frame. The common case (gate open, nobody waiting, room left) commits synchronously,
    // without building the waiting `offer` effect; otherwise `offer` waits in line as usual.
    const offerOne = (frame: Outbound): Effect.Effect<void, ConnectionClosed> => {
      const r = queue.unsafeTryOffer(frame)
      if (r === "accepted") return Effect.void
      if (r !== "full") return Effect.fail(closedError(r))
      return Effect.mapError(queue.offer(frame), closedError)
    }
    // Queues frames in order: synchronously while there is room, waiting (in line) only when full.
    // A close partway fails with `accepted`: how many frames (from the first) were queued.
    const offerFrom = (list: ReadonlyArray<Outbound>, from: number): Effect.Effect<void, ConnectionClosed> => {
      for (let i = from; i < list.length; i++) {
        const r = queue.unsafeTryOffer(list[i]!)
        if (r === "accepted") continue
        const accepted = i
        if (r !== "full") return Effect.fail(new ConnectionClosed({ reason: r.reason, accepted }))
        return Effect.flatMap(
          Effect.mapError(queue.offer(list[i]!), (c) => new ConnectionClosed({ reason: c.reason, accepted })),
          () => offerFrom(list, i + 1)
        )
      }
      return Effect.void
    }
    const send = (frame: Uint8Array): Effect.Effect<void, ConnectionClosed | Framing.FrameError> =>
      Effect.suspend((): Effect.Effect<void, ConnectionClosed | Framing.FrameError> => {
        const err = codec.check(frame)
        if (err) return Effect.fail(err)
        return offerOne(frame)
      })
    const trySend = (frame: Outbound) =>
      Effect.suspend((): Effect.Effect<"accepted" | "full", ConnectionClosed | Framing.FrameError> => {
        if (!(frame instanceof Encoded)) {
          const err = codec.check(frame)
          if (err) return Effect.fail(err)
        }
        const r = queue.unsafeTryOffer(frame)
        return typeof r === "string" ? Effect.succeed(r) : Effect.fail(closedError(r))
      })
    const closeWith = (mode: "graceful" | "abort", fallback: (m: string) => DisconnectReason) =>
    (reason?: string | DisconnectReason) =>
      Effect.suspend(() => {
        unsafeRequestClose(toReason(reason, fallback), mode)
        return Deferred.await(outcomeDeferred)
      })

    const unsafeStats = (): Connection.Stats => {
      const t = transport.stats()
      return {
        id,
        state: currentState,
        framesIn,
        framesOut,
        bytesIn: t.bytesRead,
        bytesOut,
        queueDepth: queue.size(),
        lastReadAt,
        lastWriteAt,
        transport: t
      }
    }

    // attachments (watchdogs) start now; their fibers are interrupted only after the close below has run
    const conn: Connection.Connection = {
      id,
      transport,
      codec,
      send,
      sendAll: (frames) =>
        Effect.suspend((): Effect.Effect<void, ConnectionClosed | Framing.FrameError> => {
          const list = Array.from(frames)
          for (const f of list) {
            const err = codec.check(f)
            if (err) return Effect.fail(err)
          }
          return offerFrom(list, 0)
        }),
      trySend: (frame) => trySend(frame),
      sendEncoded: (frame) => Effect.suspend(() => offerOne(frame)),
      trySendEncoded: (frame) => trySend(frame) as Effect.Effect<"accepted" | "full", ConnectionClosed>,
      incoming: Mailbox.toStream(inbound),
      state: SubscriptionRef.get(stateRef),
      // built on access (as SubscriptionRef's own `changes` is): an eager copy is ~2 KB per idle connection
      get stateChanges() {
        return stateRef.changes
      },
      close: closeWith("graceful", (message) => DR.LocalClose({ message })),
      abort: closeWith("abort", (message) => DR.Aborted({ message })),
      unsafeRequestClose,
      closed: Effect.map(Deferred.await(outcomeDeferred), (o) => o.reason),
      outcome: Deferred.await(outcomeDeferred),
      unsafeStats,
      stats: Effect.sync(unsafeStats)
    }
    for (const attach of options?.watchdogs ?? []) yield* attach(conn)

    // closing the scope is a graceful close (added last, so it runs before the fibers are interrupted)
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        unsafeRequestClose(DR.LocalClose({ message: "scope closed" }), "graceful")
        return Deferred.await(outcomeDeferred)
      })
    )

    yield* Effect.logDebug("connection open").pipe(annotate)
    return conn
  })

/** @internal */
export const config: Config.Config<Connection.Options> = Config.all({
  sendQueueCapacity: cfg.optional(cfg.positiveInt("TETHER_SEND_QUEUE_CAPACITY")),
  maxBatchFrames: cfg.optional(cfg.positiveInt("TETHER_MAX_BATCH_FRAMES")),
  maxBatchBytes: cfg.optional(cfg.bytes("TETHER_MAX_BATCH_BYTES")),
  writeTimeout: cfg.optional(cfg.duration("TETHER_WRITE_TIMEOUT")),
  drainTimeout: cfg.optional(cfg.duration("TETHER_DRAIN_TIMEOUT")),
  lingerTimeout: cfg.optional(cfg.duration("TETHER_LINGER_TIMEOUT")),
  inboundCapacity: cfg.optional(cfg.positiveInt("TETHER_INBOUND_CAPACITY")),
  framing: Config.literal("length-prefixed", "newline", "raw")("TETHER_FRAMING").pipe(Config.withDefault("length-prefixed")),
  maxFrameBytes: cfg.bytes("TETHER_MAX_FRAME_BYTES").pipe(Config.withDefault(defaults.maxFrameBytes))
}).pipe(
  Config.map(({ framing, maxFrameBytes, ...rest }): Connection.Options => ({
    ...rest,
    codec: framing === "newline"
      ? Framing.newline({ maxFrameBytes })
      : framing === "raw"
      ? Framing.raw({ maxFrameBytes })
      : Framing.lengthPrefixed({ maxFrameBytes })
  }))
)

/** @internal */
export const connectTcp = (
  options: Connection.Options & Transport.SocketOptions & {
    readonly host?: string | undefined
    readonly port: number
    readonly connectTimeout?: Duration.DurationInput | undefined
  }
): Effect.Effect<Connection.Connection, Transport.TransportError, Scope.Scope> =>
  Effect.flatMap(Transport.connectTcp(options), (t) => make(t, options)).pipe(
    Effect.withSpan("tether.connect", {
      attributes: { "tether.transport": "tcp", "net.peer.name": options.host ?? "127.0.0.1", "net.peer.port": options.port }
    })
  )

/** @internal */
export const connectTls = (
  options: Connection.Options & Transport.SocketOptions & Tls.ConnectionOptions & {
    readonly host?: string | undefined
    readonly port: number
    readonly connectTimeout?: Duration.DurationInput | undefined
  }
): Effect.Effect<Connection.Connection, Transport.TransportError, Scope.Scope> => {
  const {
    codec: _c,
    drainTimeout: _d,
    id: _i,
    inboundCapacity: _ic,
    lingerTimeout: _l,
    maxBatchBytes: _mb,
    maxBatchFrames: _mf,
    sendQueueCapacity: _sq,
    watchdogs: _w,
    writeTimeout: _wt,
    ...tlsOptions
  } = options
  return Effect.flatMap(Transport.connectTls(tlsOptions), (t) => make(t, options)).pipe(
    Effect.withSpan("tether.connect", {
      attributes: { "tether.transport": "tls", "net.peer.name": options.host ?? "127.0.0.1", "net.peer.port": options.port }
    })
  )
}

/** @internal */
export const layerTcp = (
  options: Parameters<typeof connectTcp>[0],
  tag: Context.Tag<Connection.Connection, Connection.Connection>
): Layer.Layer<Connection.Connection, Transport.TransportError> => Layer.scoped(tag, connectTcp(options))

