/**
 * A FIX 4.4 initiator session over one tether `Connection`.
 *
 * - Logon (35=A, HeartBtInt 108) answered within `logonTimeout` (default 10 s),
 *   else the connection closes with `HandshakeTimeout`.
 * - Heartbeat (0) / TestRequest (1) timers come from tether's
 *   `Watchdog.heartbeat`, armed once logged on: a Heartbeat after HeartBtInt
 *   without outbound traffic, a TestRequest after 1.2 × HeartBtInt without
 *   inbound traffic, `PeerTimeout` at the next expiry. An inbound TestRequest is
 *   answered with a Heartbeat carrying its TestReqID (112).
 * - Logout (5) both ways: ours waits `logoutTimeout` (default 2 s) for the
 *   answer; the peer's is answered. Then the connection closes (FIN, bounded
 *   linger).
 * - Sequence numbers live in a {@link SequenceStore} that survives reconnects
 *   within a session period and resets when the period changes.
 * - A gap (MsgSeqNum higher than expected) sends one ResendRequest (2); the
 *   peer's SequenceReset-GapFill (4, 123=Y) closes it. A ResendRequest from the
 *   peer is answered with a GapFill (this session does not replay messages).
 * - The fatal path: a MsgSeqNum lower than expected without PossDupFlag (43=Y)
 *   sends Logout with the reason in Text (58), closes at once and ends with
 *   decision `Stop` (no reconnect).
 *
 * @since 0.1.0
 */
import { Clock, Deferred, Duration, Effect, Exit, Option, Scope, Stream } from "effect"
import { Connection, DisconnectReason, Framing, Watchdog } from "effect-tether"
import {
  encodeBody,
  type Field,
  get,
  getInt,
  isMalformedMarker,
  malformedError,
  type Message,
  MsgType,
  parseBody,
  SOH,
  Tag,
  utcTimestamp
} from "./codec.js"

/**
 * What the initiator should do after a session ends.
 *
 * @example
 * ```ts
 * import type { Decision } from "./session.js"
 *
 * const d: Decision = "Stop"
 * ```
 */
export type Decision = "Reconnect" | "Stop"

/**
 * Sequence numbers of one session period. Kept across reconnects within the
 * period; {@link SequenceStore.enterPeriod} resets them when the period changes.
 *
 * @example
 * ```ts
 * import { SequenceStore } from "./session.js"
 *
 * const store = new SequenceStore()
 * store.enterPeriod("2024-01-02") // true: a new period, numbers reset to 1
 * store.nextOut // 1
 * ```
 */
export class SequenceStore {
  /** The current period key (`undefined` before the first). */
  period: string | undefined = undefined
  /** MsgSeqNum of the next message we send. */
  nextOut = 1
  /** MsgSeqNum we expect next from the peer. */
  nextIn = 1
  /** Moves to `period`; resets both numbers to 1 when it differs from the current one. Returns whether it reset. */
  enterPeriod(period: string): boolean {
    if (this.period === period) return false
    this.period = period
    this.reset()
    return true
  }
  /** Resets both numbers to 1. */
  reset(): void {
    this.nextOut = 1
    this.nextIn = 1
  }
}

/**
 * Static settings of a session.
 *
 * @example
 * ```ts
 * import type { SessionConfig } from "./session.js"
 *
 * const config: SessionConfig = { senderCompId: "TETHER", targetCompId: "QFIX", heartBtInt: 30 }
 * ```
 */
