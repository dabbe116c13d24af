/**
 * A minimal FIX acceptor on tether's `Listener`: every accepted connection
 * runs the same session state machine as the initiator, in the acceptor role
 * (waits for the Logon, answers it with the initiator's HeartBtInt, then
 * heartbeats, test requests, resend requests and logout as usual).
 *
 * Sequence numbers are kept per counterparty for the life of the process and
 * reset when a Logon carries ResetSeqNumFlag (141=Y), which the initiator
 * sends on the first Logon of each session period.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Duration, Scope } from "effect"
import { Listener } from "effect-tether"
import { fixCodec } from "./codec.js"
import { type SessionEnd, type SessionEvent, SequenceStore, start } from "./session.js"

/**
 * Options of {@link serveAcceptor}.
 *
 * @example
 * ```ts
 * import type { AcceptorOptions } from "./server.js"
 *
 * const o: AcceptorOptions = { port: 9878, senderCompId: "ACCEPTOR", targetCompId: "TETHER" }
 * ```
 */
export interface AcceptorOptions {
  readonly host?: string | undefined
  /** 0 or absent: any free port (see `server.address.port`). */
  readonly port?: number | undefined
  /** Our CompID (default ACCEPTOR). */
  readonly senderCompId?: string | undefined
  /** The initiator's CompID (default TETHER). */
  readonly targetCompId?: string | undefined
  /** Time a client has to log on (default 10 s). */
  readonly logonTimeout?: Duration.DurationInput | undefined
  /** How long our Logout waits for the answer (default 2 s). */
  readonly logoutTimeout?: Duration.DurationInput | undefined
  /** How long a disconnect waits for the client's FIN (default 2 s). */
  readonly lingerTimeout?: Duration.DurationInput | undefined
  readonly observe?: ((event: SessionEvent) => void) | undefined
}

/**
 * A running acceptor.
 *
 * @example
 * ```ts
 * import type { Acceptor } from "./server.js"
 *
 * const port = (a: Acceptor) => a.server.address.port
 * ```
 */
export interface Acceptor {
  readonly server: Listener.Server
  /** The counterparty's sequence numbers. */
  readonly store: SequenceStore
  /** Every session end so far. */
  readonly ends: () => ReadonlyArray<SessionEnd>
}

/**
 * Serves FIX sessions in the current scope; closing the scope shuts the
 * listener down (bounded).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { serveAcceptor } from "./server.js"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const acceptor = yield* serveAcceptor({ port: 9878 })
 *   yield* Effect.never
 * }))
 * ```
 */
export const serveAcceptor = (
  options?: AcceptorOptions
): Effect.Effect<Acceptor, Listener.ListenerError, Scope.Scope> =>
  Effect.gen(function*() {
    const store = new SequenceStore()
    const ends: Array<SessionEnd> = []
    const logonTimeout = options?.logonTimeout ?? "10 seconds"
    const server = yield* Listener.serve(
      {
        host: options?.host ?? "127.0.0.1",
        port: options?.port ?? 0,
        codec: fixCodec({ malformed: "deliver" }),
        lingerTimeout: options?.lingerTimeout ?? "2 seconds",
        drainTimeout: "2 seconds",
        // backstop of the session's own logon timeout
        handshakeTimeout: logonTimeout,
        shutdownTimeout: "5 seconds"
      },
      (conn) =>
        Effect.scoped(Effect.gen(function*() {
          const session = yield* start(conn, {
            role: "acceptor",
            senderCompId: options?.senderCompId ?? "ACCEPTOR",
            targetCompId: options?.targetCompId ?? "TETHER",
            heartBtInt: 30,
            logonTimeout,
            logoutTimeout: options?.logoutTimeout,
            observe: (e) => {
              if (e._tag === "Ended") ends.push(e.end)
              options?.observe?.(e)
            }
          }, store)
          yield* session.loggedOn.pipe(Effect.zipRight(Listener.handshakeDone), Effect.ignore)
          yield* session.end
        }))
    )
    return { server, store, ends: () => ends }
  })
