/**
 * Scope finalizers for per-connection resources, added to the scope as they are.
 *
 * `Effect.addFinalizer` and `Effect.acquireRelease` run a finalizer with the fiber refs of the
 * fiber that acquired the resource: when the scope closes, they diff the finalizing fiber's
 * FiberRefs against the acquiring one's and patch them in and back out again, copying the refs'
 * Map several times. That is paid per finalizer — by each of thousands of sessions at a listener's
 * shutdown. The finalizers of a connection (destroy the socket, close the connection, leave the
 * watchdog driver) read no fiber ref (no log annotation, no service from the context: their logs
 * annotate themselves), so they need none of it.
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"

/** Adds `finalizer` to the current scope. @internal */
export const addFinalizer = (finalizer: Effect.Effect<unknown>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (scope) => Scope.addFinalizer(scope, finalizer))

/** Acquires uninterruptibly and adds the release to the current scope. @internal */
export const acquireRelease = <A, E, R>(
  acquire: Effect.Effect<A, E, R>,
  release: (a: A, exit: Exit.Exit<unknown, unknown>) => Effect.Effect<unknown>
): Effect.Effect<A, E, R | Scope.Scope> =>
  Effect.uninterruptible(
    Effect.flatMap(Effect.scope, (scope) => Effect.tap(acquire, (a) => Scope.addFinalizerExit(scope, releaseOf(release, a))))
  )

// The finalizer is made here, not inline above: a closure keeps its enclosing contexts, and inline
// it would keep `acquire` (the whole acquiring effect, e.g. a connect with its callbacks) alive for
// as long as the resource is.
const releaseOf = <A>(
  release: (a: A, exit: Exit.Exit<unknown, unknown>) => Effect.Effect<unknown>,
  a: A
) =>
(exit: Exit.Exit<unknown, unknown>) => release(a, exit)

/**
 * Runs effects as fibers from synchronous code (a socket callback, a send's commit) in the current
 * scope: forked with the runtime captured here, and interrupted when the scope closes (an effect
 * run after that never starts: its fiber is an interrupted one). What `FiberSet.makeRuntime` does,
 * without what a connection pays for at every close and never uses: the set's `acquireRelease`
 * (the FiberRefs diff/patch above) and its Deferred (for `FiberSet.join`; nobody joins a
 * connection's fibers, and none of them fails: each handles its own errors). A class, one per
 * connection: its methods are on the prototype, not closures of their own.
 * @internal
 */
export class Runner {
  private readonly fibers = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  private closed = false
  constructor(private readonly runtime: Runtime.Runtime<never>) {}

  run<A, E>(effect: Effect.Effect<A, E>, options?: Runtime.RunForkOptions): Fiber.RuntimeFiber<A, E> {
    // after the scope closed the effect never starts (as with a closed FiberSet): an interrupted fiber stands for it
    if (this.closed) return Runtime.runFork(this.runtime, Effect.interrupt, options) as Fiber.RuntimeFiber<never, never>
    const fiber = Runtime.runFork(this.runtime, effect, options)
    const fibers = this.fibers
    fibers.add(fiber)
    fiber.addObserver(() => {
      fibers.delete(fiber)
    })
    return fiber
  }

  /** The scope's finalizer: no effect starts any more, and the running ones are interrupted. */
  get close(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.closed = true
      const fibers = this.fibers
      if (fibers.size === 0) return Effect.void
      const all = Array.from(fibers)
      fibers.clear()
      return Fiber.interruptAll(all)
    })
  }
}

/** A runner for the current scope. @internal */
export const makeRunner: Effect.Effect<Runner, never, Scope.Scope> = Effect.flatMap(
  Effect.runtime<never>(),
  (runtime) => {
    const runner = new Runner(runtime)
    return Effect.as(addFinalizer(runner.close), runner)
  }
)
