/**
 * The service a {@link FleetHub} runs on. An engine only stores, leases and carries; the Hub semantics
 * (routing, bounds reporting, replay, flags, events) live in FleetHub and are the same on every engine.
 *
 * - **Peer directory**: outbound peers declared as data (`{ key, kind, spec }`), each with its durable log.
 * - **Durable per-peer log**: `append` with an idempotency id (a retried append is answered `Duplicate`, not
 *   stored twice), bounded by count / bytes (refusing or dropping the oldest) and age; one consumer per peer
 *   that starts after the acknowledged prefix, marks entries it delivered before as `redelivered`, and is
 *   acknowledged cumulatively. Entries the engine drops by itself (drop-oldest, its age backstop) leave a
 *   gap in the per-peer sequence, which the consumer of the log reports.
 * - **Leases** with a TTL and a fencing `revision` (strictly increasing per name across holders).
 * - **Inbound registry**: key → node, valid only while that node's lease (`node.<id>`) is alive.
 * - **Node requests**: a request to a node's handler, `NoResponder` when there is none.
 *
 * Implementations: `MemoryEngine` (several nodes in one process, Clock-driven, for tests) and `NatsEngine`
 * (JetStream, the `effect-tether/NatsEngine` subpath).
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/engine.js"

/**
 * The engine failed or could not be reached. `Fenced`: the node acted under a lease it no longer holds.
 *
 * @example
 * ```ts
 * import { Engine } from "effect-tether"
 *
 * const e = new Engine.EngineError({ reason: "Unavailable", detail: "no connection" })
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export const EngineError: typeof internal.EngineError = internal.EngineError

/**
 * The instance type of {@link EngineError}.
 *
 * @example
 * ```ts
 * import type { Engine } from "effect-tether"
 *
 * const why = (e: Engine.EngineError) => e.reason
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export type EngineError = internal.EngineError

/**
 * No node answered a node request (the node is gone, or did not reply in time).
 *
 * @example
 * ```ts
 * import { Engine } from "effect-tether"
 *
 * const e = new Engine.NoResponder({ node: "b", reason: "NoResponders" })
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export const NoResponder: typeof internal.NoResponder = internal.NoResponder

/**
 * The instance type of {@link NoResponder}.
 *
 * @example
 * ```ts
 * import type { Engine } from "effect-tether"
 *
 * const who = (e: Engine.NoResponder) => e.node
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export type NoResponder = internal.NoResponder

/**
 * A peer is already declared under this key.
 *
 * @example
 * ```ts
 * import { Engine } from "effect-tether"
 *
 * const e = new Engine.PeerExists({ key: "venue-1" })
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export const PeerExists: typeof internal.PeerExists = internal.PeerExists

/**
 * The instance type of {@link PeerExists}.
 *
 * @example
 * ```ts
 * import type { Engine } from "effect-tether"
 *
 * const key = (e: Engine.PeerExists) => e.key
 * ```
 *
 * @since 0.2.0
 * @category errors
 */
export type PeerExists = internal.PeerExists

/**
 * The bounds of one peer's durable log (those of its kind's backlog).
 *
 * @example
 * ```ts
 * import type { Engine } from "effect-tether"
 *
 * const bounds: Engine.Bounds = { maxMessages: 10_000, maxBytes: 16 << 20, maxAgeMillis: 300_000, policy: "rejectNew" }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Bounds {
  readonly maxMessages: number
  readonly maxBytes: number
  /** `Infinity` for never. The engine keeps entries a margin longer (its backstop); the consumer drops and reports them at `maxAge`. */
  readonly maxAgeMillis: number
  readonly policy: "rejectNew" | "dropOldest"
}

/**
 * An outbound peer declared as data: any node can rebuild its dialer from `kind` and `spec` (the spec in its
 * encoded, JSON form).
 *
 * @example
 * ```ts
 * import type { Engine } from "effect-tether"
 *
 * const r: Engine.PeerRecord = { key: "venue-1", kind: "venue", spec: { host: "127.0.0.1", port: 9001 } }
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface PeerRecord {
  readonly key: string
  readonly kind: string
  readonly spec: unknown
}

/**
 * What an append did: stored at `seq`; already stored under the same id (`Duplicate`); refused by the bounds.
 *
 * @example
 * ```ts
 * import type { Engine } from "effect-tether"
 *
 * const ok = (r: Engine.AppendResult) => r._tag !== "Full"
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export type AppendResult =
  | { readonly _tag: "Appended"; readonly seq: number }
  | { readonly _tag: "Duplicate"; readonly seq: number }
  | { readonly _tag: "Full"; readonly reason: "maxMessages" | "maxBytes" }

/**
 * One entry of a peer's log as its consumer gets it.
 *
 * @example
 * ```ts
 * import type { Engine } from "effect-tether"
 *
 * const flagged = (e: Engine.Entry) => e.redelivered
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Entry {
  /** Position in the peer's log: strictly increasing, contiguous unless the engine dropped entries. */
  readonly seq: number
  readonly id: string
  readonly frame: Uint8Array
  /** Clock millis when stored. */
  readonly storedAt: number
  /** Delivered to a consumer of this log before (possibly written by a previous holder). */
  readonly redelivered: boolean
  /** Appended by a retry (see `append`): the same `id` may have been stored, and delivered, before. */
  readonly retried?: boolean | undefined
}