export interface SessionConfig {
  /**
   * `"initiator"` (default) sends the Logon and waits for the answer;
   * `"acceptor"` waits for the Logon, answers it and adopts its HeartBtInt.
   */
  readonly role?: "initiator" | "acceptor" | undefined
  readonly senderCompId: string
  readonly targetCompId: string
  /** HeartBtInt (108) in whole seconds (an acceptor uses the initiator's). */
  readonly heartBtInt: number
  /** How long the Logon may stay unanswered (default 10 s). */
  readonly logonTimeout?: Duration.DurationInput | undefined
  /** How long our Logout waits for the peer's (default 2 s). */
  readonly logoutTimeout?: Duration.DurationInput | undefined
  /** Inbound silence before a TestRequest, as a multiple of HeartBtInt (default 1.2). */
  readonly testRequestFactor?: number | undefined
  /**
   * Reset both numbers to 1 and send ResetSeqNumFlag (141=Y) on every Logon
   * (default false). Whatever this says, an initiator sends 141=Y when its
   * store is fresh (next outbound MsgSeqNum 1: the first Logon of a period),
   * so that the peer resets too.
   */
  readonly resetSeqNumOnLogon?: boolean | undefined
  /** Called synchronously for every session event (logging, tests). Must not throw. */
  readonly observe?: ((event: SessionEvent) => void) | undefined
  /** Handles inbound application messages (default: ignore). Runs on the reader fiber, in order. */
  readonly onMessage?: ((message: Message, session: Session) => Effect.Effect<void>) | undefined
}

/**
 * Defaults of {@link SessionConfig}.
 *
 * @example
 * ```ts
 * import { sessionDefaults } from "./session.js"
 *
 * sessionDefaults.logonTimeout // "10 seconds"
 * ```
 */
export const sessionDefaults = {
  logonTimeout: "10 seconds",
  logoutTimeout: "2 seconds",
  testRequestFactor: 1.2
} as const

/**
 * Everything that happens in a session, in order.
 *
 * @example
 * ```ts
 * import type { SessionEvent } from "./session.js"
 *
 * const log = (e: SessionEvent) => console.log(e._tag)
 * ```
 */
export type SessionEvent =
  | { readonly _tag: "Sent"; readonly message: Message; readonly at: number }
  | { readonly _tag: "Received"; readonly message: Message; readonly at: number }
  | { readonly _tag: "LoggedOn"; readonly heartBtInt: number; readonly at: number }
  | { readonly _tag: "Gap"; readonly expected: number; readonly received: number; readonly at: number }
  | { readonly _tag: "Ended"; readonly end: SessionEnd; readonly at: number }

/**
 * How a session ended.
 *
 * @example
 * ```ts
 * import type { SessionEnd } from "./session.js"
 *
 * const again = (end: SessionEnd) => end.decision === "Reconnect"
 * ```
 */
export interface SessionEnd {
  /** Why the connection ended (as recorded by the connection). */
  readonly reason: DisconnectReason.DisconnectReason
  readonly decision: Decision
  /** Human-readable account, e.g. the Text (58) of a Logout. */
  readonly text: string
  readonly loggedOn: boolean
  readonly logoutSent: boolean
  readonly logoutReceived: boolean
  readonly outcome: Connection.CloseOutcome
}

/**
 * A running session.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Session } from "./session.js"
 *
 * const newsAndBye = (s: Session) =>
 *   Effect.zipRight(s.send("B", [[148, "hello"]]), s.logout("done"))
 * ```
 */
export interface Session {
  readonly phase: () => Phase
  readonly store: SequenceStore
  /** Completes once logged on; fails with the end if the session ended first. */
  readonly loggedOn: Effect.Effect<void, SessionEnd>
  /**
   * Sends an application (or admin) message with the next MsgSeqNum; returns
   * that number. A value containing SOH, or a message above `maxFrameBytes`,
   * fails with a `FrameError` and uses no MsgSeqNum.
   */
  readonly send: (
    msgType: string,
    fields?: ReadonlyArray<Field>
  ) => Effect.Effect<number, Connection.ConnectionClosed | Framing.FrameError>
  /**
   * Logs out (Text 58 = `text`), waits up to `logoutTimeout` for the peer's
   * Logout, closes the connection and returns the end. `reason` is recorded as
   * the disconnect reason (default `LocalClose`), `decision` defaults to `Stop`.
   */
  readonly logout: (
    text?: string,
    options?: { readonly reason?: DisconnectReason.DisconnectReason; readonly decision?: Decision }
  ) => Effect.Effect<SessionEnd>
  /** Completes when the session has ended and its connection is closed. */
  readonly end: Effect.Effect<SessionEnd>
}

