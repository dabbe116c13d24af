/**
 * The session supervisor shared by every acceptor (TCP, TLS, WebSocket): seats,
 * the live registry, one fiber and child scope per session, and the bounded
 * shutdown.
 * @internal
 */
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as Context from "effect/Context"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as HashMap from "effect/HashMap"
import * as Inspectable from "effect/Inspectable"
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
  /** Refuses at once (no seat): e.g. destroy the socket, or answer HTTP 503. Called as a method. */
  refuse(): void
  /** A byte transport (framed with the connection options' codec) or a message seam of its own (WebSocket). */
  readonly open: Effect.Effect<
    Option.Option<Transport.Transport | Framed.Framed<any, any>>,
    never,
    Scope.Scope | R
  >
  /** Runs after the session ended (idempotent destroy of the raw socket). Called as a method. */
  cleanup(): void
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

const infoOf = (e: SessionRun): Listener.SessionInfo => {
  const s = e.connection.unsafeStats()
  return {
    id: e.id,
    remoteAddress: e.remoteAddress,
    kind: e.connection.kind,
    state: s.state === "Active" && !e.handshaken ? "Handshaking" : s.state,
    since: e.since,
    handshakeDone: e.handshaken,
    bytesIn: s.bytesIn,
    bytesOut: s.bytesOut,
    queueDepth: s.queueDepth
  }
}

const toInfos = (m: ReadonlyMap<string, SessionRun>): ReadonlyArray<Listener.SessionInfo> => Array.from(m.values(), infoOf)

/**
 * The live registry: a mutable map plus a version counter (as Netty's ChannelGroup). Every session
 * event (appears, changes state, completes its handshake, goes away) is O(1): it bumps the version
 * and wakes the readers waiting for a change, if any. Snapshots are computed when read, so a reader
 * that falls behind gets the latest registry, never a backlog of copies.
 * @internal
 */
export class Registry {
  readonly entries = new Map<string, SessionRun>()
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

/**
 * What a listener's sessions share: the registry, the sessions' fibers, the timers and the counters.
 * One per listener; a session reaches it through its one pointer.
 */
class Supervisor {
  readonly registry = new Registry()
  readonly entries = this.registry.entries
  /**
   * The sessions' fibers, each with its session: from the start of its set-up to the end of its close (as a
   * FiberMap, without its per-fiber observer and key).
   */
  readonly fibers = new Map<Fiber.RuntimeFiber<unknown, unknown>, SessionRun>()
  private emptied: Deferred.Deferred<void> | undefined = undefined
  seq = 0
  seats = 0
  accepted = 0
  refused = 0
  rejected = 0
  handshakeTimeouts = 0
  completed = 0
  shuttingDown = false
  /** The handshake timeout in milliseconds, when it is finite. */
  readonly handshakeMillis: number | undefined
  constructor(
    readonly timers: Timers.Timers,
    readonly clock: Clock.Clock,
    readonly graceMillis: number | undefined,
    readonly handshakeTimeout: Duration.Duration | undefined,
    readonly runLog: (effect: Effect.Effect<void>) => unknown
  ) {
    this.handshakeMillis = handshakeTimeout !== undefined && Duration.isFinite(handshakeTimeout)
      ? Duration.toMillis(handshakeTimeout)
      : undefined
  }

  /** Completes once no session fiber is left. */
  get awaitEmpty(): Effect.Effect<void> {
    return Effect.suspend(() =>
      this.fibers.size === 0 ? Effect.void : Deferred.await(this.emptied ??= Deferred.unsafeMake<void>(FiberId.none))
    )
  }

