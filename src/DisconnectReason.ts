/**
 * Why a connection ended: the value every `closed` completes with.
 *
 * One tagged union shared by every module of tether, so a session loop, a
 * dialer, a hub or a listener can decide what to do next (reconnect or not)
 * with one `match`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"

/**
 * The reason a connection ended.
 *
 * @example
 * ```ts
 * import { DisconnectReason } from "effect-tether"
 *
 * const reason = DisconnectReason.LocalClose({ message: "logout" })
 * console.log(DisconnectReason.describe(reason)) // "local close: logout"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type DisconnectReason = Data.TaggedEnum<{
  /** The application (or the closing scope) asked for a graceful close. */
  LocalClose: { readonly message: string }
  /** The application asked for an immediate abort. */
  Aborted: { readonly message: string }
  /** The peer half-closed its side (we read its EOF). */
  PeerClosed: {
    /** WebSocket: the peer's Close code (1005: its Close had none; 1006: the TCP stream ended without a Close). */
    readonly code?: number | undefined
    /** WebSocket: the peer's Close reason. */
    readonly reason?: string | undefined
  }
  /** A transport write did not complete within its deadline. */
  WriteTimeout: { readonly timeout: Duration.Duration; readonly queuedBytes: number }
  /** An inbound frame was larger than `maxFrameBytes`. */
  FrameTooLarge: { readonly size: number; readonly max: number }
  /** Inbound bytes could not be decoded as a frame. */
  MalformedFrame: { readonly message: string }
  /** The socket reported an error (reset, broken pipe, ...). */
  IoError: { readonly message: string; readonly code: string | undefined }
  /** An idle watchdog closed the connection. */
  IdleTimeout: { readonly kind: "read" | "write" | "all"; readonly idleFor: Duration.Duration }
  /** The heartbeat watchdog got no answer from the peer. */
  PeerTimeout: { readonly silentFor: Duration.Duration }
  /** Bytes were queued toward the peer and none were acknowledged for too long. */
  SendStalled: { readonly queuedBytes: number; readonly stalledFor: Duration.Duration }
  /** The kernel reports the TCP connection as no longer established. */
  PeerGone: { readonly state: string }
  /** The protocol handshake did not complete in time. */
  HandshakeTimeout: { readonly timeout: Duration.Duration }
  /** A connection stayed in a non-active state past its bound and was destroyed. */
  LivenessTimeout: { readonly state: string; readonly after: Duration.Duration }
  /** The session window ended, or a new session period began. */
  ScheduleEnd: { readonly message: string }
  /** The owning server, hub or runtime is shutting down. */
  Shutdown: {}
}>

const constructors = Data.taggedEnum<DisconnectReason>()

/**
 * Constructors and `$match` / `$is` helpers for {@link DisconnectReason}.
 *
 * @example
 * ```ts
 * import { DisconnectReason } from "effect-tether"
 *
 * const r = DisconnectReason.Shutdown()
 * DisconnectReason.$is("Shutdown")(r) // true
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
// one line: @effect/docgen names its example file after this binding pattern (a multi-line one is no valid file name)
export const { $is, $match, Aborted, FrameTooLarge, HandshakeTimeout, IdleTimeout, IoError, LivenessTimeout, LocalClose, MalformedFrame, PeerGone, PeerTimeout, ScheduleEnd, SendStalled, Shutdown, WriteTimeout } = constructors

/**
 * The peer half-closed its side; a WebSocket peer's Close code and reason when it sent them. The argument is
 * optional (`PeerClosed()` is a TCP peer's EOF).
 *
 * @example
 * ```ts
 * import { DisconnectReason } from "effect-tether"
 *
 * DisconnectReason.PeerClosed() // a TCP peer's EOF
 * DisconnectReason.PeerClosed({ code: 1001, reason: "going away" }) // a WebSocket peer's Close
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const PeerClosed = (
  args: { readonly code?: number | undefined; readonly reason?: string | undefined } = {}
): Extract<DisconnectReason, { readonly _tag: "PeerClosed" }> => constructors.PeerClosed(args)

/**
 * A one-line, human readable description of a reason, for logs and reports.
 *
 * @example
 * ```ts
 * import { DisconnectReason } from "effect-tether"
 *
 * DisconnectReason.describe(DisconnectReason.FrameTooLarge({ size: 10, max: 4 }))
 * // "frame too large: 10 bytes > 4"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const describe = (reason: DisconnectReason): string => {
  switch (reason._tag) {
    case "LocalClose":
      return `local close: ${reason.message}`
    case "Aborted":
      return `aborted: ${reason.message}`
    case "PeerClosed":
      return reason.code === undefined
        ? "peer closed (EOF)"
        : `peer closed (WebSocket ${reason.code}${reason.reason ? ` ${reason.reason}` : ""})`
    case "WriteTimeout":
      return `write timeout after ${fmt(reason.timeout)} (${reason.queuedBytes} bytes queued)`
    case "FrameTooLarge":
      return `frame too large: ${reason.size} bytes > ${reason.max}`
    case "MalformedFrame":
      return `malformed frame: ${reason.message}`
    case "IoError":
      return `I/O error${reason.code ? ` ${reason.code}` : ""}: ${reason.message}`
    case "IdleTimeout":
      return `${reason.kind}-idle for ${fmt(reason.idleFor)}`
    case "PeerTimeout":
      return `peer silent for ${fmt(reason.silentFor)}`
    case "SendStalled":
      return `send stalled: ${reason.queuedBytes} bytes queued, no progress for ${fmt(reason.stalledFor)}`
    case "PeerGone":
      return `peer gone (TCP state ${reason.state})`
    case "HandshakeTimeout":
      return `handshake timeout after ${fmt(reason.timeout)}`
    case "LivenessTimeout":
      return `still ${reason.state} after ${fmt(reason.after)}: destroyed`
    case "ScheduleEnd":
      return `session schedule: ${reason.message}`
    case "Shutdown":
      return "shutdown"
  }
}

/**
 * Whether a reason is an orderly end (local close, peer EOF, schedule end or
 * shutdown) rather than a failure.
 *
 * @example
 * ```ts
 * import { DisconnectReason } from "effect-tether"
 *
 * DisconnectReason.isClean(DisconnectReason.PeerClosed({})) // true
 * DisconnectReason.isClean(DisconnectReason.IoError({ message: "reset", code: "ECONNRESET" })) // false
 * ```
 *
 * @since 0.1.0
 * @category guards
 */
export const isClean = (reason: DisconnectReason): boolean =>
  reason._tag === "LocalClose" || reason._tag === "PeerClosed" || reason._tag === "ScheduleEnd" ||
  reason._tag === "Shutdown"

const fmt = (d: Duration.Duration): string => Duration.format(d)

/**
 * The log level a disconnect deserves: `debug` for an orderly end, `info` for an
 * application abort, `warning` for timeouts, reaps and I/O errors, `error` for
 * fatal protocol errors (malformed or oversized frames).
 *
 * @example
 * ```ts
 * import { DisconnectReason } from "effect-tether"
 *
 * DisconnectReason.severity(DisconnectReason.PeerClosed({})) // "debug"
 * DisconnectReason.severity(DisconnectReason.MalformedFrame({ message: "bad checksum" })) // "error"
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const severity = (reason: DisconnectReason): "debug" | "info" | "warning" | "error" => {
  switch (reason._tag) {
    case "LocalClose":
    case "PeerClosed":
    case "ScheduleEnd":
    case "Shutdown":
      return "debug"
    case "Aborted":
      return "info"
    case "FrameTooLarge":
    case "MalformedFrame":
      return "error"
    default:
      return "warning"
  }
}
