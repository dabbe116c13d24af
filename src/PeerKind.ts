/**
 * A kind of outbound peer, declared as data so that any node of a {@link FleetHub} can take a peer over: a
 * `Schema` for its spec (what is shipped between nodes) and a function building its `Dialer.Options` from
 * the key and the decoded spec (code, registered on every node). The kind's `backlog` options are the bounds
 * of each peer's durable log; `markDuplicate` rewrites a frame that may have been written before by a node
 * that died (e.g. a FIX resend with PossDupFlag=Y).
 *
 * @since 0.2.0
 */
import type * as Schema from "effect/Schema"
import type * as Backlog from "./Backlog.js"
import type * as Dialer from "./Dialer.js"
import * as internal from "./internal/peerKind.js"

/**
 * The unique identifier of a {@link PeerKind}.
 *
 * @example
 * ```ts
 * import { PeerKind } from "effect-tether"
 *
 * const hasId = (u: object) => PeerKind.TypeId in u
 * ```
 *
 * @since 0.2.0
 * @category symbols
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * The type of {@link TypeId}.
 *
 * @example
 * ```ts
 * import type { PeerKind } from "effect-tether"
 *
 * type Id = PeerKind.TypeId
 * ```
 *
 * @since 0.2.0
 * @category symbols
 */
export type TypeId = typeof TypeId

/**
 * A peer kind: `S` is the decoded spec, `I` its encoded (JSON) form.
 *
 * @example
 * ```ts
 * import type { PeerKind } from "effect-tether"
 *
 * const nameOf = (k: PeerKind.PeerKind<unknown>) => k.name
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface PeerKind<S, I = unknown> {
  readonly [TypeId]: TypeId
  readonly name: string
  readonly spec: Schema.Schema<S, I>
  readonly dialer: (key: string, spec: S) => Dialer.Options
  /** The bounds of each peer's durable log (and of the in-memory backlog in front of it). */
  readonly backlog: Backlog.Options
  /** Applied to a frame that a previous holder may already have written (a possible duplicate). */
  readonly markDuplicate: ((frame: Uint8Array) => Uint8Array) | undefined
}

/**
 * Whether `u` is a {@link PeerKind}.
 *
 * @example
 * ```ts
 * import { PeerKind } from "effect-tether"
 *
 * PeerKind.isPeerKind({}) // false
 * ```
 *
 * @since 0.2.0
 * @category guards
 */
export const isPeerKind: (u: unknown) => u is PeerKind<unknown, unknown> = internal.isPeerKind

/**
 * Makes a peer kind.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { PeerKind } from "effect-tether"
 *
 * const Venue = PeerKind.make("venue", {
 *   spec: Schema.Struct({ host: Schema.String, port: Schema.Number }),
 *   dialer: (_key, spec) => ({ host: spec.host, port: spec.port }),
 *   backlog: { maxMessages: 5000, maxAge: "1 minute" }
 * })
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: <S, I>(
  name: string,
  options: {
    readonly spec: Schema.Schema<S, I>
    readonly dialer: (key: string, spec: S) => Dialer.Options
    readonly backlog?: Backlog.Options | undefined
    readonly markDuplicate?: ((frame: Uint8Array) => Uint8Array) | undefined
  }
) => PeerKind<S, I> = internal.make
