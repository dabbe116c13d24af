/**
 * The RPC service both sides share: an @effect/rpc group (schemas for payloads, results and errors).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { key: Schema.String }) {}

export class KvApi extends RpcGroup.make(
  Rpc.make("Put", { payload: { key: Schema.String, value: Schema.String }, success: Schema.Void }),
  Rpc.make("Get", { payload: { key: Schema.String }, success: Schema.String, error: NotFound }),
  Rpc.make("Count", { success: Schema.Number })
) {}
