/**
 * The {@link Engine.Engine} on NATS JetStream — a subpath export (`effect-tether/NatsEngine`) so that only
 * its users install `@nats-io/transport-node`, `@nats-io/jetstream` and `@nats-io/kv` (3.x, optional peer
 * dependencies). Uses only what nats-server 2.9 has.
 *
 * - A stream per outbound peer (`TETHER_OUT_<token>`, subject `tether.out.<token>`) with the kind's bounds:
 *   `max_msgs`, `max_bytes` (JetStream counts stored size: subject, headers and payload), `discard: new` for
 *   rejectNew (the publish fails, FleetHub fails the send with `BacklogFull`) or `old` for dropOldest, and
 *   `max_age` = maxAge + `ageMarginMillis` as a backstop. Appends carry `Nats-Msg-Id` (a retry within the
 *   duplicate window is not stored twice).
 * - Acks (`ack_policy: all`) also purge the stream below them, so it holds exactly the un-acked frames.
 * - A new holder creates its consumer at the previous one's ack floor and flags every frame the previous one
 *   had delivered as `redelivered` — deterministic, not dependent on `ack_wait`.
 * - KV buckets `tether_peers`, `tether_leases` (TTL = `leaseTtl`, which must equal FleetHub's) and
 *   `tether_inbound`; node requests on `tether.node.<token>`.
 * - JetStream acks are not fenced by the server: FleetHub stops acking the moment it cannot prove its lease.
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Engine from "./Engine.js"
import * as internal from "./internal/natsEngine.js"

/**
 * NatsEngine options.
 *
 * @example
 * ```ts
 * import type * as NatsEngine from "effect-tether/NatsEngine"
 *
 * const options: NatsEngine.Options = { servers: ["nats://127.0.0.1:4222"], node: "node-1", leaseTtl: 3000 }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  readonly servers: ReadonlyArray<string>
  /** This node's id, unique in the fleet. */
  readonly node: string
  /** Lease TTL in millis (default 3000); the `tether_leases` bucket's TTL — use the same as FleetHub's `leaseTtl`. */
  readonly leaseTtl?: number | undefined
  /** How much longer than `maxAge` a stream keeps a frame (default 1000 ms). */
  readonly ageMarginMillis?: number | undefined
  /** JetStream `duplicate_window` of the peer streams (default 2 minutes). */
  readonly duplicateWindowMillis?: number | undefined
  /** Deadline of each engine operation (default 5000 ms). */
  readonly timeoutMillis?: number | undefined
  /** Messages a holder's pull keeps buffered (default 256). */
  readonly fetchBatch?: number | undefined
  /** Stream and bucket replicas (default 1; 3 on a 3-node cluster). */
  readonly replicas?: number | undefined
}

/**
 * The engine in the current scope: connects (reconnecting for ever), creates the KV buckets; closing the
 * scope drains the connection.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as NatsEngine from "effect-tether/NatsEngine"
 *
 * const program = Effect.scoped(
 *   Effect.flatMap(NatsEngine.make({ servers: ["nats://127.0.0.1:4222"], node: "a" }), (engine) => engine.nodes)
 * )
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<Engine.Engine, Engine.EngineError, Scope.Scope> =
  internal.make

/**
 * A layer providing {@link Engine.Engine}.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FleetHub } from "effect-tether"
 * import * as NatsEngine from "effect-tether/NatsEngine"
 *
 * const live = FleetHub.layer({ kinds: [] }).pipe(
 *   Layer.provide(NatsEngine.layer({ servers: ["nats://127.0.0.1:4222"], node: "a" }))
 * )
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: (options: Options) => Layer.Layer<Engine.Tag, Engine.EngineError> = internal.layer

/**
 * How a peer key is written in subjects, stream names and KV keys: `k<key>` when it has only letters,
 * digits, `_` and `-`, else `x<hex of its UTF-8>` (no two keys share a token).
 *
 * @example
 * ```ts
 * import * as NatsEngine from "effect-tether/NatsEngine"
 *
 * NatsEngine.token("venue-1") // "kvenue-1"
 * ```
 *
 * @since 0.2.0
 * @category utils
 */
export const token: (key: string) => string = internal.token