/**
 * The consumer of one peer's log, bound to the lease it was opened under.
 *
 * @example
 * ```ts
 * import type { Engine } from "effect-tether"
 *
 * const next = (c: Engine.Consumer) => c.fetch(64, 100)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Consumer {
  /** The first sequence not yet acknowledged when the consumer was opened. */
  readonly start: number
  /**
   * The node that consumed this log before, when the engine knows it (a lease that expired may have forgotten
   * its holder; the log's previous consumer has not).
   */
  readonly previous?: Option.Option<string> | undefined
  /** Up to `max` entries after the last one fetched, waiting up to `waitMillis` for the first. */
  readonly fetch: (max: number, waitMillis: number) => Effect.Effect<ReadonlyArray<Entry>, EngineError>
  /** Acknowledges every entry up to `seq` (cumulative). */
  readonly ack: (seq: number) => Effect.Effect<void, EngineError>
}

/**
 * A lease held by this node. `revision` is the fencing number: it increases with every new holder.
 *
 * @example
 * ```ts
 * import type { Engine } from "effect-tether"
 *
 * const fence = (l: Engine.Lease) => l.revision
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Lease {
  readonly name: string
  readonly holder: string
  readonly revision: number
  /** The previous holder, when the engine knows it. */
  readonly previous: Option.Option<string>
}

/**
 * The engine service, as seen by one node.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Engine } from "effect-tether"
 *
 * const live = Effect.flatMap(Engine.Engine, (e) => e.nodes)
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Engine {
  /** This node's id. */
  readonly node: string
  /** Declares an outbound peer and creates its log (and consumer) with these bounds. */
  readonly declare: (record: PeerRecord, bounds: Bounds) => Effect.Effect<void, EngineError | PeerExists>
  /** Removes a peer and its log; returns the frames it still held, in order. */
  readonly undeclare: (key: string) => Effect.Effect<ReadonlyArray<Uint8Array>, EngineError>
  readonly peers: Effect.Effect<ReadonlyArray<PeerRecord>, EngineError>
  readonly peer: (key: string) => Effect.Effect<Option.Option<PeerRecord>, EngineError>
  /**
   * Appends one frame to a peer's log; `id` makes a retry idempotent. `retry`: a retry of an append whose outcome
   * was not known (the engine's own dedup may have forgotten the first one, e.g. across a restart of its server,
   * so the entry is marked `retried` and its holder drops or flags it).
   */
  readonly append: (key: string, id: string, frame: Uint8Array, retry?: boolean) => Effect.Effect<AppendResult, EngineError>
  /** Opens the peer's consumer under `lease` (a previous consumer of the log is superseded). */
  readonly consume: (key: string, lease: Lease) => Effect.Effect<Consumer, EngineError, Scope.Scope>
  /** Takes a free (or expired) lease for `ttlMillis`; `None` when someone else holds it. */
  readonly acquire: (name: string, ttlMillis: number) => Effect.Effect<Option.Option<Lease>, EngineError>
  /** Extends a held lease; `None` when it was lost. */
  readonly refresh: (lease: Lease, ttlMillis: number) => Effect.Effect<Option.Option<Lease>, EngineError>
  readonly release: (lease: Lease) => Effect.Effect<void, EngineError>
  /** Registers an inbound key on this node (valid while this node's lease lives). */
  readonly register: (key: string) => Effect.Effect<void, EngineError>
  readonly unregister: (key: string) => Effect.Effect<void, EngineError>
  /** The live node an inbound key is registered on. */
  readonly locate: (key: string) => Effect.Effect<Option.Option<string>, EngineError>
  /** The nodes whose lease is alive. */
  readonly nodes: Effect.Effect<ReadonlyArray<string>, EngineError>
  /** The nodes that take outbound peers: those whose `hold.<id>` lease is alive (a client-only node has none). */
  readonly holders: Effect.Effect<ReadonlyArray<string>, EngineError>
  /** A request to another node's handler. */
  readonly request: (
    node: string,
    message: Uint8Array,
    timeoutMillis: number
  ) => Effect.Effect<Uint8Array, NoResponder | EngineError>
  /** Serves this node's requests for the scope's lifetime. */
  readonly serve: (handler: (message: Uint8Array) => Effect.Effect<Uint8Array>) => Effect.Effect<void, EngineError, Scope.Scope>
}

/**
 * The service tag of an {@link Engine}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Engine } from "effect-tether"
 *
 * const node = Effect.map(Engine.Engine, (e) => e.node)
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export const Engine: typeof internal.EngineTag = internal.EngineTag

/**
 * The identifier type of the {@link Engine} tag.
 *
 * @example
 * ```ts
 * import type { Layer } from "effect"
 * import type { Engine } from "effect-tether"
 *
 * type EngineLayer = Layer.Layer<Engine.Tag>
 * ```
 *
 * @since 0.2.0
 * @category tags
 */
export type Tag = internal.EngineTag
