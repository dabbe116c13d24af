/**
 * The FIX initiator: tether's `Dialer` (reconnect loop, session schedule,
 * Reconnect / Stop decisions) running one {@link start} session per
 * connection.
 *
 * - Outside the schedule's window the dialer does not connect.
 * - When the window ends, the live session logs out (Text 58 "session window
 *   ended", waiting up to `logoutTimeout` for the answer) and disconnects.
 * - A new period (e.g. after midnight in the schedule's zone) resets the
 *   sequence numbers; the first Logon of the period carries 141=Y.
 * - A session that ends with decision `Stop` (MsgSeqNum too low, CompID
 *   problem, ...) stops the dialer: no reconnect.
 *
 * @since 0.1.0
 */
import { Effect, ExecutionStrategy, Exit, Option, Schedule, Scope } from "effect"
import type { Duration } from "effect"
import { type Connection, Dialer, DisconnectReason, type SessionSchedule, type Transport, Watchdog } from "effect-tether"
import { fixCodec } from "./codec.js"
import { type Session, type SessionConfig, type SessionEnd, SequenceStore, start } from "./session.js"

/**
 * Options of {@link makeInitiator}.
 *
 * @example
 * ```ts
 * import type { InitiatorOptions } from "./client.js"
 *
 * const o: InitiatorOptions = {
 *   host: "127.0.0.1",
 *   port: 9878,
 *   session: { senderCompId: "TETHER", targetCompId: "QFIX", heartBtInt: 30 }
 * }
 * ```
 */
export interface InitiatorOptions {
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** Replaces TCP to host:port (tests use an in-memory transport). */
  readonly connect?: Effect.Effect<Transport.Transport, Transport.TransportError, Scope.Scope> | undefined
  readonly session: SessionConfig
  /** When the session may be connected (default: non-stop). */
  readonly schedule?: SessionSchedule.SessionSchedule | undefined
  /** Delay between connection attempts (default 5 s). */
  readonly reconnectInterval?: Duration.DurationInput | undefined
  /** Bound on each TCP connect (default 10 s). */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** How long a disconnect waits for the peer to close its side after our FIN (default 2 s). */
  readonly lingerTimeout?: Duration.DurationInput | undefined
  /** How long a disconnect lets queued messages flush (default 2 s). */
  readonly drainTimeout?: Duration.DurationInput | undefined
  /** Largest inbound message (default 1 MiB). */
  readonly maxFrameBytes?: number | undefined
  /** The sequence numbers (default: a fresh in-memory store). */
  readonly store?: SequenceStore | undefined
  /** Every dialer event (connects, disconnects, periods, ...). */
  readonly onDialerEvent?: ((event: Dialer.Event) => Effect.Effect<void>) | undefined
}

/**
 * A running initiator.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Initiator } from "./client.js"
 *
 * const shutdown = (i: Initiator) => Effect.zipRight(i.stop("operator"), i.dialer.outcome)
 * ```
 */
export interface Initiator {
  readonly dialer: Dialer.Dialer
  readonly store: SequenceStore
  /** The live session, if any. */
  readonly session: () => Option.Option<Session>
  /** Every session end so far, in order. */
  readonly ends: () => ReadonlyArray<SessionEnd>
  /** Logs the live session out (if any) and stops the dialer; completes when it has ended. */
  readonly stop: (text?: string) => Effect.Effect<Dialer.StopOutcome>
}

/**
 * Starts a FIX initiator in the current scope.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SessionSchedule } from "effect-tether"
 * import { makeInitiator } from "./client.js"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const initiator = yield* makeInitiator({
 *     host: "127.0.0.1",
 *     port: 9878,
 *     schedule: SessionSchedule.daily({ start: "08:00", end: "17:00", timeZone: "Europe/London" }),
 *     session: { senderCompId: "TETHER", targetCompId: "QFIX", heartBtInt: 30 }
 *   })
 *   return yield* initiator.dialer.outcome
 * }))
 * ```
 */