/**
 * Session phases.
 *
 * @example
 * ```ts
 * import type { Phase } from "./session.js"
 *
 * const p: Phase = "LoggedOn"
 * ```
 */
export type Phase = "LoggingOn" | "LoggedOn" | "LogoutSent" | "Ended"

type EndRequest =
  | { readonly _tag: "Fatal"; readonly text: string }
  | { readonly _tag: "Garbled"; readonly error: Framing.FrameError }
  | { readonly _tag: "PeerLogout"; readonly text: string }
  | {
    readonly _tag: "Logout"
    readonly text: string
    readonly reason: DisconnectReason.DisconnectReason
    readonly decision: Decision
  }

/**
 * Starts an initiator session on an open connection (made with
 * `fixCodec({ malformed: "deliver" })` so a garbled message can still be
 * answered with a Logout): sends Logon and runs until the session ends. The
 * driver fiber lives in the current scope.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection } from "effect-tether"
 * import { fixCodec } from "./codec.js"
 * import { SequenceStore, start } from "./session.js"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const conn = yield* Connection.connectTcp({ port: 9878, codec: fixCodec({ malformed: "deliver" }) })
 *   const session = yield* start(conn, { senderCompId: "TETHER", targetCompId: "QFIX", heartBtInt: 30 }, new SequenceStore())
 *   yield* session.loggedOn
 *   return yield* session.logout("bye")
 * }))
 * ```
 */
