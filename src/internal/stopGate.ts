/**
 * The stop-gate's implementation (the public `StopGate` module re-exports it through `unsafeMake`).
 * @internal
 */
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type { GatedQueue, StopGate, TryOffer } from "../StopGate.js"

/** @internal */
export class GateClosed<R> extends Data.TaggedError("GateClosed")<{ readonly reason: R }> {}

// The Deferred is made on first use (`await`, `deferred`): most gates (one per connection) are only
// ever checked synchronously, and an Effect Deferred costs ~10 µs and a hidden class of its own. A
// class (one shared hidden class; an object literal with a getter is left in dictionary mode) with
// its methods on the prototype: a connection's gate, used only through method calls, costs no
// closure. `BoundGate` (what `StopGate.unsafeMake` returns) has them as own bound functions as well,
// since users may pass them point-free.
/** @internal */
export class Gate<R> implements StopGate<R> {
  private d: Deferred.Deferred<R> | undefined = undefined
  private reason: Option.Option<R> = Option.none()
  private listeners: Set<(reason: R) => void> | undefined = undefined
  get deferred(): Deferred.Deferred<R> {
    if (this.d === undefined) {
      this.d = Deferred.unsafeMake<R>(FiberId.none)
      if (Option.isSome(this.reason)) Deferred.unsafeDone(this.d, Effect.succeed(this.reason.value))
    }
    return this.d
  }
  unsafeReason(): Option.Option<R> {
    return this.reason
  }
  unsafeClose(r: R): boolean {
    if (Option.isSome(this.reason)) return false
    this.reason = Option.some(r)
    if (this.d !== undefined) Deferred.unsafeDone(this.d, Effect.succeed(r))
    const ls = this.listeners
    if (ls !== undefined) {
      this.listeners = undefined
      for (const f of Array.from(ls)) f(r)
    }
    return true
  }
  unsafeOnClose(f: (reason: R) => void): () => void {
    if (Option.isSome(this.reason)) {
      f(this.reason.value)
      return () => {}
    }
    const ls = this.listeners ??= new Set()
    ls.add(f)
    return () => {
      this.listeners?.delete(f)
    }
  }
}

/** A gate whose methods may be passed point-free. @internal */
export class BoundGate<R> extends Gate<R> {
  override readonly unsafeReason: () => Option.Option<R> = Gate.prototype.unsafeReason.bind(this)
  override readonly unsafeClose: (r: R) => boolean = Gate.prototype.unsafeClose.bind(this)
  override readonly unsafeOnClose: (f: (reason: R) => void) => () => void = Gate.prototype.unsafeOnClose.bind(this)
}

interface Waiter {
  granted: boolean
  readonly wake: () => void
}

/** @internal */
export interface QueueOptions<A> {
  readonly capacity: number
  readonly weight?: ((a: A) => number) | undefined
  readonly highWaterMark?: number | undefined
  readonly lowWaterMark?: number | undefined
}

const noItems: Array<never> = []

// A class with its methods on the prototype: one queue per connection, and a closure per method
// and per helper (with the context they share) was ~1.3 KB of every idle connection. The effects
// (`offer`'s wait in line, `awaitItems`) are built when first needed.
/** @internal */
export class Queue<A, R> implements GatedQueue<A, R> {
  readonly capacity: number
  private readonly weightOf: ((a: A) => number) | undefined
  private readonly high: number | undefined
  private readonly low: number
  private weight = 0
  // false from the moment the queued weight reaches the high mark until it is back at the low mark
  private writable = true
  // with a weight bound, one waiting producer at a time holds a slot (its item's weight is unknown until it commits)
  private readonly maxReserved: number
  // ring buffer, grown on demand (doubling) up to `capacity`; it starts empty because most queues
  // (e.g. one per idle connection) stay nearly empty and a 1024-slot array is 8 KiB each
  private items: Array<A | undefined> = noItems
  private head = 0
  private count = 0
  // slots granted to woken producers that have not committed yet
  private reserved = 0
  // producers waiting for a slot, in arrival order (made on first wait)
  private line: Array<Waiter> | undefined = undefined
  private takeWaiter: (() => void) | undefined = undefined
  private notified = false
  private awaitItemsEffect: Effect.Effect<boolean> | undefined = undefined

  constructor(readonly gate: StopGate<R>, options: QueueOptions<A>) {
    this.capacity = Math.max(1, Math.floor(options.capacity))
    this.weightOf = options.weight
    this.high = options.weight === undefined ? undefined : options.highWaterMark
    this.low = this.high === undefined ? 0 : Math.min(this.high, options.lowWaterMark ?? Math.floor(this.high / 2))
    this.maxReserved = this.high === undefined ? Infinity : 1
    // on close: every producer in line wakes without a slot (and fails its re-check); the consumer wakes
    gate.unsafeOnClose(() => {
      const line = this.line
      if (line !== undefined) for (const w of line.splice(0)) w.wake()
      this.wakeTaker()
    })
  }

