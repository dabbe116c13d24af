/**
 * The session supervisor shared by every acceptor (TCP, TLS, WebSocket): seats,
 * the live registry, one child scope per session run by a FiberMap fiber, and
 * the bounded shutdown.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Fiber from "effect/Fiber"
import * as FiberMap from "effect/FiberMap"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as Context from "effect/Context"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as Stream from "effect/Stream"
import type * as Connection from "../Connection.js"
import * as DR from "../DisconnectReason.js"
import type * as Listener from "../Listener.js"
import type * as Transport from "../Transport.js"
import type * as Framed from "../Framed.js"
import { fromFramed, type Hooks, make as makeConnection } from "./connection.js"
import { makeServer, Session } from "./listener.js"
import { macrotask } from "./scheduler.js"
import * as Timers from "./timers.js"
import * as WatchdogInternal from "./watchdog.js"

/** @internal */
export const defaults = {
  maxConnections: 10_000,
  shutdownTimeout: "10 seconds",
  sessionGrace: "5 seconds"
} as const

/** Sessions asked to close per turn of the event loop at shutdown. */
const SHUTDOWN_BATCH = 64

/** Resumes on a macrotask (setImmediate), after the event loop has polled for I/O. */
const yieldToEventLoop: Effect.Effect<void> = Effect.withScheduler(Effect.yieldNow(), macrotask)

/** @internal */
export interface CoreOptions {
  readonly maxConnections?: number | undefined
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  readonly sessionGrace?: Duration.DurationInput | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  readonly idPrefix?: string | undefined
  readonly connection: Omit<Connection.Options, "id">
  /** Stops accepting (closes the listening socket); called once at shutdown. */
  readonly stopAccepting: () => void
  /**
   * Seats held by sockets the acceptor has not handed over yet (WebSocket: HTTP upgrades in progress),
   * and how many of those it gave up on (upgrade timeouts).
   */
  readonly pending?: (() => { readonly pending: number; readonly upgradeTimeouts: number }) | undefined
}

/**
 * One accepted socket, as the acceptor hands it over: how to turn it into a
 * transport (None when the acceptor rejected it itself, e.g. a failed upgrade
 * hook) and how to get rid of the raw socket whatever happens.
 * @internal
 */
export interface Accepted<R> {
  readonly remoteAddress: string | undefined
  /** Refuses at once (no seat): e.g. destroy the socket, or answer HTTP 503. */
  readonly refuse: () => void
  /** A byte transport (framed with the connection options' codec) or a message seam of its own (WebSocket). */
  readonly open: Effect.Effect<
    Option.Option<Transport.Transport | Framed.Framed<any, any>>,
    never,
    Scope.Scope | R
  >
  /** Runs after the session ended (idempotent destroy of the raw socket). */
  readonly cleanup: () => void
}

interface Entry {
  readonly id: string
  readonly remoteAddress: string | undefined
  readonly kind: Transport.Transport["kind"]
  readonly since: number
  readonly conn: Connection.Connection
  handshakeDone: boolean
}

/** @internal */
export interface Core<R> {
  readonly unsafeAccept: (accepted: Accepted<R>) => void
  /** Whether a new socket may take a seat now (not shutting down, a seat free counting pending ones). */
  readonly unsafeHasSeat: () => boolean
  /** Refuses a socket (no seat): counted and logged like every refusal. */
  readonly unsafeRefuse: (remoteAddress: string | undefined, refuse: () => void) => void
  readonly server: (address: { readonly host: string; readonly port: number }) => Listener.Server
  readonly shutdown: Effect.Effect<Listener.ShutdownReport>
}

const infoOf = (e: Entry): Listener.SessionInfo => {
  const s = e.conn.unsafeStats()
  return {
    id: e.id,
    remoteAddress: e.remoteAddress,
    kind: e.kind,
    state: s.state === "Active" && !e.handshakeDone ? "Handshaking" : s.state,
    since: e.since,
    handshakeDone: e.handshakeDone,
    bytesIn: s.bytesIn,
    bytesOut: s.bytesOut,
    queueDepth: s.queueDepth
  }
}

