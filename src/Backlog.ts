/**
 * A bounded backlog for the frames sent while a peer is disconnected.
 *
 * Bounded three ways — `maxMessages`, `maxBytes` (payload bytes) and `maxAge`
 * (measured with `Clock`) — and never silent: when it is full the chosen
 * {@link Policy} applies (`rejectNew`: that offer fails with
 * {@link BacklogFull}; `dropOldest`: the evicted frames are reported), frames
 * whose age reaches `maxAge` are removed and reported as expired (a fiber in
 * the backlog's scope wakes exactly when the oldest frame is due), and
 * `drainAll` hands what is left back to the caller. Every frame that went in
 * comes out exactly once: taken (for replay), evicted, expired, discarded or
 * drained.
 *
 * Every operation is O(1) amortized whatever the depth, and an offer never
 * waits; so that a storm of offers (sends to a peer that is down) cannot starve
 * the event loop, every 256th offer (process-wide) yields to it.
 *
 * @since 0.1.0
 */
import type * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Connection from "./Connection.js"
import type * as Metrics from "./Metrics.js"
import * as internal from "./internal/backlog.js"

/**
 * An offer the backlog cannot take: it is at `maxMessages` or `maxBytes`
 * (under `rejectNew`), or the frame alone is larger than `maxBytes`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Backlog } from "effect-tether"
 *
 * const offerOrLog = (backlog: Backlog.Backlog, frame: Uint8Array) =>
 *   backlog.offer(frame).pipe(
 *     Effect.catchTag("BacklogFull", (e) => Effect.logWarning(`backlog full (${e.reason})`))
 *   )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const BacklogFull: typeof internal.BacklogFull = internal.BacklogFull

/**
 * The instance type of {@link BacklogFull}.
 *
 * @example
 * ```ts
 * import type { Backlog } from "effect-tether"
 *
 * const describe = (e: Backlog.BacklogFull) => `${e.reason}: ${e.messages} frames, ${e.bytes} bytes`
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type BacklogFull = internal.BacklogFull

/**
 * What happens to an offer when the backlog is full.
 *
 * @example
 * ```ts
 * import type { Backlog } from "effect-tether"
 *
 * const p: Backlog.Policy = "dropOldest"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Policy = "rejectNew" | "dropOldest"

/**
 * A backlog entry: a payload, or a pre-encoded frame (a shared broadcast buffer).
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 * import type { Backlog } from "effect-tether"
 *
 * const item: Backlog.Item = Framing.utf8("order 1")
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Item = Uint8Array | Connection.Encoded

/**
 * Frames leaving the backlog other than by being taken for delivery.
 *
 * - `Evicted`: pushed out by newer frames (`dropOldest`), one event per eviction
 *   burst (see {@link Options.policy}).
 * - `Rejected`: refused on offer (`rejectNew`, or a frame larger than `maxBytes`).
 * - `Expired`: their age reached `maxAge`.
 * - `Discarded`: cleared on purpose (e.g. a new session period).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Backlog } from "effect-tether"
 *
 * const log = (e: Backlog.Event) => Effect.logWarning(`${e._tag}: ${e.frames.length} frames`)
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type Event = Data.TaggedEnum<{
  Evicted: { readonly frames: ReadonlyArray<Uint8Array> }
  Rejected: { readonly frames: ReadonlyArray<Uint8Array>; readonly reason: "maxMessages" | "maxBytes" }
  Expired: { readonly frames: ReadonlyArray<Uint8Array> }
  Discarded: { readonly frames: ReadonlyArray<Uint8Array>; readonly reason: string }
}>

/**
 * Constructors for {@link Event}.
 *
 * @example
 * ```ts
 * import { Backlog } from "effect-tether"
 *
 * const e = Backlog.Event.Expired({ frames: [] })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const Event: Data.TaggedEnum.Constructor<Event> = internal.Event

/**
 * Backlog bounds and policy. Every option has a default.
 *
 * @example
 * ```ts
 * import type { Backlog } from "effect-tether"
 *
 * const options: Backlog.Options = {
 *   maxMessages: 10_000,
 *   maxBytes: 8 * 1024 * 1024,
 *   maxAge: "2 minutes",
 *   policy: "dropOldest"
 * }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Most frames held (default 10 000). */
  readonly maxMessages?: number | undefined
  /** Most payload bytes held (default 16 MiB). */
  readonly maxBytes?: number | undefined
  /** A frame expires when its age reaches this (default 5 minutes; `Duration.infinity` for never). */
  readonly maxAge?: Duration.DurationInput | undefined
  /**
   * What a full backlog does with an offer (default `"rejectNew"`). Under `rejectNew` a refused frame is
   * reported twice on purpose — to its sender (the offer fails with {@link BacklogFull}) and as a `Rejected`
   * event (a dialer's `BacklogOverflow`) for monitoring: count losses from one of the two, not both; a warning
   * is logged once per run of refusals (until an offer is accepted or the backlog is taken).
   *
   * Under `dropOldest` evictions are reported in bursts. A burst is the frames evicted by consecutive offers
   * with no other backlog event between them; it is reported as one `Evicted` event carrying all of them (in
   * eviction order) and one warning log line, as soon as the evicting fiber yields (a storm of offers yields
   * every 256 offers, so at the latest then), or earlier by the next operation that does anything else — an
   * offer that fits, a refusal, an expiry, `prepend`, `takeAll`, `drainAll`, `discardAll` or the scope closing
   * — which reports it first, so events stay in order. The evictions of one `prepend` are a burst of their own.
   * Every evicted frame is in exactly one event.
   */
  readonly policy?: Policy | undefined
  /** Whether frames held at a session-period rollover are kept for the next period (default false: discarded and reported). */
  readonly keepAcrossPeriods?: boolean | undefined
  /**
   * Called for every frame leaving the backlog other than by `takeAll` / `drainAll` (eviction bursts from
   * the backlog's own fiber, the other events from the operation's). Must not block.
   */
  readonly onEvent?: ((event: Event) => Effect.Effect<void>) | undefined
  /** Metric labels (a dialer passes its own); see the Metrics module. */
  readonly labels?: Metrics.Labels | undefined
}

