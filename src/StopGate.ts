/**
 * The stop-gate: a `Deferred` that, once closed, refuses every new message,
 * and a bounded queue whose producers go through it.
 *
 * A send is `check the gate → reserve capacity (waiting if full) → re-check the
 * gate → commit`. The re-check and the commit happen in one synchronous step,
 * so no message can slip in after the gate has closed, and a producer that was
 * waiting for capacity when the gate closed fails instead of enqueuing.
 * Shutdown is `close` then drain: deterministic, no sleeps.
 *
 * @since 0.1.0
 */
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as internal from "./internal/stopGate.js"

/**
 * Returned by a send on a closed gate; carries the reason the gate closed with.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { StopGate } from "effect-tether"
 *
 * Effect.gen(function*() {
 *   const gate = yield* StopGate.make<string>()
 *   yield* StopGate.close(gate, "shutdown")
 *   const q = StopGate.unsafeMakeQueue<number, string>(gate, { capacity: 1 })
 *   const err = yield* Effect.flip(q.offer(1)) // GateClosed { reason: "shutdown" }
 * })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const GateClosed: typeof internal.GateClosed = internal.GateClosed

/**
 * The type of {@link GateClosed}.
 *
 * @example
 * ```ts
 * import type { StopGate } from "effect-tether"
 *
 * const reasonOf = (e: StopGate.GateClosed<string>) => e.reason
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type GateClosed<R> = internal.GateClosed<R>

/**
 * A stop-gate. Closing it is one-way and idempotent; the first reason wins.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { StopGate } from "effect-tether"
 *
 * Effect.gen(function*() {
 *   const gate = yield* StopGate.make<string>()
 *   yield* StopGate.close(gate, "bye")
 *   yield* StopGate.await(gate) // "bye"
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface StopGate<R> {
  /** Completed with the close reason when the gate closes. */
  readonly deferred: Deferred.Deferred<R>
  /** Synchronous view of the gate, for the check and re-check steps. */
  readonly unsafeReason: () => Option.Option<R>
  /** Closes the gate; returns false if it was already closed. */
  readonly unsafeClose: (reason: R) => boolean
  /** Registers a callback run once when the gate closes; returns an unregister function. */
  readonly unsafeOnClose: (f: (reason: R) => void) => () => void
}

/**
 * Makes an open stop-gate without an effect (for building other primitives).
 *
 * @example
 * ```ts
 * import { StopGate } from "effect-tether"
 *
 * const gate = StopGate.unsafeMake<string>()
 * gate.unsafeClose("done") // true
 * gate.unsafeClose("again") // false: the first reason wins
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMake = <R>(): StopGate<R> => new internal.BoundGate<R>()

/**
 * Makes an open stop-gate.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { StopGate } from "effect-tether"
 *
 * const program = StopGate.make<string>().pipe(Effect.flatMap(StopGate.isClosed)) // false
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R>(): Effect.Effect<StopGate<R>> => Effect.sync(() => unsafeMake<R>())

/**
 * Closes the gate with a reason. Returns `true` if this call closed it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { StopGate } from "effect-tether"
 *
 * const program = Effect.flatMap(StopGate.make<string>(), (gate) => StopGate.close(gate, "stop"))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const close = <R>(gate: StopGate<R>, reason: R): Effect.Effect<boolean> =>
  Effect.sync(() => gate.unsafeClose(reason))

/**
 * Whether the gate is closed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { StopGate } from "effect-tether"
 *
 * const program = Effect.flatMap(StopGate.make<string>(), StopGate.isClosed)
 * ```
 *
 * @since 0.1.0
 * @category getters
 */
export const isClosed = <R>(gate: StopGate<R>): Effect.Effect<boolean> =>
  Effect.sync(() => Option.isSome(gate.unsafeReason()))

/**
 * Waits until the gate closes and returns its reason.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { StopGate } from "effect-tether"
 *
 * const program = Effect.gen(function*() {
 *   const gate = yield* StopGate.make<string>()
 *   yield* Effect.fork(StopGate.close(gate, "x"))
 *   return yield* StopGate.await(gate) // "x"
 * })
 * ```
 *
 * @since 0.1.0
 * @category getters
 */
const await_ = <R>(gate: StopGate<R>): Effect.Effect<R> => Deferred.await(gate.deferred)
export {
  /**
   * @since 0.1.0
   * @category getters
   */
  await_ as await
}

