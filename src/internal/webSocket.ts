/**
 * The WebSocket module's models: its message enum, the upgrade hook's error and the server's Tag. The public `WebSocket` module
 * re-exports them.
 * @internal
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Listener from "../Listener.js"
import type * as WS from "../WebSocket.js"

/** @internal */
export const Message: Data.TaggedEnum.Constructor<WS.Message> = Data.taggedEnum<WS.Message>()

/** @internal */
export class UpgradeRejected extends Data.TaggedError("UpgradeRejected")<{
  readonly status: number
  readonly message: string
}> {}

/** The WebSocket server of an application (a Tag of its own: a TCP `Listener` can live next to it). @internal */
export class ServerTag extends Context.Tag("tether/WebSocket/Server")<ServerTag, Listener.Server>() {}
