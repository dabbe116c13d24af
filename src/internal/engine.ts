/**
 * The engine a FleetHub runs on: durable per-peer logs, leases with a fencing revision, an inbound
 * registry owned by node leases, node-to-node requests. Errors and the service tag.
 * @internal
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Engine from "../Engine.js"

/** @internal */
export class EngineError extends Data.TaggedError("EngineError")<{
  /** `Unavailable`: the engine cannot be reached; `Fenced`: this node no longer holds the lease it acted under. */
  readonly reason: "Unavailable" | "Fenced" | "Protocol"
  readonly detail: string
  readonly cause?: unknown
  /** The operation certainly did not reach the engine (it was refused before it was sent). */
  readonly unsent?: boolean | undefined
}> {
  override get message() {
    return `engine ${this.reason}: ${this.detail}`
  }
}

/** @internal */
export class NoResponder extends Data.TaggedError("NoResponder")<{
  readonly node: string
  readonly reason: "NoResponders" | "Timeout"
}> {
  override get message() {
    return `node ${this.node}: ${this.reason === "Timeout" ? "no reply in time" : "no responder"}`
  }
}

/** @internal */
export class PeerExists extends Data.TaggedError("PeerExists")<{ readonly key: string }> {
  override get message() {
    return `peer already declared: ${this.key}`
  }
}

/** @internal */
export class EngineTag extends Context.Tag("tether/Engine")<EngineTag, Engine.Engine>() {}

/** @internal */
export const outLease = (key: string) => `out.${key}`
/** @internal */
export const nodeLease = (node: string) => `node.${node}`
/** The lease a node that takes outbound peers holds besides its node lease. @internal */
export const holdLease = (node: string) => `hold.${node}`
