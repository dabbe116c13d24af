/**
 * The dialer loop: schedule window → connect → connection → replay + session →
 * close → backoff, with a stop-gate honoured in every state, and the send
 * router that hands every frame either to the live connection or to the
 * backlog, exactly once.
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Inspectable from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Backlog from "../Backlog.js"
import * as Connection from "../Connection.js"
import type * as Framed from "../Framed.js"
import type * as Dialer from "../Dialer.js"
import * as DR from "../DisconnectReason.js"
import type { DisconnectReason } from "../DisconnectReason.js"
import * as Framing from "../Framing.js"
import * as Metrics from "../Metrics.js"
import * as SessionSchedule from "../SessionSchedule.js"
import * as StopGate from "../StopGate.js"
import * as Transport from "../Transport.js"

/** @internal */
export const TypeId: Dialer.TypeId = Symbol.for("tether/Dialer") as Dialer.TypeId

/** @internal */
export const isDialer = (u: unknown): u is Dialer.Dialer => Predicate.hasProperty(u, TypeId)

/** @internal */
export const Decision: Data.TaggedEnum.Constructor<Dialer.Decision> = Data.taggedEnum<Dialer.Decision>()

/** @internal */
export const Event: Data.TaggedEnum.Constructor<Dialer.Event> = Data.taggedEnum<Dialer.Event>()

/** @internal */
export class DialerStopped extends Data.TaggedError("DialerStopped")<{ readonly reason: string }> {
  override get message() {
    return `dialer stopped: ${this.reason}`
  }
}

/** @internal */
export class DialerTag extends Context.Tag("tether/Dialer")<DialerTag, Dialer.Dialer>() {}

/**
 * What a dialer shows of itself (`toJSON`, `toString`, Node's inspect): its id and where its loop is, not its
 * closures.
 */
const DialerProto: Pick<Dialer.Dialer, typeof TypeId | "toJSON" | "toString" | typeof Inspectable.NodeInspectSymbol> =
  {
    [TypeId]: TypeId,
    toJSON(this: Dialer.Dialer) {
      const stats = this.unsafeStats()
      return {
        _id: "Dialer",
        id: this.id,
        status: stats.status,
        attempts: stats.attempts,
        connects: stats.connects,
        backlog: { messages: stats.backlogMessages, bytes: stats.backlogBytes }
      }
    },
    toString(this: Dialer.Dialer) {
      return Inspectable.format(this.toJSON())
    },
    [Inspectable.NodeInspectSymbol](this: Dialer.Dialer) {
      return this.toJSON()
    }
  }

/** @internal */
export const defaults = {
  connectTimeout: "10 seconds",
  resetAfter: "10 seconds",
  sessionGrace: "1 second",
  hookTimeout: "5 seconds",
  eventsCapacity: 256
} as const

/** @internal */
export const defaultBackoff: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(
  Schedule.jittered,
  Schedule.union(Schedule.spaced("30 seconds"))
)

type Route =
  | { readonly _tag: "Disconnected" }
  | { readonly _tag: "Replaying"; readonly conn: Connection.Connection }
  | { readonly _tag: "Connected"; readonly conn: Connection.Connection }

const DISCONNECTED: Route = { _tag: "Disconnected" }

let nextId = 0

const sendItem = (conn: Connection.Connection, item: Backlog.Item) =>
  item instanceof Connection.Encoded ? conn.sendEncoded(item) : conn.send(item)

type PhaseEnd =
  | { readonly _tag: "Decided"; readonly decision: Dialer.Decision }
  | { readonly _tag: "WindowEnd" }
  | { readonly _tag: "Stopping" }