export const start = (
  conn: Connection.Connection,
  config: SessionConfig,
  store: SequenceStore
): Effect.Effect<Session, never, Scope.Scope> =>
  Effect.gen(function*() {
    const logonTimeout = Duration.decode(config.logonTimeout ?? sessionDefaults.logonTimeout)
    const logoutTimeout = Duration.decode(config.logoutTimeout ?? sessionDefaults.logoutTimeout)
    const observe = config.observe ?? (() => {})
    const lock = yield* Effect.makeSemaphore(1)
    const logonDone = yield* Deferred.make<void>()
    const endRequest = yield* Deferred.make<EndRequest>()
    const logoutReceived = yield* Deferred.make<string>()
    const endDeferred = yield* Deferred.make<SessionEnd>()
    let phase: Phase = "LoggingOn"
    let loggedOn = false
    let logoutSent = false
    let gotLogout = false
    let resendFrom: number | undefined
    let testRequests = 0
    const role = config.role ?? "initiator"
    let heartBtInt = config.heartBtInt

    const requestEnd = (r: EndRequest) => Deferred.succeed(endRequest, r).pipe(Effect.asVoid)

    // ---- outbound: MsgSeqNum assignment and enqueue are one step under the lock ----
    const sendRaw = (
      msgType: string,
      fields: ReadonlyArray<Field>,
      options?: { readonly seq?: number; readonly possDup?: boolean }
    ): Effect.Effect<number, Connection.ConnectionClosed | Framing.FrameError> =>
      lock.withPermits(1)(
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const seq = options?.seq ?? store.nextOut
          const ts = utcTimestamp(now)
          const body: Array<Field> = [
            [Tag.MsgType, msgType],
            [Tag.SenderCompID, config.senderCompId],
            [Tag.TargetCompID, config.targetCompId],
            [Tag.MsgSeqNum, String(seq)],
            [Tag.SendingTime, ts]
          ]
          if (options?.possDup) body.push([Tag.PossDupFlag, "Y"], [Tag.OrigSendingTime, ts])
          for (const f of fields) {
            if (f[1].includes(SOH) || f[1].length === 0) {
              return yield* new Framing.FrameError({
                reason: "MalformedFrame",
                message: `field ${f[0]}: a FIX value must be non-empty and must not contain SOH`
              })
            }
            body.push(f)
          }
          yield* conn.send(encodeBody(body))
          if (options?.seq === undefined) store.nextOut = seq + 1
          observe({ _tag: "Sent", message: { type: msgType, fields: body }, at: now })
          return seq
        })
      )
    const sendLogout = (text: string) =>
      Effect.suspend(() => {
        if (logoutSent) return Effect.void
        logoutSent = true
        phase = "LogoutSent"
        return sendRaw(MsgType.Logout, text.length > 0 ? [[Tag.Text, text]] : []).pipe(Effect.ignore)
      })

    // ---- inbound ----
    const handle = (frame: Uint8Array): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (phase === "Ended") return
        if (isMalformedMarker(frame)) return yield* requestEnd({ _tag: "Garbled", error: malformedError(frame) })
        let message: Message
        try {
          message = parseBody(frame)
        } catch (e) {
          return yield* requestEnd({
            _tag: "Garbled",
            error: e instanceof Framing.FrameError
              ? e
              : new Framing.FrameError({ reason: "MalformedFrame", message: String(e) })
          })
        }
        const now = yield* Clock.currentTimeMillis
        observe({ _tag: "Received", message, at: now })
        if (get(message, Tag.SenderCompID) !== config.targetCompId || get(message, Tag.TargetCompID) !== config.senderCompId) {
          return yield* requestEnd({
            _tag: "Fatal",
            text: `CompID problem: got ${get(message, Tag.SenderCompID)}->${get(message, Tag.TargetCompID)}`
          })
        }
        const seq = getInt(message, Tag.MsgSeqNum)
        if (seq === undefined) return yield* requestEnd({ _tag: "Fatal", text: "MsgSeqNum (34) missing" })
        const type = message.type
        const gapFill = get(message, Tag.GapFillFlag) === "Y"
        // SequenceReset-Reset: MsgSeqNum is ignored, NewSeqNo is authoritative
        if (type === MsgType.SequenceReset && !gapFill) {
          const newSeq = getInt(message, Tag.NewSeqNo)
          if (newSeq !== undefined && newSeq > store.nextIn) store.nextIn = newSeq
          return
        }
        if (phase === "LoggingOn" && type !== MsgType.Logon) {
          if (type === MsgType.Logout) {
            gotLogout = true
            return yield* requestEnd({ _tag: "PeerLogout", text: get(message, Tag.Text) ?? "" })
          }
          return yield* requestEnd({ _tag: "Fatal", text: `expected Logon, got MsgType ${type}` })
        }
        if (type === MsgType.Logon && !loggedOn && get(message, Tag.ResetSeqNumFlag) === "Y") {
          // the peer resets: both directions start again at 1 (an initiator already reset when it asked)
          store.nextIn = 1
          if (role === "acceptor") store.nextOut = 1
        }
        const expected = store.nextIn
        if (seq < expected) {
          if (get(message, Tag.PossDupFlag) === "Y") return // a duplicate we already processed
          return yield* requestEnd({
            _tag: "Fatal",
            text: `MsgSeqNum too low, expecting ${expected} but received ${seq}`
          })
        }
        if (seq > expected) {
          observe({ _tag: "Gap", expected, received: seq, at: now })
          if (type === MsgType.Logon) yield* onLogon(message, now)
          if (type === MsgType.Logout) return yield* onLogout(message)
          if (resendFrom !== expected) {
            resendFrom = expected
            yield* sendRaw(MsgType.ResendRequest, [[Tag.BeginSeqNo, String(expected)], [Tag.EndSeqNo, "0"]]).pipe(
              Effect.ignore
            )
          }
          return // the peer resends (or gap-fills) everything from `expected` on
        }
        store.nextIn = seq + 1
        switch (type) {
          case MsgType.Logon:
            return yield* onLogon(message, now)
          case MsgType.Heartbeat:
            return
          case MsgType.TestRequest: {
            const id = get(message, Tag.TestReqID)
            return yield* sendRaw(MsgType.Heartbeat, id ? [[Tag.TestReqID, id]] : []).pipe(Effect.ignore)
          }
          case MsgType.ResendRequest: {
            // we do not replay: one GapFill over the whole requested range
            const begin = getInt(message, Tag.BeginSeqNo) ?? 1
            const newSeqNo = store.nextOut
            if (begin >= newSeqNo) return
            return yield* sendRaw(
              MsgType.SequenceReset,
              [[Tag.GapFillFlag, "Y"], [Tag.NewSeqNo, String(newSeqNo)]],
              { seq: begin, possDup: true }
            ).pipe(Effect.ignore)
          }
          case MsgType.SequenceReset: {
            const newSeq = getInt(message, Tag.NewSeqNo)
            if (newSeq !== undefined && newSeq > store.nextIn) store.nextIn = newSeq
            if (resendFrom !== undefined && store.nextIn > resendFrom) resendFrom = undefined
            return
          }
          case MsgType.Logout:
            return yield* onLogout(message)
          case MsgType.Reject:
            return
          default:
            if (config.onMessage !== undefined) yield* config.onMessage(message, session)
        }
      })

    const onLogon = (message: Message, now: number) =>
      Effect.gen(function*() {
        if (loggedOn) return
        if (role === "acceptor") {
          const peerInterval = getInt(message, Tag.HeartBtInt)
          if (peerInterval === undefined || peerInterval <= 0) {
            return yield* requestEnd({ _tag: "Fatal", text: "HeartBtInt (108) missing or not positive" })
          }
          heartBtInt = peerInterval
          const reply: Array<Field> = [[Tag.EncryptMethod, "0"], [Tag.HeartBtInt, String(heartBtInt)]]
          if (get(message, Tag.ResetSeqNumFlag) === "Y") reply.push([Tag.ResetSeqNumFlag, "Y"])
          yield* sendRaw(MsgType.Logon, reply).pipe(Effect.ignore)
        }
        loggedOn = true
        phase = "LoggedOn"
        observe({ _tag: "LoggedOn", heartBtInt: getInt(message, Tag.HeartBtInt) ?? heartBtInt, at: now })
        yield* Deferred.succeed(logonDone, undefined)
      })
    const onLogout = (message: Message) =>
      Effect.suspend(() => {
        gotLogout = true
        const text = get(message, Tag.Text) ?? ""
        return Effect.zipRight(
          Deferred.succeed(logoutReceived, text),
          logoutSent ? Effect.void : requestEnd({ _tag: "PeerLogout", text })
        )
      })

    // ---- the driver ----
    const finish = (
      reason: DisconnectReason.DisconnectReason | undefined,
      decision: Decision,
      text: string
    ): Effect.Effect<SessionEnd> =>
      // uninterruptible (every wait in it is bounded by the connection's close bounds): an owner
      // that stops the session once the connection is closed still gets its end recorded
      Effect.uninterruptible(Effect.gen(function*() {
        const outcome = reason === undefined ? yield* conn.outcome : yield* conn.close(reason)
        phase = "Ended"
        const end: SessionEnd = {
          reason: outcome.reason,
          decision,
          text,
          loggedOn,
          logoutSent,
          logoutReceived: gotLogout,
          outcome
        }
        observe({ _tag: "Ended", end, at: yield* Clock.currentTimeMillis })
        yield* Deferred.succeed(endDeferred, end)
        return end
      }))

    const onEndRequest = (r: EndRequest): Effect.Effect<SessionEnd> => {
      switch (r._tag) {
        case "Fatal":
          return Effect.zipRight(
            sendLogout(r.text),
            finish(DisconnectReason.LocalClose({ message: r.text }), "Stop", r.text)
          )
        case "Garbled": {
          const reason = r.error.reason === "FrameTooLarge"
            ? DisconnectReason.FrameTooLarge({ size: r.error.size ?? 0, max: r.error.max ?? conn.codec.maxFrameBytes })
            : DisconnectReason.MalformedFrame({ message: r.error.message })
          const text = `garbled message: ${r.error.message}`
          return Effect.zipRight(sendLogout(text), finish(reason, "Reconnect", text))
        }
        case "PeerLogout": {
          const text = `logout by peer${r.text ? `: ${r.text}` : ""}`
          return Effect.zipRight(
            loggedOn ? sendLogout("") : Effect.void,
            finish(DisconnectReason.LocalClose({ message: text }), "Reconnect", text)
          )
        }
        case "Logout":
          return Effect.gen(function*() {
            if (!loggedOn) return yield* finish(r.reason, r.decision, r.text)
            yield* sendLogout(r.text)
            // the peer's Logout, the peer closing, or the logout timeout: whichever comes first
            yield* Effect.raceFirst(Deferred.await(logoutReceived), conn.closed).pipe(
              Effect.timeout(logoutTimeout),
              Effect.ignore
            )
            return yield* finish(r.reason, r.decision, r.text)
          })
      }
    }

    const driver = Effect.gen(function*() {
      yield* Effect.forkScoped(Stream.runForEach(conn.incoming, handle))
      if (role === "initiator") {
        if (config.resetSeqNumOnLogon) store.reset()
        const logonFields: Array<Field> = [[Tag.EncryptMethod, "0"], [Tag.HeartBtInt, String(heartBtInt)]]
        if (store.nextOut === 1) logonFields.push([Tag.ResetSeqNumFlag, "Y"])
        yield* sendRaw(MsgType.Logon, logonFields).pipe(Effect.ignore)
      }

      type First =
        | { readonly _tag: "LoggedOn" }
        | { readonly _tag: "End"; readonly request: EndRequest }
        | { readonly _tag: "Closed" }
        | { readonly _tag: "Timeout" }
      const first: First = yield* Effect.raceAll<Effect.Effect<First>>([
        Effect.as(Deferred.await(logonDone), { _tag: "LoggedOn" } as const),
        Effect.map(Deferred.await(endRequest), (request) => ({ _tag: "End", request }) as const),
        Effect.as(conn.closed, { _tag: "Closed" } as const),
        Effect.as(Effect.sleep(logonTimeout), { _tag: "Timeout" } as const)
      ])
      switch (first._tag) {
        case "Timeout":
          return yield* finish(
            DisconnectReason.HandshakeTimeout({ timeout: logonTimeout }),
            "Reconnect",
            `no Logon answer within ${Duration.format(logonTimeout)}`
          )
        case "Closed":
          return yield* finish(undefined, "Reconnect", "connection closed before logon")
        case "End":
          return yield* onEndRequest(first.request)
        case "LoggedOn":
          break
      }

      // logged on: the heartbeat watchdog runs in its own scope, closed when the session ends
      const hbScope = yield* Scope.make()
      yield* Connection.attach(conn, Watchdog.heartbeat({
        interval: Duration.seconds(heartBtInt),
        testRequestFactor: config.testRequestFactor ?? sessionDefaults.testRequestFactor,
        sendHeartbeat: () => phase === "LoggedOn" ? sendRaw(MsgType.Heartbeat, []) : Effect.void,
        sendTestRequest: () =>
          phase === "LoggedOn" ? sendRaw(MsgType.TestRequest, [[Tag.TestReqID, `TEST-${++testRequests}`]]) : Effect.void
      })).pipe(Scope.extend(hbScope))

      const next = yield* Effect.raceFirst(
        Effect.map(Deferred.await(endRequest), Option.some),
        Effect.as(conn.closed, Option.none())
      )
      yield* Scope.close(hbScope, Exit.void)
      return Option.isSome(next)
        ? yield* onEndRequest(next.value)
        : yield* finish(undefined, "Reconnect", "connection closed")
    })

    const session: Session = {
      phase: () => phase,
      store,
      loggedOn: Effect.raceFirst(
        Deferred.await(logonDone),
        Effect.flatMap(Deferred.await(endDeferred), Effect.fail)
      ),
      send: (msgType, fields) => sendRaw(msgType, fields ?? []),
      logout: (text, options) =>
        Effect.zipRight(
          requestEnd({
            _tag: "Logout",
            text: text ?? "",
            reason: options?.reason ?? DisconnectReason.LocalClose({ message: text ?? "logout" }),
            decision: options?.decision ?? "Stop"
          }),
          Deferred.await(endDeferred)
        ),
      end: Deferred.await(endDeferred)
    }

    yield* Effect.forkScoped(driver)
    return session
  })
