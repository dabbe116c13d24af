/**
 * The backlog: a FIFO of stamped frames with count, byte and age bounds, and
 * an expiry fiber that sleeps (on `Clock`) until the oldest frame is due.
 *
 * Every operation is O(1) amortized, whatever the depth:
 *
 * - Frames sit in a ring-buffer deque in delivery order (`fifo`). `prepend`
 *   pushes at its front, `offer` at its back, eviction and `takeAll` take from
 *   its front.
 * - The same entries sit in a second deque in stamp order (`byAge`). Every
 *   insertion — offer or prepend — is stamped with the current time (never
 *   below the previous stamp), so insertion order is stamp order and the front
 *   of `byAge` is always the oldest frame: expiry pops from there and stops at
 *   the first frame not yet due, and the expiry fiber sleeps until that one is.
 * - A frame removed through one deque is marked dead and skipped (and dropped)
 *   when the other deque reaches it; a deque holding more dead entries than
 *   live ones (+64) is compacted, which costs no more than the removals that
 *   made the dead entries.
 *
 * Fairness: an offer never waits, so a storm of sends to a peer that is down
 * would run from the microtask queue without letting the event loop turn (Effect's
 * scheduler only yields to timers after 2 048 microtask rounds). Every
 * {@link OFFERS_PER_TURN}th offer, process-wide, yields to the event loop (a
 * macrotask), like the connection's writer does once per batch.
 *
 * Eviction bursts (`dropOldest`): see `Backlog.Options.policy`.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as MetricLabel from "effect/MetricLabel"
import type * as Scope from "effect/Scope"
import * as Data from "effect/Data"
import type * as Backlog from "../Backlog.js"
import { Encoded } from "../Connection.js"
import * as Metrics from "../Metrics.js"
import { macrotask } from "./scheduler.js"

/** @internal */
export class BacklogFull extends Data.TaggedError("BacklogFull")<{
  readonly reason: "maxMessages" | "maxBytes"
  /** Frames held when the offer was refused. */
  readonly messages: number
  /** Payload bytes held when the offer was refused. */
  readonly bytes: number
}> {
  override get message() {
    return `backlog full (${this.reason}): ${this.messages} frames, ${this.bytes} bytes held`
  }
}

/** @internal */
export const Event: Data.TaggedEnum.Constructor<Backlog.Event> = Data.taggedEnum<Backlog.Event>()

/** @internal */
export const defaults = {
  maxMessages: 10_000,
  maxBytes: 16 * 1024 * 1024,
  maxAge: "5 minutes",
  policy: "rejectNew",
  keepAcrossPeriods: false
} as const

/** @internal */
export const payload = (item: Backlog.Item): Uint8Array => (item instanceof Encoded ? item.payload : item)

/** Offers (over every backlog of the process) between two yields to the event loop. @internal */
export const OFFERS_PER_TURN = 256

let offersSinceTurn = 0
const yieldToEventLoop: Effect.Effect<void> = Effect.withScheduler(Effect.yieldNow(), macrotask)
/** Counts one offer; every OFFERS_PER_TURN-th returns a yield to the event loop. */
const fairnessTick = (): Effect.Effect<void> => {
  if (++offersSinceTurn < OFFERS_PER_TURN) return Effect.void
  offersSinceTurn = 0
  return yieldToEventLoop
}

/**
 * A growable ring buffer with a power-of-two capacity: push and pop at both
 * ends in O(1) amortized; shrinks when a quarter full.
 * @internal
 */
export class Deque<A> {
  private buf: Array<A | undefined> = new Array(16)
  private head = 0
  length = 0

  front(): A | undefined {
    return this.length === 0 ? undefined : this.buf[this.head]
  }
  get(i: number): A {
    return this.buf[(this.head + i) & (this.buf.length - 1)] as A
  }
  pushBack(a: A): void {
    if (this.length === this.buf.length) this.resize(this.buf.length * 2)
    this.buf[(this.head + this.length) & (this.buf.length - 1)] = a
    this.length++
  }
  pushFront(a: A): void {
    if (this.length === this.buf.length) this.resize(this.buf.length * 2)
    this.head = (this.head - 1) & (this.buf.length - 1)
    this.buf[this.head] = a
    this.length++
  }
  popFront(): A | undefined {
    if (this.length === 0) return undefined
    const a = this.buf[this.head]
    this.buf[this.head] = undefined
    this.head = (this.head + 1) & (this.buf.length - 1)
    this.length--
    if (this.buf.length > 64 && this.length <= this.buf.length >>> 2) this.resize(this.buf.length >>> 1)
    return a
  }
  /** Keeps, in order, the elements for which `keep` holds. O(length). */
  retain(keep: (a: A) => boolean): void {
    const old = this.buf
    const mask = old.length - 1
    let cap = 16
    let n = 0
    for (let i = 0; i < this.length; i++) if (keep(old[(this.head + i) & mask] as A)) n++
    while (cap < n) cap *= 2
    const next: Array<A | undefined> = new Array(cap)
    let j = 0
    for (let i = 0; i < this.length; i++) {
      const a = old[(this.head + i) & mask] as A
      if (keep(a)) next[j++] = a
    }
    this.buf = next
    this.head = 0
    this.length = n
  }
  private resize(cap: number): void {
    const next: Array<A | undefined> = new Array(cap)
    for (let i = 0; i < this.length; i++) next[i] = this.get(i)
    this.buf = next
    this.head = 0
  }
}

