/**
 * The listener's models: its error, its Tags and the server handle (TypeId, guard, Inspectable), shared by
 * every acceptor (TCP, TLS, WebSocket). The public `Listener` module re-exports them.
 * @internal
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Inspectable from "effect/Inspectable"
import * as Predicate from "effect/Predicate"
import type * as Listener from "../Listener.js"

/** @internal */
export const TypeId: Listener.TypeId = Symbol.for("tether/Listener/Server") as Listener.TypeId

/** @internal */
export const isServer = (u: unknown): u is Listener.Server => Predicate.hasProperty(u, TypeId)

/** @internal */
export class ListenerError extends Data.TaggedError("ListenerError")<{
  readonly reason: "Bind"
  readonly message: string
  readonly code?: string | undefined
  readonly cause?: unknown
}> {}

/** @internal */
export const Session: Context.Tag<Listener.Session, Listener.Session> = Context.GenericTag<Listener.Session>(
  "tether/Listener/Session"
)

/** @internal */
export class ListenerTag extends Context.Tag("tether/Listener")<ListenerTag, Listener.Server>() {}

/** What a server shows of itself (`toJSON`, `toString`, Node's inspect): its address and counters. */
const ServerProto: Pick<Listener.Server, typeof TypeId | "toJSON" | "toString" | typeof Inspectable.NodeInspectSymbol> =
  {
    [TypeId]: TypeId,
    toJSON(this: Listener.Server) {
      return { _id: "Server", address: this.address, stats: this.unsafeStats() }
    },
    toString(this: Listener.Server) {
      return Inspectable.format(this.toJSON())
    },
    [Inspectable.NodeInspectSymbol](this: Listener.Server) {
      return this.toJSON()
    }
  }

/** @internal */
export const makeServer = (fields: Omit<Listener.Server, keyof typeof ServerProto>): Listener.Server =>
  Object.assign(Object.create(ServerProto), fields)