const toInfos = (m: ReadonlyMap<string, Entry>): ReadonlyArray<Listener.SessionInfo> => Array.from(m.values(), infoOf)

/**
 * The live registry: a mutable map plus a version counter (as Netty's ChannelGroup). Every session
 * event (appears, changes state, completes its handshake, goes away) is O(1): it bumps the version
 * and wakes the readers waiting for a change, if any. Snapshots are computed when read, so a reader
 * that falls behind gets the latest registry, never a backlog of copies.
 * @internal
 */
export class Registry {
  readonly entries = new Map<string, Entry>()
  private version = 0
  private waiter: Deferred.Deferred<void> | undefined = undefined

  readonly changed = (): void => {
    this.version++
    const w = this.waiter
    if (w !== undefined) {
      this.waiter = undefined
      Deferred.unsafeDone(w, Exit.void)
    }
  }

  /** Completes once the version differs from `seen`. */
  private awaitChange(seen: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.version !== seen) return Effect.void
      this.waiter ??= Deferred.unsafeMake<void>(FiberId.none)
      return Deferred.await(this.waiter)
    })
  }

  readonly snapshot = (): ReadonlyArray<Listener.SessionInfo> => toInfos(this.entries)

  /** The current registry, then the registry after each change (coalesced: one snapshot per read). */
  readonly changes: Stream.Stream<ReadonlyArray<Listener.SessionInfo>> = Stream.suspend(() => {
    let seen: number | undefined
    return Stream.repeatEffect(
      Effect.suspend(() =>
        Effect.map(seen === undefined ? Effect.void : this.awaitChange(seen), () => {
          seen = this.version
          return this.snapshot()
        })
      )
    )
  })
}