  /** A session's fiber has done everything (its scope is closed): its seat is free. */
  release(fiber: Fiber.RuntimeFiber<unknown, unknown>, run: SessionRun): void {
    run.endHandshakeWatch(Exit.interrupt(fiber.id()))
    run.accepted.cleanup()
    this.seats--
    if (this.entries.delete(run.id)) {
      this.completed++
      this.registry.changed()
    }
    this.fibers.delete(fiber)
    const w = this.emptied
    if (this.fibers.size === 0 && w !== undefined) {
      this.emptied = undefined
      Deferred.unsafeDone(w, Exit.void)
    }
  }
}

/**
 * One session: the value of its `Listener.Session`, its connection's hooks (`onOpen` is a method: the
 * connection calls it on this object), its registry entry and the state of its handler, in one object.
 * Its methods are on the prototype: nothing of a session is a closure of its own but `onState` (the
 * connection calls it unbound: a bound method).
 */
class SessionRun implements Listener.Session, Hooks<any, any> {
  /** Set when the connection opens, before the handler runs. */
  connection: Connection.Connection = undefined as unknown as Connection.Connection
  handshakeDone: Effect.Effect<void> = Effect.void
  readonly timers: Timers.Timers
  readonly onState: (state: Connection.State) => void
  /** The session's child scope (its connection's resources), made first thing in its fiber. */
  scope: Scope.CloseableScope | undefined = undefined
  since = 0
  /** Whether the handshake is done (always, without a handshake timeout). */
  handshaken: boolean
  /** While the handshake is watched: its span, and its timer's cancel (none for an infinite timeout). */
  handshakeSpan: Tracer.Span | undefined = undefined
  cancelHandshake: (() => void) | undefined = undefined
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  inHandler = false
  cancelGrace: (() => void) | undefined = undefined
  constructor(
    readonly sup: Supervisor,
    readonly id: string,
    readonly remoteAddress: string | undefined,
    readonly accepted: Accepted<any>
  ) {
    this.timers = sup.timers
    this.handshaken = sup.handshakeTimeout === undefined
    this.onState = this.changed.bind(this)
  }

  /** The connection's state hook: the registry sees the change, and a closed connection starts the grace. */
  changed(state: Connection.State): void {
    this.sup.registry.changed()
    if (state === "Closed" && this.inHandler) this.startGrace()
  }

  /** The handler's grace starts at the close (or at its own start, on an already closed connection). */
  startGrace(): void {
    const graceMillis = this.sup.graceMillis
    if (this.cancelGrace !== undefined || graceMillis === undefined) return
    this.cancelGrace = this.sup.timers.schedule(graceMillis, graceExpiredOf(this))
  }

  /** The handler has ended (or was interrupted): no grace to wait for any more. Idempotent. */
  endHandler(): void {
    this.inHandler = false
    const cancel = this.cancelGrace
    if (cancel !== undefined) cancel()
  }

  /** The connection's open hook: the registry entry, and the handshake watch. */
  onOpen(handle: Connection.Handle<any, any>): Effect.Effect<void, never, Scope.Scope> {
    const track = Effect.sync(() => {
      const sup = this.sup
      const conn = handle.connection
      this.connection = conn
      sup.entries.set(this.id, this)
      sup.registry.changed()
      if (sup.shuttingDown) conn.unsafeRequestClose(DR.Shutdown(), "graceful")
    })
    return this.handshaken ? track : Effect.zipRight(track, this.watchHandshake)
  }

  /**
   * The handshake watch: the handler must call `Listener.handshakeDone` in time. A `tether.handshake` span
   * until it does, and an entry in the listener's timers (no fiber, no race per session).
   */
  get watchHandshake(): Effect.Effect<void> {
    return Effect.map(
      Effect.makeSpan("tether.handshake", {
        attributes: { "tether.connection": this.id },
        captureStackTrace: false
      }),
      (span) => {
        flattenIds(span)
        this.handshakeSpan = span
        const millis = this.sup.handshakeMillis
        if (millis !== undefined) this.cancelHandshake = this.sup.timers.schedule(millis, handshakeExpiredOf(this))
      }
    )
  }

