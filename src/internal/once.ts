/**
 * A value set once, and effects that wait for it: what a connection's outcome needs of a
 * `Deferred`, without its cost. Effect's `Deferred` copies the Effect prototype's members into
 * each instance (an object spread), which gives every instance a hidden class of its own: ~10 µs
 * and ~0.5 KB per connection, for a value that is set once at close.
 * @internal
 */
import * as Effect from "effect/Effect"

/** @internal */
export class Once<A> {
  private value: A | undefined = undefined
  private isDone = false
  private waiters: Array<(a: A) => void> | undefined = undefined

  /** Waits for the value; interruptible (an interrupted waiter is removed). */
  get await(): Effect.Effect<A> {
    return Effect.async<A>((resume) => {
      if (this.isDone) return resume(Effect.succeed(this.value as A))
      const w = (a: A) => resume(Effect.succeed(a))
      const ws = this.waiters ??= []
      ws.push(w)
      return Effect.sync(() => {
        const now = this.waiters
        if (now === undefined) return
        const i = now.indexOf(w)
        if (i >= 0) now.splice(i, 1)
      })
    })
  }

  /** Whether the value is set. */
  get done(): boolean {
    return this.isDone
  }

  /** Sets the value and wakes every waiter; false (and nothing changes) if it was set already. */
  unsafeDone(a: A): boolean {
    if (this.isDone) return false
    this.isDone = true
    this.value = a
    const ws = this.waiters
    this.waiters = undefined
    if (ws !== undefined) for (let i = 0; i < ws.length; i++) ws[i]!(a)
    return true
  }
}