/** @internal */
export const make = <E, R>(
  options: Dialer.Options<E, R>
): Effect.Effect<Dialer.Dialer, never, Scope.Scope | R> =>
  Effect.gen(function*() {
    const id = options.id ?? `dialer-${++nextId}`
    const labels = options.connection?.labels ?? { role: "client", endpoint: id }
    const metricTags = Metrics.labelsOf(labels)
    const codec = options.connection?.codec ?? Framing.lengthPrefixed()
    const connectTimeout = Duration.decode(options.connectTimeout ?? defaults.connectTimeout)
    const resetAfter = Duration.toMillis(Duration.decode(options.resetAfter ?? defaults.resetAfter))
    const sessionGrace = Duration.decode(options.sessionGrace ?? defaults.sessionGrace)
    const hookTimeout = Duration.decode(options.hookTimeout ?? defaults.hookTimeout)
    const schedule = options.schedule ?? SessionSchedule.nonStop
    const backoff = options.backoff ?? defaultBackoff
    const readyOn = options.readyOn ?? "connect"
    const userOnEvent = options.onEvent
    const session = options.session ??
      ((conn: Connection.Connection) => Effect.as(conn.closed, Decision.Reconnect()))
    if (options.connect === undefined && options.connectFramed === undefined && options.port === undefined) {
      return yield* Effect.dieMessage("Dialer.make: either `port` or `connect` is required")
    }
    const connect: Effect.Effect<Transport.Transport | Framed.Framed, Transport.TransportError, Scope.Scope> =
      options.connectFramed ?? options.connect ??
        Transport.connectTcp({ ...options.socket, host: options.host, port: options.port ?? 0, connectTimeout })

    const pubsub = yield* PubSub.sliding<Dialer.Event>(options.eventsCapacity ?? defaults.eventsCapacity)
    const emit = (event: Dialer.Event): Effect.Effect<void> =>
      Effect.zipRight(PubSub.publish(pubsub, event), userOnEvent === undefined ? Effect.void : userOnEvent(event))

    const backlog = yield* Backlog.make({
      labels,
      ...options.backlog,
      onEvent: (e) => {
        const mapped = Backlog.Event.$match(e, {
          Evicted: ({ frames }) => Event.BacklogOverflow({ policy: "dropOldest", reason: "evicted", frames }),
          Rejected: ({ frames, reason }) => Event.BacklogOverflow({ policy: "rejectNew", reason, frames }),
          Expired: ({ frames }) => Event.Expired({ frames }),
          Discarded: ({ frames, reason }) => Event.Discarded({ frames, reason })
        })
        return Effect.zipRight(emit(mapped), options.backlog?.onEvent?.(e) ?? Effect.void)
      }
    })

    const gate = StopGate.unsafeMake<string>()
    const outcomeDeferred = yield* Deferred.make<Dialer.StopOutcome>()
    const statusRef = yield* SubscriptionRef.make<Dialer.Status>("WaitingForWindow")
    let status: Dialer.Status = "WaitingForWindow"
    const setStatus = (s: Dialer.Status) =>
      Effect.suspend(() => {
        if (status === s) return Effect.void
        status = s
        return SubscriptionRef.set(statusRef, s)
      })
    let route: Route = DISCONNECTED
    let attempts = 0
    let connects = 0

    // ---- the send router ----
    const stoppedError = (): DialerStopped | undefined => {
      const r = gate.unsafeReason()
      return Option.isSome(r) ? new DialerStopped({ reason: r.value }) : undefined
    }
    const route_ = (item: Backlog.Item): Effect.Effect<void, DialerStopped | Backlog.BacklogFull> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        // check the gate, pick the route and commit in one synchronous step
        const stopped = stoppedError()
        if (stopped) return Effect.fail(stopped)
        const r = route
        if (r._tag !== "Connected") return backlog.unsafeOffer(item, now)
        return Effect.catchAll(
          sendItem(r.conn, item) as Effect.Effect<void, Connection.ConnectionClosed | Framing.FrameError>,
          (e): Effect.Effect<void, DialerStopped | Backlog.BacklogFull> => {
            // not accepted by the connection (it is closing): this connection is done, route again
            if (route === r) route = DISCONNECTED
            return e._tag === "ConnectionClosed" ? route_(item) : Effect.die(e)
          }
        )
      })
    // non-waiting variant: "full" only when the live connection's queue has no room
    const tryRoute = (
      item: Connection.Encoded
    ): Effect.Effect<"accepted" | "full", DialerStopped | Backlog.BacklogFull> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const stopped = stoppedError()
        if (stopped) return Effect.fail(stopped)
        const r = route
        if (r._tag !== "Connected") return Effect.as(backlog.unsafeOffer(item, now), "accepted" as const)
        return Effect.catchAll(r.conn.trySendEncoded(item), () => {
          if (route === r) route = DISCONNECTED
          return tryRoute(item)
        })
      })
    const send = (frame: Uint8Array) =>
      Effect.suspend((): Effect.Effect<void, DialerStopped | Backlog.BacklogFull | Framing.FrameError> => {
        const err = codec.check(frame)
        return err ? Effect.fail(err) : route_(frame)
      })

    // ---- replay: backlog first, in order, then switch new sends to the connection ----
    const replay = (conn: Connection.Connection): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (route._tag !== "Replaying" || route.conn !== conn) return Effect.void
        return Effect.flatMap(backlog.takeAll, (items) => {
          if (items.length === 0) {
            // nothing left and nothing can arrive between this check and the switch
            if (route._tag === "Replaying" && route.conn === conn) route = { _tag: "Connected", conn }
            return setStatus("Connected")
          }
          let i = 0
          const step: Effect.Effect<boolean> = Effect.suspend(() => {
            if (i >= items.length) return Effect.succeed(true)
            return Effect.matchEffect(sendItem(conn, items[i]!), {
              onFailure: (e) => {
                if (e._tag === "ConnectionClosed") return Effect.succeed(false)
                // cannot happen with frames checked on send; never lose one silently
                const bad = Backlog.payload(items[i++]!)
                return Effect.zipRight(
                  emit(Event.Discarded({ frames: [bad], reason: `frame error: ${e.message}` })),
                  step
                )
              },
              onSuccess: () => {
                i++
                return step
              }
            })
          })
          return step.pipe(
            // whatever was taken but not accepted goes back to the front (also on interruption)
            Effect.onExit(() => backlog.prepend(items.slice(i))),
            Effect.flatMap((ok) => (ok ? replay(conn) : Effect.void))
          )
        })
      })

    // ---- the loop ----
    const gateAwait = StopGate.await(gate)
    /** Runs `self` unless the gate closes first (then `None`). */
    const unlessStopped = <A, E2, R2>(self: Effect.Effect<A, E2, R2>): Effect.Effect<Option.Option<A>, E2, R2> =>
      Option.isSome(gate.unsafeReason())
        ? Effect.succeedNone
        : Effect.raceFirst(Effect.asSome(self), Effect.as(gateAwait, Option.none<A>()))

    const closeConnection = (
      conn: Connection.Connection,
      scope: Scope.CloseableScope,
      replayFiber: Fiber.RuntimeFiber<void>,
      reason: DisconnectReason,
      connectedAt: number
    ) =>
      Effect.gen(function*() {
        yield* setStatus("Closing")
        if (route._tag !== "Disconnected" && route.conn === conn) route = DISCONNECTED
        yield* conn.close(reason)
        yield* Fiber.interrupt(replayFiber) // puts back what it had taken (before the undelivered go in front)
        const outcome = yield* conn.outcome
        // exactly what the peer cannot have decoded: the frame cut in the middle (its truncated copy
        // dies with the destroyed connection) and the frames none of whose bytes reached the kernel
        const requeue = outcome.truncated === undefined ? outcome.undelivered : [outcome.truncated, ...outcome.undelivered]
        yield* backlog.prepend(requeue)
        yield* Scope.close(scope, Exit.void)
        const now = yield* Clock.currentTimeMillis
        yield* emit(Event.Disconnected({
          connectionId: conn.id,
          reason: outcome.reason,
          requeued: requeue.length,
          uptimeMillis: now - connectedAt
        }))
        return now - connectedAt
      })

    const runSession = (
      conn: Connection.Connection,
      window: SessionSchedule.Window,
      replayFiber: Fiber.RuntimeFiber<void>,
      startReplay: Effect.Effect<void>
    ): Effect.Effect<PhaseEnd, never, R> =>
      Effect.gen(function*() {
        const control: Dialer.SessionControl = {
          ready: Effect.zipRight(startReplay, Fiber.join(replayFiber)),
          period: window.period,
          windowEnd: window.end,
          attempt: attempts
        }
        const decided = session(conn, control).pipe(
          Effect.provideService(Connection.Connection, conn),
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.zipRight(
              Effect.logWarning("session failed: stopping the dialer", cause),
              Effect.succeed(Decision.Stop({ reason: `session failed: ${Cause.pretty(cause)}` }))
            )
          ),
          Effect.map((decision): PhaseEnd => ({ _tag: "Decided", decision })),
          Effect.withSpan("tether.session", {
            attributes: { "tether.dialer": id, "tether.connection": conn.id, "tether.role": "client" },
            captureStackTrace: false
          })
        )
        const closedThenGrace = conn.closed.pipe(
          Effect.zipRight(Effect.sleep(sessionGrace)),
          Effect.as<PhaseEnd>({ _tag: "Decided", decision: Decision.Reconnect() })
        )
        const now = yield* Clock.currentTimeMillis
        const windowEnd = Number.isFinite(window.end)
          ? Effect.as(Effect.sleep(Duration.millis(Math.max(0, window.end - now))), { _tag: "WindowEnd" } as PhaseEnd)
          : Effect.never
        const stopping = Effect.as(gateAwait, { _tag: "Stopping" } as PhaseEnd)
        return yield* Effect.raceAll([decided, closedThenGrace, windowEnd, stopping])
      })

    const finish = (reason: string) =>
      Effect.gen(function*() {
        gate.unsafeClose(reason)
        route = DISCONNECTED
        const undelivered = yield* backlog.drainAll
        yield* setStatus("Stopped")
        const outcome: Dialer.StopOutcome = { reason, undelivered }
        yield* emit(Event.Stopped(outcome))
        yield* Effect.logDebug(`dialer stopped: ${reason}; ${undelivered.length} undelivered frames handed back`)
        yield* Deferred.succeed(outcomeDeferred, outcome)
      })

    const stopReason = () => Option.getOrElse(gate.unsafeReason(), () => "stopped")

    let currentScope: Scope.CloseableScope | undefined
    const loop = Effect.gen(function*() {
      const driver = yield* Schedule.driver(backoff)
      let lastPeriod: Option.Option<string> = Option.none()
      let everConnected = false
      /** Backoff; false when the schedule is exhausted or the gate closed. */
      const backoffStep = Effect.gen(function*() {
        yield* setStatus("Backoff")
        const r = yield* unlessStopped(Effect.either(driver.next(undefined)))
        if (Option.isNone(r)) return false
        if (r.value._tag === "Left") {
          gate.unsafeClose("backoff schedule exhausted")
          return false
        }
        return true
      })
      while (true) {
        if (Option.isSome(gate.unsafeReason())) return
        // 1. the session window
        const now = yield* Clock.currentTimeMillis
        const window = SessionSchedule.next(schedule, now)
        if (window.start > now) {
          yield* setStatus("WaitingForWindow")
          yield* emit(Event.WaitingForWindow({ opensAt: window.start }))
          yield* unlessStopped(Effect.sleep(Duration.millis(window.start - now)))
          continue
        }
        // 2. a new period: discard (or keep) the backlog, run the per-period hook
        if (Option.isNone(lastPeriod) || lastPeriod.value !== window.period) {
          if (Option.isSome(lastPeriod) && !backlog.keepAcrossPeriods) {
            yield* backlog.discardAll(`new session period ${window.period}`)
          }
          yield* emit(Event.NewPeriod({ previous: lastPeriod, current: window.period }))
          if (options.onNewPeriod !== undefined) {
            const hook = options.onNewPeriod({ previous: lastPeriod, current: window.period })
            const r = yield* unlessStopped(Effect.exit(Effect.timeout(hook, hookTimeout)))
            if (Option.isSome(r) && Exit.isFailure(r.value)) {
              yield* Effect.logWarning("onNewPeriod hook failed", r.value.cause)
            }
          }
          lastPeriod = Option.some(window.period)
          yield* driver.reset // a new period starts with a fresh backoff
        }
        // 3. connect (bounded by connectTimeout), in a child scope
        attempts++
        if (attempts > 1) Metrics.reconnectAttempts.unsafeUpdate(1, metricTags)
        yield* setStatus("Connecting")
        yield* emit(Event.Connecting({ attempt: attempts }))
        const scope = yield* Scope.make(ExecutionStrategy.sequential)
        currentScope = scope
        const connected = yield* unlessStopped(Effect.either(
          connect.pipe(
            Effect.timeoutFail({
              duration: connectTimeout,
              onTimeout: () =>
                new Transport.TransportError({
                  reason: "ConnectTimeout",
                  message: `connect timed out after ${Duration.format(connectTimeout)}`
                })
            }),
            Scope.extend(scope),
            Effect.withSpan("tether.connect", {
              attributes: { "tether.dialer": id, "tether.attempt": attempts },
              captureStackTrace: false // the connection's fibers keep it as parent: no Error held per connection
            })
          )
        ))
        if (Option.isNone(connected)) {
          yield* Scope.close(scope, Exit.void)
          return
        }
        if (connected.value._tag === "Left") {
          yield* Scope.close(scope, Exit.void)
          yield* emit(Event.ConnectFailed({ attempt: attempts, error: connected.value.left }))
          if (!(yield* backoffStep)) return
          continue
        }
        const opened = connected.value.right
        const connectionOptions: Connection.Options = { ...options.connection, labels, codec, id: `${id}#${attempts}` }
        const conn = yield* ("unsafeRead" in opened
          ? Connection.fromFramed(opened, connectionOptions)
          : Connection.make(opened, connectionOptions)).pipe(Scope.extend(scope))
        const connectedAt = yield* Clock.currentTimeMillis
        connects++
        yield* emit(Event.Connected({ attempt: attempts, connectionId: conn.id, reconnected: everConnected }))
        everConnected = true
        route = { _tag: "Replaying", conn } // new sends wait in the backlog until the replay is done
        yield* setStatus("Replaying")
        // 4. replay (now, or when the session says it is ready) and the session
        const replayGo = yield* Deferred.make<void>()
        const replayFiber = yield* Effect.forkIn(Effect.zipRight(Deferred.await(replayGo), replay(conn)), scope)
        const startReplay = Deferred.succeed(replayGo, undefined).pipe(Effect.asVoid)
        if (readyOn === "connect") yield* startReplay
        const end = yield* runSession(conn, window, replayFiber, startReplay)
        // 5. close, requeue what the connection did not write
        let reason: DisconnectReason
        switch (end._tag) {
          case "Stopping":
            reason = DR.Shutdown()
            break
          case "WindowEnd": {
            if (options.onWindowEnd !== undefined) {
              const r = yield* Effect.exit(Effect.timeout(options.onWindowEnd(conn), hookTimeout))
              if (Exit.isFailure(r)) yield* Effect.logWarning("onWindowEnd hook failed", r.cause)
            }
            reason = DR.ScheduleEnd({ message: `window ${window.period} ended` })
            break
          }
          case "Decided":
            if (end.decision._tag === "Stop") gate.unsafeClose(end.decision.reason)
            reason = end.decision._tag === "Stop"
              ? DR.LocalClose({ message: end.decision.reason })
              : DR.LocalClose({ message: "reconnect" })
        }
        const uptime = yield* closeConnection(conn, scope, replayFiber, reason, connectedAt)
        if (Option.isSome(gate.unsafeReason())) return
        // 6. backoff (none after a window end: the next window is the wait)
        if (end._tag === "WindowEnd" || uptime >= resetAfter) yield* driver.reset
        if (end._tag !== "WindowEnd" && !(yield* backoffStep)) return
      }
    })

    const loopFiber = yield* Effect.forkScoped(
      loop.pipe(
        Effect.onExit(() => currentScope === undefined ? Effect.void : Scope.close(currentScope, Exit.void)),
        Effect.onExit((exit) => finish(Exit.isSuccess(exit) ? stopReason() : "dialer loop interrupted")),
        Effect.annotateLogs({ dialer: id })
      )
    )
    // closing the scope is a stop; added after the fork so that it runs before the loop is interrupted
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        gate.unsafeClose("scope closed")
        return Fiber.await(loopFiber)
      })
    )

    const stop = (reason?: string) =>
      Effect.suspend(() => {
        gate.unsafeClose(reason ?? "stop requested")
        return Deferred.await(outcomeDeferred)
      })

    const dialer: Dialer.Dialer = Object.assign(Object.create(DialerProto), {
      id,
      codec,
      send,
      sendEncoded: (frame) => route_(frame),
      trySendEncoded: tryRoute,
      status: SubscriptionRef.get(statusRef),
      statusChanges: statusRef.changes,
      connection: Effect.sync(() => (route._tag === "Connected" ? Option.some(route.conn) : Option.none())),
      stop,
      outcome: Deferred.await(outcomeDeferred),
      events: Stream.fromPubSub(pubsub),
      subscribe: PubSub.subscribe(pubsub),
      unsafeStats: () => ({
        status,
        attempts,
        connects,
        backlogMessages: backlog.size(),
        backlogBytes: backlog.bytes()
      })
    } satisfies Omit<Dialer.Dialer, keyof typeof DialerProto>)
    return dialer
  })

/** @internal */
export const layer = <E, R>(options: Dialer.Options<E, R>): Layer.Layer<DialerTag, never, R> =>
  Layer.scoped(DialerTag, make(options))