  private wakeTaker(): void {
    const w = this.takeWaiter
    if (w !== undefined) {
      this.takeWaiter = undefined
      w()
    }
  }
  private push(a: A): void {
    let items = this.items
    if (this.count === items.length) {
      const grown: Array<A | undefined> = new Array(Math.min(this.capacity, Math.max(8, items.length * 2)))
      for (let i = 0; i < this.count; i++) grown[i] = items[(this.head + i) % items.length]
      this.items = items = grown
      this.head = 0
    }
    items[(this.head + this.count) % items.length] = a
    this.count++
    if (this.high !== undefined) {
      this.weight += this.weightOf!(a)
      if (this.weight >= this.high) this.writable = false
    }
    this.wakeTaker()
  }
  private shift(): A {
    const items = this.items
    const a = items[this.head] as A
    items[this.head] = undefined
    this.head = (this.head + 1) % items.length
    this.count--
    if (this.high !== undefined) {
      this.weight -= this.weightOf!(a)
      if (this.count === 0) this.weight = 0
      if (!this.writable && this.weight <= this.low) this.writable = true
    }
    return a
  }
  private hasRoom(): boolean {
    return this.count + this.reserved < this.capacity && this.writable
  }
  // hand free slots to the producers in line, oldest first
  private grant(): void {
    const line = this.line
    if (line === undefined) return
    while (line.length > 0 && this.hasRoom() && this.reserved < this.maxReserved) {
      const w = line.shift()!
      this.reserved++
      w.granted = true
      w.wake()
    }
  }
  private closedError(): GateClosed<R> | undefined {
    const r = this.gate.unsafeReason()
    return Option.isSome(r) ? new GateClosed({ reason: r.value }) : undefined
  }
  private nobodyWaiting(): boolean {
    return this.line === undefined || this.line.length === 0
  }
  // wait in line; resumes with `true` when holding a granted slot
  private reserve(): Effect.Effect<boolean> {
    return Effect.async<boolean>((resume) => {
      const w: Waiter = { granted: false, wake: () => resume(Effect.sync(() => w.granted)) }
      const line = this.line ??= []
      line.push(w)
      return Effect.sync(() => {
        // interrupted while waiting: leave the line, or give back the slot granted meanwhile
        const i = line.indexOf(w)
        if (i >= 0) line.splice(i, 1)
        if (w.granted) {
          this.reserved--
          this.grant()
        }
      })
    })
  }

  offer(a: A): Effect.Effect<void, GateClosed<R>> {
    return Effect.suspend(() => {
      // check
      const closed = this.closedError()
      if (closed) return Effect.fail(closed)
      if (this.nobodyWaiting() && this.hasRoom()) {
        this.push(a) // nobody waiting and room left: commit at once
        return Effect.void
      }
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(this.reserve()), (holdsSlot) => {
          if (holdsSlot) this.reserved--
          // re-check, then commit, in one synchronous step
          const closedNow = this.closedError()
          if (closedNow) {
            this.grant()
            return Effect.fail(closedNow)
          }
          this.push(a)
          this.grant() // with a weight bound the next producer in line gets its slot after this commit
          return Effect.void
        })
      )
    })
  }
  tryOffer(a: A): Effect.Effect<TryOffer, GateClosed<R>> {
    return Effect.suspend(() => {
      const r = this.unsafeTryOffer(a)
      return typeof r === "string" ? Effect.succeed(r) : Effect.fail(r)
    })
  }
  unsafeTryOffer(a: A): TryOffer | GateClosed<R> {
    const closed = this.closedError()
    if (closed) return closed
    if (this.nobodyWaiting() && this.hasRoom()) {
      this.push(a)
      return "accepted"
    }
    return "full"
  }
  size(): number {
    return this.count
  }
  queuedWeight(): number {
    return this.weight
  }
  waiting(): number {
    return this.line === undefined ? 0 : this.line.length
  }
  unsafeNotify(): void {
    this.notified = true
    this.wakeTaker()
  }
  unsafeTakeUpTo(max: number, maxWeight?: number): Array<A> {
    const out: Array<A> = []
    let total = 0
    while (this.count > 0 && out.length < max) {
      if (this.weightOf !== undefined && maxWeight !== undefined) {
        const next = this.weightOf(this.items[this.head] as A)
        if (out.length > 0 && total + next > maxWeight) break
        total += next
      }
      out.push(this.shift())
    }
    if (out.length > 0) this.grant()
    return out
  }
  unsafeTakeAll(): Array<A> {
    const out: Array<A> = []
    while (this.count > 0) out.push(this.shift())
    if (out.length > 0) this.grant()
    return out
  }
  get awaitItems(): Effect.Effect<boolean> {
    if (this.awaitItemsEffect !== undefined) return this.awaitItemsEffect
    const awaitTaker = Effect.async<void>((resume) => {
      const w = () => resume(Effect.void)
      this.takeWaiter = w
      return Effect.sync(() => {
        if (this.takeWaiter === w) this.takeWaiter = undefined
      })
    })
    const awaitItems: Effect.Effect<boolean> = Effect.suspend(() => {
      if (this.notified) {
        this.notified = false
        return Effect.succeed(true)
      }
      if (this.count > 0) return Effect.succeed(true)
      // once closed, nothing can be committed any more (every re-check fails)
      if (Option.isSome(this.gate.unsafeReason())) return Effect.succeed(false)
      return Effect.zipRight(awaitTaker, awaitItems)
    })
    return this.awaitItemsEffect = awaitItems
  }
}
