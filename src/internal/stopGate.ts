/**
 * The stop-gate's implementation (the public `StopGate` module re-exports it through `unsafeMake`).
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type { StopGate } from "../StopGate.js"

// The Deferred is made on first use (`await`, `deferred`): most gates (one per connection) are only
// ever checked synchronously, and an Effect Deferred costs ~10 µs and a hidden class of its own. A
// class (one shared hidden class; an object literal with a getter is left in dictionary mode), with
// the methods as own closures: callers may pass them point-free.
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
  readonly unsafeReason = (): Option.Option<R> => this.reason
  readonly unsafeClose = (r: R): boolean => {
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
  readonly unsafeOnClose = (f: (reason: R) => void): () => void => {
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