  /** `Listener.handshakeDone`: the first call ends the watch. */
  completeHandshake(): void {
    if (this.handshaken) return
    this.handshaken = true
    this.endHandshakeWatch(Exit.void)
    if (this.sup.entries.get(this.id) === this) this.sup.registry.changed()
  }

  /** The handshake timeout expired: the session is closed (gracefully), with a warning. */
  handshakeExpired(): void {
    this.cancelHandshake = undefined
    if (this.handshaken) return
    const sup = this.sup
    const timeout = sup.handshakeTimeout!
    const span = this.handshakeSpan
    this.endHandshakeWatch(Exit.fail(new Cause.TimeoutException(`Operation timed out after '${Duration.format(timeout)}'`)))
    sup.handshakeTimeouts++
    this.connection.unsafeRequestClose(DR.HandshakeTimeout({ timeout }), "graceful")
    // logged from the listener's fiber: with the session's annotations, as if from its own
    const warning = Effect.logWarning(`handshake not completed within ${Duration.format(timeout)}`).pipe(
      Effect.annotateLogs({
        session: this.id,
        remote: this.remoteAddress ?? "?",
        connection: this.connection.id,
        reason: "HandshakeTimeout"
      })
    )
    sup.runLog(span === undefined ? warning : Effect.withParentSpan(warning, span))
  }

  /** Ends the handshake watch (its timer, its span) if it is on. */
  endHandshakeWatch(exit: Exit.Exit<unknown, unknown>): void {
    const cancel = this.cancelHandshake
    if (cancel !== undefined) {
      this.cancelHandshake = undefined
      cancel()
    }
    const span = this.handshakeSpan
    if (span !== undefined) {
      this.handshakeSpan = undefined
      span.end(this.sup.clock.unsafeCurrentTimeNanos(), exit)
    }
  }

