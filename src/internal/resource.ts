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
    Effect.flatMap(Effect.scope, (scope) => Effect.tap(acquire, (a) => Scope.addFinalizerExit(scope, (exit) => release(a, exit))))
  )