/**
 * A bounded backlog. Make one with {@link make}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backlog, Framing } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const backlog = yield* Backlog.make({ maxMessages: 2, policy: "dropOldest" })
 *     yield* backlog.offer(Framing.utf8("a"))
 *     const replay = yield* backlog.takeAll // ["a"]
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Backlog {
  readonly maxMessages: number
  readonly maxBytes: number
  /** Millis; `Infinity` when frames never expire. */
  readonly maxAgeMillis: number
  readonly policy: Policy
  readonly keepAcrossPeriods: boolean
  /** Adds a frame at the back (expiring due frames first), applying the policy when full. */
  readonly offer: (item: Item) => Effect.Effect<void, BacklogFull>
  /**
   * `offer` at a given Clock time, for callers that must check something and
   * commit in one synchronous step: the frame is committed (or refused) when
   * this is called; the returned effect reports the events and fails with the
   * refusal.
   */
  readonly unsafeOffer: (item: Item, now: number) => Effect.Effect<void, BacklogFull>
  /**
   * Puts frames that were already accepted back at the front, in order (e.g.
   * the undelivered frames of a connection that closed). They are never
   * refused; under `dropOldest` the bounds are then restored by evicting the
   * oldest frames (reported), under `rejectNew` the backlog may stay over its
   * bounds until it drains, refusing offers meanwhile.
   */
  readonly prepend: (items: ReadonlyArray<Item>) => Effect.Effect<void>
  /** Removes and returns every frame in order (after expiring due frames), e.g. for replay. */
  readonly takeAll: Effect.Effect<Array<Item>>
  /** Removes every frame and returns the payloads in order (after expiring due frames): the hand-back on stop. */
  readonly drainAll: Effect.Effect<Array<Uint8Array>>
  /** Removes every frame, reporting them as `Discarded` with `reason`; returns their payloads. */
  readonly discardAll: (reason: string) => Effect.Effect<ReadonlyArray<Uint8Array>>
  /** Removes and reports the frames whose age reached `maxAge`; returns their payloads. */
  readonly expire: Effect.Effect<ReadonlyArray<Uint8Array>>
  /** Frames held. */
  readonly size: () => number
  /** Payload bytes held. */
  readonly bytes: () => number
}

/**
 * Makes a backlog in the current scope (its expiry fiber lives in the scope).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backlog } from "effect-tether"
 *
 * const backlog = Backlog.make({
 *   maxAge: "30 seconds",
 *   onEvent: (e) => Effect.logWarning(`${e._tag}: ${e.frames.length}`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<Backlog, never, Scope.Scope> = internal.make

/**
 * Default option values.
 *
 * @example
 * ```ts
 * import { Backlog } from "effect-tether"
 *
 * Backlog.defaults.maxMessages // 10000
 * ```
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = internal.defaults

/**
 * The payload of a backlog item.
 *
 * @example
 * ```ts
 * import { Backlog, Framing } from "effect-tether"
 *
 * Backlog.payload(Framing.utf8("x")) // the same Uint8Array
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const payload: (item: Item) => Uint8Array = internal.payload
