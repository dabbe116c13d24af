/**
 * The WebSocket module's models: its message enum and the upgrade hook's error. The public `WebSocket` module
 * re-exports them.
 * @internal
 */
import * as Data from "effect/Data"
import type * as WS from "../WebSocket.js"

/** @internal */
export const Message: Data.TaggedEnum.Constructor<WS.Message> = Data.taggedEnum<WS.Message>()

/** @internal */
export class UpgradeRejected extends Data.TaggedError("UpgradeRejected")<{
  readonly status: number
  readonly message: string
}> {}