  /** What `Listener.Session` shows of itself (not its fiber, scope and listener). */
  toJSON(): unknown {
    return { _id: "Session", id: this.id, remoteAddress: this.remoteAddress, connection: this.connection }
  }
  toString(): string {
    return Inspectable.format(this.toJSON())
  }
  [Inspectable.NodeInspectSymbol](): unknown {
    return this.toJSON()
  }
}

// made here, not in the session's methods: a closure keeps only what it names
const graceExpiredOf = (run: SessionRun) => (): void => {
  if (run.inHandler) run.fiber?.unsafeInterruptAsFork(FiberId.none)
}
const handshakeExpiredOf = (run: SessionRun) => (): void => run.handshakeExpired()
const endSpanOf = (span: Tracer.Span) => (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
  Effect.flatMap(Clock.currentTimeNanos, (now) => Effect.sync(() => span.end(now, exit)))

/**
 * Effect's native tracer makes a span's ids by appending their 48 hex digits one at a time: V8 keeps each
 * as a chain of ~20 cons strings (~0.7 KB per session, as long as the span lives) until it is flattened,
 * which reading a character of it does. Harmless for any other tracer's ids.
 */
const flattenIds = (span: Tracer.Span): void => {
  span.traceId.charCodeAt(0)
  span.spanId.charCodeAt(0)
}

/** `Listener.handshakeDone` of a watched session: a commit object (no closure per session). */
class HandshakeDone extends Effectable.Class<void> {
  constructor(private readonly run: SessionRun) {
    super()
  }
  commit(): Effect.Effect<void> {
    return Effect.sync(() => this.run.completeHandshake())
  }
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

    // One watchdog driver for the listener's sessions when the application provides none: the send-stall and
    // peer-gone probes of every session are run by it (one fiber per probe interval, idle sessions parked)
    // instead of a probe fiber per session. A Driver in the context (Watchdog.layerDriver) is used as it is.
    // Made before the sessions' fibers are interrupted (below), so it outlives them (scope finalizers run in
    // reverse order).
    const driver = Option.isSome(yield* Effect.serviceOption(WatchdogInternal.Driver))
      ? undefined
      : yield* WatchdogInternal.makeDriverService
    const logs = yield* FiberSet.make<void>()
    const runLog = yield* FiberSet.runtime(logs)<never>()

    // One set of timers for the listener: its sessions' close bounds (drain, linger) and their grace
    // (the deadlines of one duration come in order; one fiber sleeps to the earliest, only while some
    // are pending): no fiber, timer or interruption per session at shutdown.
    const clock = yield* Effect.clock
    const timers = Timers.make(clock, runLog)
    const graceMillis = Duration.isFinite(sessionGrace) ? Duration.toMillis(sessionGrace) : undefined
    const sup = new Supervisor(timers, clock, graceMillis, handshakeTimeout, runLog)
    const registry = sup.registry
    const entries = sup.entries

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

    // A session's set-up, in its own fiber: it returns the handler, run once the set-up has ended (nothing of
    // the set-up stays on the fiber's stack while the handler runs). The fiber's log annotations are set when it
    // is made (below), its context (the Session, the watchdog driver, its scope and span) once here, instead of
    // through `provideService` / `annotateLogs` / `withSpan` / `scoped` (each leaves a region on the stack for the
    // session's whole life). The context is set before the connection is made, so that the connection's runner
    // shares the fiber's FiberRefs instead of keeping a copy of its own; so the connection's fibers have the
    // session's span as their parent.
    const setUp = (run: SessionRun): Effect.Effect<Effect.Effect<void, E, R>, never, RA> =>
      Effect.gen(function*() {
        const a = run.accepted
        const scope = yield* Scope.make()
        run.scope = scope
        const transport = yield* Effect.provideService(a.open, Scope.Scope, scope)
        if (Option.isNone(transport)) {
          sup.rejected++
          return Effect.void
        }
        sup.accepted++
        run.since = yield* Clock.currentTimeMillis
        if (!run.handshaken) run.handshakeDone = new HandshakeDone(run)
        // no stack trace per session: it is always the same (this line) and costs a `new Error()` each;
        // ended by the session's scope, before the connection's close
        const span = yield* Effect.makeSpan("tether.session", {
          attributes: { "tether.connection": run.id, "tether.role": "server" },
          captureStackTrace: false
        })
        flattenIds(span)
        yield* FiberRef.update(FiberRef.currentContext, (ctx) => {
          const withScope = Context.add(Context.add(Context.add(ctx, Scope.Scope, scope), Session, run), Tracer.ParentSpan, span)
          return driver === undefined ? withScope : Context.add(withScope, WatchdogInternal.Driver, driver)
        })
        const opened = transport.value
        const conn: Connection.Connection = "unsafeRead" in opened
          ? yield* fromFramed(opened as Framed.Framed, sessionOptions, run)
          : yield* makeConnection(opened, sessionOptions, run)
        run.connection = conn
        yield* Scope.addFinalizerExit(scope, endSpanOf(span))
        // The handler runs until it ends, in this fiber. Once the connection has closed it still gets
        // `sessionGrace` to finish what it already read (`incoming` delivers every buffered frame, then
        // ends); only a handler that ignores the close is interrupted (by the listener's timers: no fiber,
        // timer or race per session), so a seat is never held for long by a dead session.
        run.inHandler = true
        if (conn.unsafeStats().state === "Closed") run.startGrace()
        return handler(conn)
      }) as Effect.Effect<Effect.Effect<void, E, R>, never, RA>

    // (a session's fiber is in `sup.fibers` from the first step of its set-up; before that, only in its context)
    const runOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>): SessionRun =>
      sup.fibers.get(fiber) ?? Context.unsafeGet(fiber.currentContext, Session) as SessionRun

    // The session's effect is the same for every session, made once here: the frames it leaves on a session's
    // stack while the handler runs are shared (per session only the two interruptibility frames), where an
    // `onExit` and a `catchAllCause` made per session keep ~2 KB of effects and closures each. The session is
    // found from its fiber: in the context at its start (the session's runtime), then in `sup.fibers`.
    const start = Effect.withFiberRuntime<Effect.Effect<void, E, R>, never, RA>((fiber) => {
      const run = Context.unsafeGet(fiber.currentContext, Session) as SessionRun
      run.fiber = fiber
      sup.fibers.set(fiber, run)
      return setUp(run)
    })
    // a failure of the handler is its own (logged); one of the set-up is the session's
    const handlerEnded = Effect.withFiberRuntime<void>((fiber) => {
      runOf(fiber).endHandler()
      return Effect.void
    })
    const handled = Effect.matchCauseEffect(Effect.flatten(start), {
      onFailure: (cause) =>
        Effect.withFiberRuntime<void, unknown>((fiber) => {
          const run = runOf(fiber)
          if (!run.inHandler) return Effect.failCause(cause)
          run.endHandler()
          return handlerFailed(cause)
        }),
      onSuccess: () => handlerEnded
    })
    // whatever happens (the handler ends, fails, or is interrupted), the session's scope closes (the
    // connection's full shutdown, socket destroyed, is a finalizer of it), then its seat is released: `onExit`
    const finish = (exit: Exit.Exit<unknown, unknown>) =>
      Effect.withFiberRuntime<void>((fiber) => {
        const run = runOf(fiber)
        run.endHandler()
        const released = Effect.sync(() => sup.release(fiber, run))
        return run.scope === undefined ? released : Effect.ensuring(Scope.close(run.scope, exit), released)
      })
    const restored = (yield* Effect.checkInterruptible(Effect.succeed)) ? Effect.interruptible(handled) : handled
    const sessionEffect: Effect.Effect<void, unknown, Exclude<R, Listener.Session> | RA> = Effect.uninterruptible(
      Effect.matchCauseEffect(restored, {
        onFailure: (cause) =>
          Effect.matchCauseEffect(finish(Exit.failCause(cause)), {
            onFailure: (cause2) => Effect.failCause(Cause.sequential(cause, cause2)),
            onSuccess: () => Effect.failCause(cause)
          }),
        onSuccess: () => finish(Exit.void)
      })
    ) as Effect.Effect<void, unknown, Exclude<R, Listener.Session> | RA>

    // The sessions run from the listener's runtime (captured here, with its interruptibility, above), each
    // with its session in the context it starts with. Each session fiber starts with its FiberRefs as values of its own (one entry per FiberRef, none with the
    // history of the ref in the listener's fibers) and its log annotations set. A fiber keeps, for each FiberRef
    // it sets, that history too: a copy of it as a spread array per ref and per fiber (~0.2 KB each, for the
    // context, the log annotations and the runtime flags every session sets). A session fiber is never joined to
    // the listener's, so the history is never used.
    const runtime = yield* Effect.runtime<Exclude<R, Listener.Session> | RA>()
    const refList = Array.from(FiberRefs.fiberRefs(runtime.fiberRefs))
    if (!refList.includes(FiberRef.currentContext)) refList.push(FiberRef.currentContext)
    if (!refList.includes(FiberRef.currentLogAnnotations)) refList.push(FiberRef.currentLogAnnotations)
    const runSession = (run: SessionRun): void => {
      Runtime.runFork(
        Runtime.make({
          context: Context.add(runtime.context, Session, run),
          runtimeFlags: runtime.runtimeFlags,
          fiberRefs: runtime.fiberRefs
        }),
        sessionEffect,
        { updateRefs: (refs, id) => sessionRefs(refs, id, run) }
      )
    }
    const sessionRefs = (refs: FiberRefs.FiberRefs, id: FiberId.Runtime, run: SessionRun): FiberRefs.FiberRefs => {
      const locals = new Map<FiberRef.FiberRef<any>, Arr.NonEmptyReadonlyArray<readonly [FiberId.Single, any]>>()
      for (const ref of refList) {
        const value = FiberRefs.getOrDefault(refs, ref)
        locals.set(ref, [[
          id,
          ref === FiberRef.currentLogAnnotations
            ? HashMap.set(HashMap.set(value, "session", run.id), "remote", run.remoteAddress ?? "?")
            : value
        ]])
      }
      return FiberRefs.unsafeMake(locals)
    }
    // the listener's scope closing interrupts whatever session is left (after the shutdown below, which runs first)
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => sup.fibers.size === 0 ? Effect.void : Fiber.interruptAll(Array.from(sup.fibers.keys())))
    )

    const noPending = { pending: 0, upgradeTimeouts: 0 }
    const pendingOf = options.pending ?? (() => noPending)
    const unsafeHasSeat = () => !sup.shuttingDown && sup.seats + pendingOf().pending < maxConnections
    const unsafeRefuse = (remoteAddress: string | undefined, refuse: () => void): void => {
      refuse()
      sup.refused++
      const why = sup.shuttingDown ? "shutting down" : `all ${maxConnections} seats taken`
      runLog(Effect.logWarning(`refused connection from ${remoteAddress ?? "?"}: ${why} (${sup.refused} refused)`))
    }
    const unsafeAccept = (a: Accepted<RA>): void => {
      if (!unsafeHasSeat()) return unsafeRefuse(a.remoteAddress, () => a.refuse())
      sup.seats++
      runSession(new SessionRun(sup, `${prefix}-${++sup.seq}`, a.remoteAddress, a))
    }

    const stats = (): Listener.Stats => ({
      active: sup.seats,
      ...pendingOf(),
      accepted: sup.accepted,
      refused: sup.refused,
      rejected: sup.rejected,
      handshakeTimeouts: sup.handshakeTimeouts,
      completed: sup.completed
    })

    const shutdownDone = yield* Deferred.make<Listener.ShutdownReport>()
    const shutdown: Effect.Effect<Listener.ShutdownReport> = Effect.uninterruptible(
      Effect.suspend(() => {
        if (sup.shuttingDown) return Deferred.await(shutdownDone)
        sup.shuttingDown = true
        return Effect.gen(function*() {
          const started = yield* Clock.currentTimeMillis
          options.stopAccepting()
          const count = sup.fibers.size
          yield* Effect.logDebug(`shutdown: closing ${count} sessions (bound ${Duration.format(shutdownTimeout)})`)
          // every connection runs its own bounded graceful close, all in parallel. The requests go out in
          // batches with a turn of the event loop between them: thousands of closes started in one go run
          // as one long burst of microtasks in which no socket event (the peers' FIN) is read, so every
          // linger bound would expire before its peer's answer is seen.
          // The bound covers the requests too.
          const requestAll = Effect.gen(function*() {
            let batch = 0
            for (const e of Array.from(entries.values())) {
              e.connection.unsafeRequestClose(DR.Shutdown(), "graceful")
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
          const graceful = yield* Effect.zipRight(requestAll, sup.awaitEmpty).pipe(
            Effect.interruptible,
            Effect.timeout(shutdownTimeout),
            Effect.option,
            Effect.fork,
            Effect.flatMap(Fiber.join)
          )
          let aborted = 0
          if (Option.isNone(graceful)) {
            aborted = sup.fibers.size
            yield* Effect.logWarning(`shutdown timeout: aborting ${aborted} remaining sessions`)
            for (const e of entries.values()) e.connection.unsafeRequestClose(DR.Shutdown(), "abort")
            // aborts destroy at once; interrupting also releases sessions still opening (e.g. in an upgrade hook).
            // All at once, not one after the other.
            yield* Fiber.interruptAll(Array.from(sup.fibers.keys()))
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
        connection: (id) => Effect.sync(() => Option.fromNullable(entries.get(id)?.connection)),
        stats: Effect.sync(stats),
        unsafeStats: stats,
        shutdown
      })

    return { unsafeAccept, unsafeHasSeat, unsafeRefuse, server, shutdown }
  })
