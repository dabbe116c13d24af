/**
 * An {@link Engine.Engine} in memory: one {@link Cluster} shared by several nodes of one process, its time
 * from the Clock — so FleetHub's routing, lease loss, replay and reporting run under TestClock. It has the
 * same contract as `NatsEngine` (idempotent appends, silent drop-oldest and age backstop leaving gaps in the
 * sequence, redelivery flags, lease revisions, registry entries that die with their node's lease), and acks
 * are fenced: an ack under a lost lease fails `Fenced`.
 *
 * @since 0.2.0
 */
import type * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Engine from "./Engine.js"
import * as internal from "./internal/memoryEngine.js"

/**
 * A store shared by the nodes of one process, with switches to crash a node (its engine calls fail, its
 * leases stop being refreshed, its requests find no responder) or make the engine unreachable for all.
 *
 * @example
 * ```ts
 * import { MemoryEngine } from "effect-tether"
 *
 * const cluster = MemoryEngine.makeCluster()
 * const a = cluster.layer("a")
 * const b = cluster.layer("b")
 * cluster.crash("b")
 * // a retried append the engine cannot dedup: the next append's reply is lost, then the ids are forgotten
 * cluster.loseAppendReply("venue-1")
 * cluster.forgetAppendIds()
 * // a slow link: a's leases are granted when asked, the grant reaches a 2 s later
 * cluster.setReplyDelay("a", 2000, ["acquire"])
 * ```
 *
 * @since 0.2.0
 * @category models
 */
export interface Cluster {
  /** The engine as node `node` sees it. */
  readonly engine: (node: string) => Engine.Engine
  /** A layer providing {@link Engine.Engine} for node `node`. */
  readonly layer: (node: string) => Layer.Layer<Engine.Tag>
  /** From now on `node` cannot reach the engine (a crash or a partition, as the others see it). */
  readonly crash: (node: string) => void
  /** Undoes {@link Cluster.crash}. */
  readonly revive: (node: string) => void
  /** While true, no node can reach the engine. */
  readonly setUnavailable: (unavailable: boolean) => void
  /**
   * The next append to `key` is stored, but its caller gets `Unavailable` (the reply was lost on its way back):
   * the sender cannot know it was stored.
   */
  readonly loseAppendReply: (key: string) => void
  /**
   * From now on the replies to `node`'s operations (all of them, or those named in `ops`) reach it `millis` late
   * (`0`: on time again). The engine acts when it is asked — a lease runs from the request, as on NATS — only
   * the answer is slow. Consumers (`consume`, `fetch`, `ack`) and `serve` are not delayed.
   */
  readonly setReplyDelay: (
    node: string,
    millis: number,
    ops?: ReadonlyArray<
      | "declare"
      | "undeclare"
      | "peers"
      | "peer"
      | "append"
      | "acquire"
      | "refresh"
      | "release"
      | "register"
      | "unregister"
      | "locate"
      | "nodes"
      | "holders"
      | "request"
    >
  ) => void
  /**
   * The engine forgets the ids of the appends it stored, as a restarted server's dedup may: a retry of one of
   * them is stored again.
   */
  readonly forgetAppendIds: () => void
  /** The last holder of an outbound peer's lease (test aid; does not check expiry). */
  readonly holderOf: (key: string) => Option.Option<string>
  /** Entries a peer's log holds (test aid). */
  readonly logSize: (key: string) => number
}

/**
 * Makes an empty {@link Cluster}.
 *
 * @example
 * ```ts
 * import { MemoryEngine } from "effect-tether"
 *
 * const cluster = MemoryEngine.makeCluster()
 * const engineOfA = cluster.engine("a")
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeCluster: () => Cluster = internal.makeCluster

/**
 * How much longer than a peer's `maxAge` the engine keeps an entry (its backstop) — FleetHub drops and reports
 * it at `maxAge` first.
 *
 * @example
 * ```ts
 * import { MemoryEngine } from "effect-tether"
 *
 * const margin = MemoryEngine.ageMarginMillis // 1000
 * ```
 *
 * @since 0.2.0
 * @category constants
 */
export const ageMarginMillis: number = internal.ageMarginMillis
