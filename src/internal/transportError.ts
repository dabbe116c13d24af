/**
 * The transport-level failure (the public `Transport` module re-exports it).
 * @internal
 */
import * as Data from "effect/Data"

/** @internal */
export class TransportError extends Data.TaggedError("TransportError")<{
  readonly reason: "Connect" | "ConnectTimeout" | "Read" | "Write" | "Shutdown" | "Closed"
  readonly message: string
  readonly code?: string | undefined
  readonly cause?: unknown
}> {}
