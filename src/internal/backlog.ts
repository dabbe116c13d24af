/**
 * The backlog: a FIFO of stamped frames with count, byte and age bounds, and
 * an expiry fiber that sleeps (on `Clock`) until the oldest frame is due.
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as MetricLabel from "effect/MetricLabel"
import type * as Scope from "effect/Scope"
import type * as Backlog from "../Backlog.js"
import { BacklogFull, Event } from "../Backlog.js"
import { Encoded } from "../Connection.js"
import * as Metrics from "../Metrics.js"

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

interface Entry {
  readonly item: Backlog.Item
  readonly size: number
  readonly at: number
}

/** @internal */
export const make = (options?: Backlog.Options): Effect.Effect<Backlog.Backlog, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxMessages = Math.max(0, Math.floor(options?.maxMessages ?? defaults.maxMessages))
    const maxBytes = Math.max(0, options?.maxBytes ?? defaults.maxBytes)
    const maxAge = Duration.decode(options?.maxAge ?? defaults.maxAge)
    const maxAgeMillis = Duration.isFinite(maxAge) ? Duration.toMillis(maxAge) : Number.POSITIVE_INFINITY
    const policy = options?.policy ?? defaults.policy
    const onEvent = options?.onEvent ?? (() => Effect.void)

    let entries: Array<Entry> = []
    let bytes = 0
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
      if (entries.length !== reportedDepth) {
        Metrics.backlogDepth.unsafeModify(entries.length - reportedDepth, tags)
        reportedDepth = entries.length
      }
      if (now !== undefined) {
        let oldest = Number.POSITIVE_INFINITY
        for (const e of entries) if (e.at < oldest) oldest = e.at
        Metrics.backlogOldestAge.unsafeUpdate(oldest === Number.POSITIVE_INFINITY ? 0 : (now - oldest) / 1000, tags)
      }
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (reportedDepth !== 0) Metrics.backlogDepth.unsafeModify(-reportedDepth, tags)
        Metrics.backlogOldestAge.unsafeUpdate(0, tags)
      })
    )

    const report = (event: Backlog.Event) => {
      syncDepth()
      if (event.frames.length === 0) return Effect.void
      Metrics.backlogDropped.unsafeUpdate(event.frames.length, droppedTags[event._tag])
      return onEvent(event)
    }

    const unsafeExpire = (now: number): Array<Uint8Array> => {
      if (maxAgeMillis === Number.POSITIVE_INFINITY || entries.length === 0) return []
      const expired: Array<Uint8Array> = []
      const kept: Array<Entry> = []
      for (const e of entries) {
        if (now - e.at >= maxAgeMillis) {
          expired.push(payload(e.item))
          bytes -= e.size
        } else kept.push(e)
      }
      if (expired.length > 0) entries = kept
      return expired
    }
    const expire = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const expired = unsafeExpire(now)
      syncDepth(now)
      return Effect.as(report(Event.Expired({ frames: expired })), expired)
    })

    // under dropOldest: evict from the front until `extraCount` / `extraBytes` more fit
    const unsafeEvict = (extraCount: number, extraBytes: number): Array<Uint8Array> => {
      const evicted: Array<Uint8Array> = []
      let n = 0
      while (
        n < entries.length && (entries.length - n + extraCount > maxMessages || bytes + extraBytes > maxBytes)
      ) {
        const e = entries[n]!
        evicted.push(payload(e.item))
        bytes -= e.size
        n++
      }
      if (n > 0) entries = entries.slice(n)
      return evicted
    }

    const push = (entry: Entry) => {
      entries.push(entry)
      bytes += entry.size
      syncDepth()
      if (entries.length === 1) wake()
    }

    // decides and commits synchronously; the returned effect reports and carries a refusal
    const unsafeOffer = (item: Backlog.Item, now: number): Effect.Effect<void, BacklogFull> => {
      const expired = unsafeExpire(now)
      syncDepth(now)
      const size = payload(item).length
      const entry: Entry = { item, size, at: now }
      const before = report(Event.Expired({ frames: expired }))
      const fitsAlone = maxMessages >= 1 && size <= maxBytes
      const fits = entries.length + 1 <= maxMessages && bytes + size <= maxBytes
      if (fits) {
        push(entry)
        return before
      }
      if (policy === "dropOldest" && fitsAlone) {
        const evicted = unsafeEvict(1, size)
        push(entry)
        return Effect.zipRight(before, report(Event.Evicted({ frames: evicted })))
      }
      const reason = !fitsAlone
        ? (maxMessages < 1 ? "maxMessages" : "maxBytes")
        : entries.length + 1 > maxMessages
        ? "maxMessages"
        : "maxBytes"
      const error = new BacklogFull({ reason, messages: entries.length, bytes })
      return before.pipe(
        Effect.zipRight(report(Event.Rejected({ frames: [payload(item)], reason }))),
        Effect.zipRight(Effect.fail(error))
      )
    }
    const offer = (item: Backlog.Item): Effect.Effect<void, BacklogFull> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => unsafeOffer(item, now))

    const prepend = (items: ReadonlyArray<Backlog.Item>): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (items.length === 0) return Effect.void
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const front: Array<Entry> = []
          for (const item of items) {
            const size = payload(item).length
            front.push({ item, size, at: now })
            bytes += size
          }
          const wasEmpty = entries.length === 0
          entries = front.concat(entries)
          syncDepth()
          if (wasEmpty) wake()
          if (policy !== "dropOldest") return Effect.void
          return report(Event.Evicted({ frames: unsafeEvict(0, 0) }))
        })
      })

    const unsafeTakeAll = (): Array<Backlog.Item> => {
      const out = entries.map((e) => e.item)
      entries = []
      bytes = 0
      syncDepth()
      return out
    }
    const takeAll = Effect.map(expire, () => unsafeTakeAll())

    const awaitNonEmpty = Effect.async<void>((resume) => {
      if (entries.length > 0) return resume(Effect.void)
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
          let oldest = Number.POSITIVE_INFINITY
          for (const e of entries) if (e.at < oldest) oldest = e.at
          if (oldest === Number.POSITIVE_INFINITY) return Effect.void
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
          const frames = unsafeTakeAll().map(payload)
          return Effect.as(report(Event.Discarded({ frames, reason })), frames)
        }),
      expire,
      size: () => entries.length,
      bytes: () => bytes
    }
    return backlog
  })
