/**
 * Peer kinds: outbound peers declared as data (a Schema spec), rebuilt into Dialer options on any node.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import type * as Schema from "effect/Schema"
import type * as Backlog from "../Backlog.js"
import type * as Dialer from "../Dialer.js"
import type * as Engine from "../Engine.js"
import type * as PeerKind from "../PeerKind.js"
import { defaults as backlogDefaults } from "./backlog.js"

/** @internal */
export const TypeId: PeerKind.TypeId = Symbol.for("tether/PeerKind") as PeerKind.TypeId

/** @internal */
export const isPeerKind = (u: unknown): u is PeerKind.PeerKind<unknown, unknown> => Predicate.hasProperty(u, TypeId)

/** @internal */
export const make = <S, I>(
  name: string,
  options: {
    readonly spec: Schema.Schema<S, I>
    readonly dialer: (key: string, spec: S) => Dialer.Options
    readonly backlog?: Backlog.Options | undefined
    readonly markDuplicate?: ((frame: Uint8Array) => Uint8Array) | undefined
  }
): PeerKind.PeerKind<S, I> => ({
  [TypeId]: TypeId,
  name,
  spec: options.spec,
  dialer: options.dialer,
  backlog: options.backlog ?? {},
  markDuplicate: options.markDuplicate
})

/** @internal */
export const bounds = (kind: PeerKind.PeerKind<any, any>): Engine.Bounds => {
  const b = kind.backlog
  const maxAge = Duration.decode(b.maxAge ?? backlogDefaults.maxAge)
  return {
    maxMessages: b.maxMessages ?? backlogDefaults.maxMessages,
    maxBytes: b.maxBytes ?? backlogDefaults.maxBytes,
    maxAgeMillis: Duration.isFinite(maxAge) ? Duration.toMillis(maxAge) : Number.POSITIVE_INFINITY,
    policy: b.policy ?? backlogDefaults.policy
  }
}