/** @internal */
export const makeCore = <E, R, RA>(
  options: CoreOptions,
  handler: (conn: Connection.Connection) => Effect.Effect<void, E, R>
): Effect.Effect<Core<RA>, never, Scope.Scope | Exclude<R, Listener.Session> | RA> =>
  Effect.gen(function*() {
    const maxConnections = options.maxConnections ?? defaults.maxConnections
    const shutdownTimeout = Duration.decode(options.shutdownTimeout ?? defaults.shutdownTimeout)
    const sessionGrace = Duration.decode(options.sessionGrace ?? defaults.sessionGrace)
    const handshakeTimeout = options.handshakeTimeout === undefined
      ? undefined
      : Duration.decode(options.handshakeTimeout)
    const prefix = options.idPrefix ?? "session"
    // accepted sessions are the server's side: role "server" unless the application named its own role
    const serverLabels = { ...options.connection.labels, role: options.connection.labels?.role ?? "server" }

    const registry = new Registry()
    const entries = registry.entries

    let seq = 0
    let seats = 0
    let accepted = 0
    let refused = 0
    let rejected = 0
    let handshakeTimeouts = 0
    let completed = 0
    let shuttingDown = false

    // One watchdog driver for the listener's sessions when the application provides none: the send-stall and
    // peer-gone probes of every session are run by it (one fiber per probe interval, idle sessions parked)
    // instead of a probe fiber per session. A Driver in the context (Watchdog.layerDriver) is used as it is.
    // Made before the sessions' FiberMap, so it outlives them (scope finalizers run in reverse order).
    const driver = Option.isSome(yield* Effect.serviceOption(WatchdogInternal.Driver))
      ? undefined
      : yield* WatchdogInternal.makeDriverService
    const logs = yield* FiberSet.make<void>()
    const runLog = yield* FiberSet.runtime(logs)<never>()
    const sessions = yield* FiberMap.make<string>()
    const runSession = yield* FiberMap.runtime(sessions)<Exclude<R, Listener.Session> | RA>()

    // One set of timers for the listener: its sessions' close bounds (drain, linger) and their grace
    // (the deadlines of one duration come in order; one fiber sleeps to the earliest, only while some
    // are pending): no fiber, timer or interruption per session at shutdown.
    const timers = Timers.make(yield* Effect.clock, runLog)
    const graceMillis = Duration.isFinite(sessionGrace) ? Duration.toMillis(sessionGrace) : undefined

    // the handshake watchdog: the handler must call `Listener.handshakeDone` in time
    const handshakeWatch = (handshake: Deferred.Deferred<void>): Connection.Attachment => (conn) =>
      handshakeTimeout === undefined ? Effect.void : Effect.forkScoped(
        Deferred.await(handshake).pipe(
          Effect.timeout(handshakeTimeout),
          Effect.withSpan("tether.handshake", { attributes: { "tether.connection": conn.id }, captureStackTrace: false }),
          Effect.catchTag("TimeoutException", () =>
            Effect.suspend(() => {
              handshakeTimeouts++
              conn.unsafeRequestClose(DR.HandshakeTimeout({ timeout: handshakeTimeout }), "graceful")
              return Effect.logWarning(`handshake not completed within ${Duration.format(handshakeTimeout)}`).pipe(
                Effect.annotateLogs({ connection: conn.id, reason: "HandshakeTimeout" })
              )
            }))
        )
      ).pipe(Effect.asVoid)

    // registers the session (its state changes reach the registry through the connection's `onState` hook)
    const track = (id: string, remoteAddress: string | undefined, since: number): Connection.Attachment => (handle) =>
      Effect.sync(() => {
        const conn = handle.connection
        entries.set(id, { id, remoteAddress, kind: conn.kind, since, conn, handshakeDone: handshakeTimeout === undefined })
        registry.changed()
        if (shuttingDown) conn.unsafeRequestClose(DR.Shutdown(), "graceful")
      })

    // a handler that failed: logged, unless it was interrupted (its grace expired) or failed a send on its closed
    // connection (how most handlers learn of the close)
    const handlerFailed = (cause: Cause.Cause<unknown>): Effect.Effect<void> => {
      if (Cause.isInterruptedOnly(cause)) return Effect.void
      const failure = Cause.failureOption(cause)
      const closedSend = Option.isSome(failure) && typeof failure.value === "object" && failure.value !== null &&
        "_tag" in failure.value && failure.value._tag === "ConnectionClosed"
      return closedSend ? Effect.void : Effect.logWarning("session handler failed", cause)
    }

    // what every session's connection is opened with (its id and hooks are the session's own)
    const sessionOptions: Connection.Options = { ...options.connection, labels: serverLabels }
    const noHandshake = Effect.void

    // A session runs in its own fiber (the FiberMap's), from accept to the end of its child scope. That
    // fiber's context (the Session, the watchdog driver, its scope and span) and log annotations are set
    // once, at its start, instead of through `provideService` / `annotateLogs` / `withSpan` / `scoped`:
    // each of those leaves a region (an acquire-use-release with its closures) on the fiber's stack for
    // the session's whole life: ~15 of them, a few KB per idle session.
    const session = (id: string, a: Accepted<RA>): Effect.Effect<void, never, Exclude<R, Listener.Session> | RA> =>
      Effect.flatMap(Scope.make(), (scope) =>
        Effect.onExit(
          // the set-up returns the handler, run once the set-up has ended: nothing of the set-up (its generator,
          // its continuation) stays on the session's stack while the handler runs
          Effect.flatten(Effect.gen(function*() {
            yield* FiberRef.update(
              FiberRef.currentLogAnnotations,
              (m) => HashMap.set(HashMap.set(m, "session", id), "remote", a.remoteAddress ?? "?")
            )
            yield* FiberRef.update(FiberRef.currentContext, (ctx) => {
              const withScope = Context.add(ctx, Scope.Scope, scope)
              return driver === undefined ? withScope : Context.add(withScope, WatchdogInternal.Driver, driver)
            })
            const interruptSession = yield* Effect.withFiberRuntime<() => void>((fiber) =>
              Effect.succeed(() => fiber.unsafeInterruptAsFork(FiberId.none))
            )
            const transport = yield* a.open
            if (Option.isNone(transport)) {
              rejected++
              return Effect.void
            }
            accepted++
            const since = yield* Clock.currentTimeMillis
            // a Deferred only where a handshake is watched
            const handshake = handshakeTimeout === undefined ? undefined : yield* Deferred.make<void>()
            // the handler's grace starts at the close (or at its own start, on an already closed connection)
            let inHandler = false
            let cancelGrace: (() => void) | undefined
            const startGrace = () => {
              if (cancelGrace !== undefined || graceMillis === undefined) return
              cancelGrace = timers.schedule(graceMillis, () => {
                if (inHandler) interruptSession()
              })
            }
            const hooks: Hooks<any, any> = {
              id,
              timers,
              onState: (state: Connection.State) => {
                registry.changed()
                if (state === "Closed" && inHandler) startGrace()
              },
              // the registry and the handshake timer: the connection's open hook, not watchdogs
              onOpen: (h: Connection.Handle) =>
                handshake === undefined
                  ? track(id, a.remoteAddress, since)(h)
                  : Effect.zipRight(track(id, a.remoteAddress, since)(h), handshakeWatch(handshake)(h))
            }
            const opened = transport.value
            const conn: Connection.Connection = "unsafeRead" in opened
              ? yield* fromFramed(opened as Framed.Framed, sessionOptions, hooks)
              : yield* makeConnection(opened, sessionOptions, hooks)
            const handshakeDone = handshake === undefined ? noHandshake : Effect.map(
              Deferred.succeed(handshake, undefined),
              (first) => {
                const e = entries.get(id)
                if (first && e !== undefined) {
                  e.handshakeDone = true
                  registry.changed()
                }
              }
            )
            const info: Listener.Session = { id, remoteAddress: a.remoteAddress, connection: conn, handshakeDone }
            // no stack trace per session: it is always the same (this line) and costs a `new Error()` each;
            // ended by the session's scope
            const span = yield* Effect.makeSpan("tether.session", {
              attributes: { "tether.connection": conn.id, "tether.role": "server" },
              captureStackTrace: false
            })
            yield* Scope.addFinalizerExit(scope, (exit) =>
              Effect.flatMap(Clock.currentTimeNanos, (now) => Effect.sync(() => span.end(now, exit))))
            yield* FiberRef.update(
              FiberRef.currentContext,
              (ctx) => Context.add(Context.add(ctx, Session, info), Tracer.ParentSpan, span)
            )
            // The handler runs until it ends, in this fiber. Once the connection has closed it still gets
            // `sessionGrace` to finish what it already read (`incoming` delivers every buffered frame, then
            // ends); only a handler that ignores the close is interrupted (by the listener's timers: no fiber,
            // timer or race per session), so a seat is never held for long by a dead session.
            inHandler = true
            if (conn.unsafeStats().state === "Closed") startGrace()
            // the Session and the scope are in this fiber's context (set above)
            return Effect.zipLeft(
              Effect.catchAllCause(handler(conn) as Effect.Effect<void, E>, handlerFailed),
              Effect.sync(() => {
                inHandler = false
                cancelGrace?.()
              })
            )
          })) as Effect.Effect<void, never, Scope.Scope | Exclude<R, Listener.Session> | RA>,
          (exit) =>
            Effect.suspend(() => {
              // the connection's full shutdown (socket destroyed) is a finalizer of this scope
              return Effect.ensuring(
                Scope.close(scope, exit),
                Effect.sync(() => {
                  a.cleanup()
                  seats--
                  if (entries.delete(id)) {
                    completed++
                    registry.changed()
                  }
                })
              )
            })
        ) as Effect.Effect<void, never, Exclude<R, Listener.Session> | RA>
      )

    const noPending = { pending: 0, upgradeTimeouts: 0 }
    const pendingOf = options.pending ?? (() => noPending)
    const unsafeHasSeat = () => !shuttingDown && seats + pendingOf().pending < maxConnections
    const unsafeRefuse = (remoteAddress: string | undefined, refuse: () => void): void => {
      refuse()
      refused++
      const why = shuttingDown ? "shutting down" : `all ${maxConnections} seats taken`
      runLog(Effect.logWarning(`refused connection from ${remoteAddress ?? "?"}: ${why} (${refused} refused)`))
    }
    const unsafeAccept = (a: Accepted<RA>): void => {
      if (!unsafeHasSeat()) return unsafeRefuse(a.remoteAddress, a.refuse)
      seats++
      const id = `${prefix}-${++seq}`
      runSession(id, session(id, a))
    }

    const stats = (): Listener.Stats => ({
      active: seats,
      ...pendingOf(),
      accepted,
      refused,
      rejected,
      handshakeTimeouts,
      completed
    })

    const shutdownDone = yield* Deferred.make<Listener.ShutdownReport>()
    const shutdown: Effect.Effect<Listener.ShutdownReport> = Effect.uninterruptible(
      Effect.suspend(() => {
        if (shuttingDown) return Deferred.await(shutdownDone)
        shuttingDown = true
        return Effect.gen(function*() {
          const started = yield* Clock.currentTimeMillis
          options.stopAccepting()
          const count = yield* FiberMap.size(sessions)
          yield* Effect.logDebug(`shutdown: closing ${count} sessions (bound ${Duration.format(shutdownTimeout)})`)
          // every connection runs its own bounded graceful close, all in parallel. The requests go out in
          // batches with a turn of the event loop between them: thousands of closes started in one go run
          // as one long burst of microtasks in which no socket event (the peers' FIN) is read, so every
          // linger bound would expire before its peer's answer is seen.
          // The bound covers the requests too.
          const requestAll = Effect.gen(function*() {
            let batch = 0
            for (const e of Array.from(entries.values())) {
              e.conn.unsafeRequestClose(DR.Shutdown(), "graceful")
              if (++batch === SHUTDOWN_BATCH) {
                batch = 0
                yield* yieldToEventLoop
              }
            }
          })
          // The bounded graceful part runs in a child fiber, interruptible there, and is joined. Not
          // `restore(...)`: a shutdown run from a finalizer is uninterruptible there, so the timeout could not
          // cut it short. Not `Effect.interruptible` in this fiber either: a fiber being interrupted (SIGINT
          // closing the app's scope) would skip the graceful part, the aborts and the report at once.
          const graceful = yield* Effect.zipRight(requestAll, FiberMap.awaitEmpty(sessions)).pipe(
            Effect.interruptible,
            Effect.timeout(shutdownTimeout),
            Effect.option,
            Effect.fork,
            Effect.flatMap(Fiber.join)
          )
          let aborted = 0
          if (Option.isNone(graceful)) {
            aborted = yield* FiberMap.size(sessions)
            yield* Effect.logWarning(`shutdown timeout: aborting ${aborted} remaining sessions`)
            for (const e of entries.values()) e.conn.unsafeRequestClose(DR.Shutdown(), "abort")
            // aborts destroy at once; interrupting also releases sessions still opening (e.g. in an upgrade hook).
            // All at once: FiberMap.clear interrupts one fiber after the other, awaiting each (N event-loop turns).
            yield* Fiber.interruptAll(Array.from(sessions, ([, fiber]) => fiber))
          }
          const now = yield* Clock.currentTimeMillis
          const report: Listener.ShutdownReport = {
            sessions: count,
            graceful: count - aborted,
            aborted,
            millis: now - started
          }
          yield* Effect.logDebug(`shutdown done in ${report.millis} ms`)
          yield* Deferred.succeed(shutdownDone, report)
          return report
        })
      })
    )
    yield* Effect.addFinalizer(() => shutdown)

    const server = (address: { readonly host: string; readonly port: number }): Listener.Server =>
      makeServer({
        address,
        sessions: Effect.sync(registry.snapshot),
        sessionChanges: registry.changes,
        connection: (id) => Effect.sync(() => Option.fromNullable(entries.get(id)?.conn)),
        stats: Effect.sync(stats),
        unsafeStats: stats,
        shutdown
      })

    return { unsafeAccept, unsafeHasSeat, unsafeRefuse, server, shutdown }
  })