interface Entry {
  readonly item: Backlog.Item
  readonly size: number
  readonly at: number
  /** False once removed (through either deque). */
  live: boolean
}
const isLive = (e: Entry) => e.live

/** @internal */
export const make = (options?: Backlog.Options): Effect.Effect<Backlog.Backlog, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxMessages = Math.max(0, Math.floor(options?.maxMessages ?? defaults.maxMessages))
    const maxBytes = Math.max(0, options?.maxBytes ?? defaults.maxBytes)
    const maxAge = Duration.decode(options?.maxAge ?? defaults.maxAge)
    const maxAgeMillis = Duration.isFinite(maxAge) ? Duration.toMillis(maxAge) : Number.POSITIVE_INFINITY
    const policy = options?.policy ?? defaults.policy
    const onEvent = options?.onEvent ?? (() => Effect.void)
    const endpoint = options?.labels?.endpoint ?? "default"

    // delivery order; stamp order (see the module comment)
    let fifo = new Deque<Entry>()
    let byAge = new Deque<Entry>()
    let count = 0
    let bytes = 0
    let lastStamp = Number.NEGATIVE_INFINITY
    const stamp = (now: number) => (lastStamp = now > lastStamp ? now : lastStamp)

    const kill = (e: Entry) => {
      e.live = false
      count--
      bytes -= e.size
    }
    /** Drops dead entries at the fronts; compacts a deque that holds more dead entries than live ones. */
    const tidy = () => {
      while (fifo.length > 0 && !fifo.front()!.live) fifo.popFront()
      while (byAge.length > 0 && !byAge.front()!.live) byAge.popFront()
      if (fifo.length > 2 * count + 64) fifo.retain(isLive)
      if (byAge.length > 2 * count + 64) byAge.retain(isLive)
    }
    /** The oldest live entry's stamp, if any. */
    const oldestAt = (): number | undefined => {
      while (byAge.length > 0 && !byAge.front()!.live) byAge.popFront()
      return byAge.front()?.at
    }

    // wakes the expiry fiber when the backlog goes from empty to non-empty
    let wakeExpiry: (() => void) | undefined
    const wake = () => {
      if (wakeExpiry !== undefined) {
        const w = wakeExpiry
        wakeExpiry = undefined
        w()
      }
    }

    // metrics: depth moves by deltas after every change; frames leaving other than by replay are counted
    const tags = Metrics.labelsOf(options?.labels)
    const droppedTags = {
      Expired: [...tags, MetricLabel.make("outcome", "expired")],
      Evicted: [...tags, MetricLabel.make("outcome", "evicted")],
      Rejected: [...tags, MetricLabel.make("outcome", "rejected")],
      Discarded: [...tags, MetricLabel.make("outcome", "discarded")]
    } as const
    let reportedDepth = 0
    // depth by delta; the oldest frame's age as of this change (no periodic timer: TestClock-friendly)
    const syncDepth = (now?: number) => {
      if (count !== reportedDepth) {
        Metrics.backlogDepth.unsafeModify(count - reportedDepth, tags)
        reportedDepth = count
      }
      if (now !== undefined) {
        const oldest = oldestAt()
        Metrics.backlogOldestAge.unsafeUpdate(oldest === undefined ? 0 : Math.max(0, now - oldest) / 1000, tags)
      }
    }

    /** Reports an event; its frames are counted as dropped unless they were when evicted (`counted`). */
    const report = (event: Backlog.Event, counted = false) => {
      syncDepth()
      if (event.frames.length === 0) return Effect.void
      if (!counted) Metrics.backlogDropped.unsafeUpdate(event.frames.length, droppedTags[event._tag])
      return onEvent(event)
    }
    const annotate = Effect.annotateLogs({ backlog: endpoint })
    const reportEvicted = (frames: Array<Uint8Array>): Effect.Effect<void> => {
      if (frames.length === 0) return Effect.void
      let size = 0
      for (const f of frames) size += f.length
      return Effect.zipRight(
        annotate(Effect.logWarning(
          `backlog overflow (dropOldest): ${frames.length} oldest frames (${size} bytes) evicted; ${count} held`
        )),
        report(Event.Evicted({ frames }), true)
      )
    }

    // ---- eviction bursts: consecutive evictions, reported as one event (see Backlog.Options.policy) ----
    let burst: Array<Uint8Array> = []
    let wakeReporter: (() => void) | undefined
    /** Ends the current burst now: takes it (synchronously) and returns its report. */
    const endBurst = (): Effect.Effect<void> => {
      if (burst.length === 0) return Effect.void
      const frames = burst
      burst = []
      return reportEvicted(frames)
    }
    const awaitBurst = Effect.async<void>((resume) => {
      if (burst.length > 0) return resume(Effect.void)
      const w = () => resume(Effect.void)
      wakeReporter = w
      return Effect.sync(() => {
        if (wakeReporter === w) wakeReporter = undefined
      })
    })
    // the reporter: runs as soon as the evicting fiber yields, and reports the burst it made
    // (uninterruptible: a burst taken is reported, also when the scope closes meanwhile)
    yield* Effect.forkScoped(
      Effect.forever(Effect.zipRight(awaitBurst, Effect.uninterruptible(Effect.suspend(endBurst))))
    )
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const last = endBurst() // a burst still open when the scope closes is reported, not lost
        if (reportedDepth !== 0) Metrics.backlogDepth.unsafeModify(-reportedDepth, tags)
        reportedDepth = 0
        Metrics.backlogOldestAge.unsafeUpdate(0, tags)
        return last
      })
    )

    // warning once per run of refusals (rejectNew): the first refusal after an accepted offer or a take
    let refusing = false

    const unsafeExpire = (now: number): Array<Uint8Array> => {
      if (maxAgeMillis === Number.POSITIVE_INFINITY || count === 0) return []
      const expired: Array<Uint8Array> = []
      while (byAge.length > 0) {
        const e = byAge.front()!
        if (e.live && now - e.at < maxAgeMillis) break
        byAge.popFront()
        if (!e.live) continue
        kill(e)
        expired.push(payload(e.item))
      }
      if (expired.length > 0) tidy()
      return expired
    }
    const expire = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const pending = endBurst() // evictions before these expirations are reported first
      const expired = unsafeExpire(now)
      syncDepth(now)
      return pending.pipe(Effect.zipRight(report(Event.Expired({ frames: expired }))), Effect.as(expired))
    })

    /** Evicts from the front until `extraCount` / `extraBytes` more fit; the evicted payloads go to `into`. */
    // (the metric counts them at once; the event follows with the burst)
    const unsafeEvict = (extraCount: number, extraBytes: number, into: Array<Uint8Array>): void => {
      let n = 0
      while (count > 0 && (count + extraCount > maxMessages || bytes + extraBytes > maxBytes)) {
        let e = fifo.popFront()!
        while (!e.live) e = fifo.popFront()!
        kill(e)
        into.push(payload(e.item))
        n++
      }
      if (n > 0) Metrics.backlogDropped.unsafeUpdate(n, droppedTags.Evicted)
      tidy()
    }

    const push = (entry: Entry) => {
      fifo.pushBack(entry)
      byAge.pushBack(entry)
      count++
      bytes += entry.size
      syncDepth()
      if (count === 1) wake()
    }

    // decides and commits synchronously; the returned effect reports and carries a refusal
    const unsafeOffer = (item: Backlog.Item, now: number): Effect.Effect<void, BacklogFull> => {
      const expired = unsafeExpire(now)
      const size = payload(item).length
      const fitsAlone = maxMessages >= 1 && size <= maxBytes
      const fits = count + 1 <= maxMessages && bytes + size <= maxBytes
      if (!fits && expired.length === 0 && policy === "dropOldest" && fitsAlone) {
        // the burst goes on: nothing else was reported since its previous eviction
        const wasEmpty = burst.length === 0
        unsafeEvict(1, size, burst)
        push({ item, size, at: stamp(now), live: true })
        syncDepth(now)
        if (wasEmpty && burst.length > 0 && wakeReporter !== undefined) {
          const w = wakeReporter
          wakeReporter = undefined
          w()
        }
        return fairnessTick()
      }
      // anything else ends the burst first (so events stay in order)
      const before = burst.length === 0 && expired.length === 0
        ? Effect.void
        : Effect.zipRight(endBurst(), report(Event.Expired({ frames: expired })))
      if (fits) {
        push({ item, size, at: stamp(now), live: true })
        syncDepth(now)
        refusing = false
        return before === Effect.void ? fairnessTick() : Effect.zipRight(before, fairnessTick())
      }
      if (policy === "dropOldest" && fitsAlone) {
        // expirations came first: these evictions open a new burst
        unsafeEvict(1, size, burst)
        push({ item, size, at: stamp(now), live: true })
        syncDepth(now)
        if (burst.length > 0 && wakeReporter !== undefined) {
          const w = wakeReporter
          wakeReporter = undefined
          w()
        }
        return Effect.zipRight(before, fairnessTick())
      }
      syncDepth(now)
      const reason = !fitsAlone
        ? (maxMessages < 1 ? "maxMessages" : "maxBytes")
        : count + 1 > maxMessages
        ? "maxMessages"
        : "maxBytes"
      const error = new BacklogFull({ reason, messages: count, bytes })
      const log = refusing ? Effect.void : annotate(Effect.logWarning(
        `backlog overflow (${policy}): full (${reason}, ${count} frames, ${bytes} bytes held); refusing new frames`
      ))
      refusing = true
      return before.pipe(
        Effect.zipRight(log),
        Effect.zipRight(report(Event.Rejected({ frames: [payload(item)], reason }))),
        Effect.zipRight(fairnessTick()),
        Effect.zipRight(Effect.fail(error))
      )
    }
    const offer = (item: Backlog.Item): Effect.Effect<void, BacklogFull> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => unsafeOffer(item, now))

    const prepend = (items: ReadonlyArray<Backlog.Item>): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (items.length === 0) return Effect.void
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const pending = endBurst()
          const at = stamp(now)
          const wasEmpty = count === 0
          const batch: Array<Entry> = new Array(items.length)
          for (let i = 0; i < items.length; i++) {
            const item = items[i]!
            const e: Entry = { item, size: payload(item).length, at, live: true }
            batch[i] = e
            byAge.pushBack(e) // one stamp for the batch, the newest: stamp order holds (ties in delivery order)
            count++
            bytes += e.size
          }
          for (let i = batch.length - 1; i >= 0; i--) fifo.pushFront(batch[i]!)
          syncDepth(now)
          if (wasEmpty) wake()
          if (policy !== "dropOldest") return pending
          // the evictions of one prepend are a burst of their own, reported at once
          const evicted: Array<Uint8Array> = []
          unsafeEvict(0, 0, evicted)
          return Effect.zipRight(pending, reportEvicted(evicted))
        })
      })

    const unsafeTakeAll = (): Array<Backlog.Item> => {
      const out: Array<Backlog.Item> = new Array(count)
      let j = 0
      for (let i = 0; i < fifo.length; i++) {
        const e = fifo.get(i)
        if (e.live) {
          e.live = false
          out[j++] = e.item
        }
      }
      fifo = new Deque()
      byAge = new Deque()
      count = 0
      bytes = 0
      refusing = false
      syncDepth()
      return out
    }
    // pending evictions are reported before the frames behind them are handed out
    const takeAll = Effect.flatMap(expire, () => Effect.suspend(() => Effect.as(endBurst(), unsafeTakeAll())))

    const awaitNonEmpty = Effect.async<void>((resume) => {
      if (count > 0) return resume(Effect.void)
      const w = () => resume(Effect.void)
      wakeExpiry = w
      return Effect.sync(() => {
        if (wakeExpiry === w) wakeExpiry = undefined
      })
    })
    if (maxAgeMillis !== Number.POSITIVE_INFINITY) {
      // the expiry fiber: sleep until the oldest frame is due, expire, repeat
      const step = Effect.zipRight(
        awaitNonEmpty,
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const oldest = oldestAt()
          if (oldest === undefined) return Effect.void
          const due = oldest + maxAgeMillis
          return due <= now ? expire : Effect.zipRight(Effect.sleep(Duration.millis(due - now)), expire)
        })
      )
      yield* Effect.forkScoped(Effect.forever(step))
    }

    const backlog: Backlog.Backlog = {
      maxMessages,
      maxBytes,
      maxAgeMillis,
      policy,
      keepAcrossPeriods: options?.keepAcrossPeriods ?? defaults.keepAcrossPeriods,
      offer,
      unsafeOffer,
      prepend,
      takeAll,
      drainAll: Effect.map(takeAll, (items) => items.map(payload)),
      discardAll: (reason) =>
        Effect.suspend(() => {
          const pending = endBurst()
          const frames = unsafeTakeAll().map(payload)
          return pending.pipe(Effect.zipRight(report(Event.Discarded({ frames, reason }))), Effect.as(frames))
        }),
      expire,
      size: () => count,
      bytes: () => bytes
    }
    return backlog
  })