export const makeInitiator = (options: InitiatorOptions): Effect.Effect<Initiator, never, Scope.Scope> =>
  Effect.gen(function*() {
    const store = options.store ?? new SequenceStore()
    // sessions live in a scope of the initiator, made before the dialer: when the initiator's
    // scope closes, the live session logs out first (finalizer below), then the dialer stops,
    // then whatever is left of the sessions is interrupted
    const sessions = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    let current: Session | undefined
    const ends: Array<SessionEnd> = []

    // A session's driver lives in the sessions scope, not in the dialer's session fiber: when
    // the window ends the dialer interrupts that fiber and then calls `onWindowEnd`, which
    // still needs the session to log out.
    const runSession = (conn: Connection.Connection, control: Dialer.SessionControl) =>
      Effect.gen(function*() {
        store.enterPeriod(control.period)
        const scope = yield* Scope.fork(sessions, ExecutionStrategy.sequential)
        const session = yield* start(conn, options.session, store).pipe(Scope.extend(scope))
        current = session
        yield* Effect.forkIn(
          Effect.flatMap(session.end, (end) =>
            Effect.suspend(() => {
              ends.push(end)
              if (current === session) current = undefined
              return Scope.close(scope, Exit.void)
            })),
          sessions
        )
        const end = yield* session.end
        return end.decision === "Stop" ? Dialer.Decision.Stop({ reason: end.text }) : Dialer.Decision.Reconnect()
      })

    const logoutCurrent = (text: string, reason: DisconnectReason.DisconnectReason, decision: "Reconnect" | "Stop") =>
      Effect.suspend(() => {
        const s = current
        if (s === undefined) return Effect.void
        return Effect.asVoid(s.logout(text, { reason, decision }))
      })

    const dialer = yield* Dialer.make({
      id: `fix-${options.session.senderCompId}`,
      host: options.host ?? "127.0.0.1",
      ...(options.port !== undefined ? { port: options.port } : {}),
      ...(options.connect !== undefined ? { connect: options.connect } : {}),
      connectTimeout: options.connectTimeout ?? "10 seconds",
      connection: {
        codec: fixCodec({ malformed: "deliver", maxFrameBytes: options.maxFrameBytes }),
        lingerTimeout: options.lingerTimeout ?? "2 seconds",
        drainTimeout: options.drainTimeout ?? "2 seconds",
        // a close that does not finish within its own bounds is destroyed
        watchdogs: [Watchdog.liveness({ bound: "15 seconds" })]
      },
      session: runSession,
      // the session's end closes the connection itself; the dialer only has to notice
      sessionGrace: "1 second",
      backoff: Schedule.spaced(options.reconnectInterval ?? "5 seconds"),
      ...(options.schedule !== undefined ? { schedule: options.schedule } : {}),
      onWindowEnd: () =>
        logoutCurrent("session window ended", DisconnectReason.ScheduleEnd({ message: "window ended" }), "Reconnect"),
      onNewPeriod: ({ current: period }) => Effect.sync(() => void store.enterPeriod(period)),
      ...(options.onDialerEvent !== undefined ? { onEvent: options.onDialerEvent } : {})
    })

    // closing the initiator's scope logs the live session out (bounded by its logout timeout and linger)
    yield* Effect.addFinalizer(() =>
      logoutCurrent("initiator shutting down", DisconnectReason.Shutdown(), "Stop")
    )

    return {
      dialer,
      store,
      session: () => Option.fromNullable(current),
      ends: () => ends,
      // decision Stop: the dialer cannot reconnect between the Logout and the stop
      stop: (text) =>
        Effect.zipRight(
          logoutCurrent(text ?? "initiator stopping", DisconnectReason.Shutdown(), "Stop"),
          dialer.stop(text ?? "initiator stopping")
        )
    }
  })