/**
 * Outcome of a non-waiting offer.
 *
 * @example
 * ```ts
 * import { StopGate } from "effect-tether"
 *
 * const r: StopGate.TryOffer = "full"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TryOffer = "accepted" | "full"

/**
 * A bounded queue behind a stop-gate. Single consumer, many producers. Once
 * the queue is full, freed slots are granted to the waiting producers in
 * arrival order (no producer waits behind one that arrived later); each
 * producer's own items keep their order.
 *
 * Its members are methods: call them on the queue (`q.offer(x)`); a detached
 * `q.offer` has no queue to work on.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { StopGate } from "effect-tether"
 *
 * Effect.gen(function*() {
 *   const gate = yield* StopGate.make<string>()
 *   const q = StopGate.unsafeMakeQueue<string, string>(gate, { capacity: 16 })
 *   yield* q.offer("a")
 *   const batch = q.unsafeTakeUpTo(10) // ["a"]
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface GatedQueue<A, R> {
  readonly gate: StopGate<R>
  readonly capacity: number
  /** check → reserve (wait while full) → re-check → commit. Fails once the gate is closed. */
  offer(a: A): Effect.Effect<void, GateClosed<R>>
  /** Like `offer` but never waits: "full" when there is no free slot. */
  tryOffer(a: A): Effect.Effect<TryOffer, GateClosed<R>>
  /** Synchronous `tryOffer`, for callbacks; returns the reason if the gate is closed. */
  unsafeTryOffer(a: A): TryOffer | GateClosed<R>
  /** Items waiting to be consumed. */
  size(): number
  /** Their total weight (0 without a `highWaterMark`: the weight is then not tracked). */
  queuedWeight(): number
  /** Removes and returns up to `max` items (and at most `maxWeight` total weight, at least one item). */
  unsafeTakeUpTo(max: number, maxWeight?: number): Array<A>
  /** Removes and returns everything queued (for reporting undelivered items). */
  unsafeTakeAll(): Array<A>
  /**
   * Waits until there is at least one item, or the gate is closed and the
   * queue is empty (then returns `false`: nothing more will ever arrive).
   */
  readonly awaitItems: Effect.Effect<boolean>
  /** Producers currently waiting for capacity. */
  waiting(): number
  /** Wakes the consumer waiting in `awaitItems` (it returns `true` even if the queue is empty). */
  unsafeNotify(): void
}

/**
 * Makes a {@link GatedQueue} behind `gate`.
 *
 * `weight` (default: 1 per item) lets the consumer cap a batch by bytes.
 *
 * @example
 * ```ts
 * import { StopGate } from "effect-tether"
 *
 * const gate = StopGate.unsafeMake<string>()
 * const q = StopGate.unsafeMakeQueue<Uint8Array, string>(gate, { capacity: 1024, weight: (b) => b.length })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const unsafeMakeQueue = <A, R>(
  gate: StopGate<R>,
  options: {
    readonly capacity: number
    readonly weight?: ((a: A) => number) | undefined
    /**
     * A bound on the queued weight too (needs `weight`), with hysteresis (Netty's write-buffer
     * water marks): once the queued weight reaches `highWaterMark` the queue is full whatever its
     * item count, until takes bring it down to `lowWaterMark` (default half the high mark). An item
     * heavier than the high mark is still accepted by an empty queue.
     */
    readonly highWaterMark?: number | undefined
    readonly lowWaterMark?: number | undefined
  }
): GatedQueue<A, R> => new internal.Queue<A, R>(gate, options)


/**
 * What {@link closeAndDrain} did.
 *
 * @example
 * ```ts
 * import type { StopGate } from "effect-tether"
 *
 * const report = (d: StopGate.DrainReport<string>) => `${d.handled} handled, ${d.remaining.length} handed back`
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface DrainReport<A> {
  /** Items taken from the queue and handled. */
  readonly handled: number
  /** Items still queued when the bound expired (or after a handler failure), in order. */
  readonly remaining: ReadonlyArray<A>
  /** Whether the queue was emptied within the bound. */
  readonly drained: boolean
}

/**
 * Shutdown in one step: closes the gate (every later offer fails, producers
 * waiting for capacity fail too), then hands every item that was accepted
 * before the close to `handle`, in order, bounded by `timeout`. What could not
 * be handled in time is returned, never dropped. Deterministic: no sleeps —
 * the drain ends exactly when the queue is empty.
 *
 * Use it when you own the queue's consumer (an actor's mailbox); a connection
 * does the same internally with its writer fiber.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { StopGate } from "effect-tether"
 *
 * const program = Effect.gen(function*() {
 *   const gate = yield* StopGate.make<string>()
 *   const mailbox = StopGate.unsafeMakeQueue<string, string>(gate, { capacity: 64 })
 *   yield* mailbox.offer("last order")
 *   const report = yield* StopGate.closeAndDrain(mailbox, "shutdown", (msg) => Effect.log(msg), "2 seconds")
 *   // report: { handled: 1, remaining: [], drained: true }
 * })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const closeAndDrain = <A, R, E, Rh>(
  queue: GatedQueue<A, R>,
  reason: R,
  handle: (a: A) => Effect.Effect<void, E, Rh>,
  timeout: Duration.DurationInput
): Effect.Effect<DrainReport<A>, never, Rh> =>
  Effect.suspend(() => {
    queue.gate.unsafeClose(reason)
    let handled = 0
    let failed = false
    // the item being handled: if the bound interrupts its handler, it was not handled and goes back
    let current: { readonly item: A } | undefined
    // the gate is closed: nothing can be committed any more, so this ends exactly when the queue is empty
    const loop: Effect.Effect<void, never, Rh> = Effect.suspend(() => {
      const batch = queue.unsafeTakeUpTo(1)
      if (batch.length === 0) return Effect.void
      current = { item: batch[0]! }
      return handle(current.item).pipe(
        Effect.matchEffect({
          onFailure: () =>
            Effect.sync(() => {
              failed = true
            }),
          onSuccess: () =>
            Effect.suspend(() => {
              current = undefined
              handled++
              return loop
            })
        })
      )
    })
    // interruptible even when called from an uninterruptible shutdown, so the bound always holds
    return Effect.interruptible(loop).pipe(
      Effect.timeout(timeout),
      Effect.option,
      Effect.map((done) => {
        const remaining = (current === undefined ? [] : [current.item]).concat(queue.unsafeTakeAll())
        return { handled, remaining, drained: done._tag === "Some" && !failed && remaining.length === 0 }
      })
    )
  })
