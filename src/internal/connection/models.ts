/**
 * The classes of the connection model (the public `Connection` module re-exports them).
 * @internal
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Connection from "../../Connection.js"
import type { DisconnectReason } from "../../DisconnectReason.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("tether/Connection")

/** @internal */
export type TypeId = typeof TypeId

/** @internal */
export class ConnectionClosed extends Data.TaggedError("ConnectionClosed")<{
  readonly reason: DisconnectReason
  readonly accepted?: number | undefined
}> {
  override get message() {
    return `connection closed: ${this.reason._tag}`
  }
}

/** @internal */
export class Encoded<Out = Uint8Array> {
  constructor(readonly bytes: Uint8Array, readonly payload: Out) {}
}

/** @internal */
export const ConnectionTag: Context.Tag<Connection.Connection, Connection.Connection> = Context.GenericTag<
  Connection.Connection
>("tether/Connection")

/** @internal */
export const isConnection = (u: unknown): u is Connection.Connection<unknown, never> =>
  typeof u === "object" && u !== null && TypeId in u
