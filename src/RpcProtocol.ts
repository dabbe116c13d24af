/**
 * `@effect/rpc` over tether: a client protocol on tether TCP connections (reconnecting, exactly once at the kernel
 * boundary) and the server protocol on a tether `Listener`, as layers of `RpcClient.Protocol` and
 * `RpcServer.Protocol`. Both ends frame each message with `Framing.lengthPrefixed()`, so any `RpcSerialization`
 * works (`layerNdjson`, `layerMsgPack`, even `layerJson`), and both ends must be tether.
 *
 * Needs the optional peer dependencies `@effect/rpc` and `@effect/platform`.
 *
 * **What a call can count on** (what `@effect/rpc` itself promises over a socket, and what tether adds):
 * - `@effect/rpc` never sends a request twice. Its socket protocol fails every call in flight with `RpcClientError`
 *   when the socket fails, and fails new calls at once with the same error until it is open again; the server
 *   interrupts the handlers of a client that went away. There is no notion of an idempotent RPC.
 * - On tether, a call made while the client is disconnected waits for a connection and is sent on it; once it has
 *   waited `queueTimeout` (5 s), the next failed connect attempt fails it with `RpcClientError` ("request not sent
 *   (it did not run)"), so a call never waits for ever. At most `maxQueuedRequests` (10 000) wait at once; beyond
 *   that a call fails at once.
 * - When a connection is lost, a request none of whose bytes reached the kernel (`outcome.undelivered`, or the one
 *   frame cut in the middle, which the server cannot decode) **never ran**: it is sent again on the next connection
 *   and completes there exactly once. A request the kernel took may have run: it fails with `RpcClientError`
 *   ("connection lost after the request was sent … it may have run"), unless its tag is listed in `idempotent`,
 *   then it is sent again (it may run twice: that is what idempotent means).
 * - Liveness comes from tether's watchdogs (pass `watchdogs: Watchdog.defaults()`: a server that stops reading is
 *   reaped by the send-stall watchdog, a vanished one by the peer-gone one), not from `@effect/rpc`'s 10 s ping,
 *   which this protocol does not send. Every connection closes with the full bounded shutdown.
 *
 * @since 0.4.0
 */
import type * as SocketServer from "@effect/platform/SocketServer"
import type * as RpcClient from "@effect/rpc/RpcClient"
import type * as RpcSerialization from "@effect/rpc/RpcSerialization"
import type * as RpcServer from "@effect/rpc/RpcServer"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Connection from "./Connection.js"
import * as internal from "./internal/rpcProtocol.js"
import type * as PlatformSocketServer from "./PlatformSocketServer.js"

/**
 * Client options: where to connect and every connection option (`watchdogs`, `writeTimeout`, `lingerTimeout`, …;
 * the codec defaults to `Framing.lengthPrefixed()`, as on the server), plus:
 * - `retrySchedule`: delays between connect attempts (default exponential from 100 ms × 1.5, at most 5 s; reset by
 *   each connection); when it ends the client stops connecting and calls fail;
 * - `maxQueuedRequests`: calls that may wait for a connection at once (default 10 000);
 * - `queueTimeout`: how long a call may wait for a connection (default 5 s; checked when a connect attempt fails,
 *   so a call waits at most `queueTimeout` + one retry delay + `connectTimeout`; `0`: one attempt);
 * - `idempotent`: the RPC tags (or a predicate) that may be sent again after a connection was lost with them
 *   unanswered.
 *
 * @example
 * ```ts
 * import { Watchdog } from "effect-tether"
 * import type * as RpcProtocol from "effect-tether/RpcProtocol"
 *
 * const options: RpcProtocol.ClientOptions = {
 *   port: 7000,
 *   connectTimeout: "3 seconds",
 *   watchdogs: Watchdog.defaults(),
 *   idempotent: ["GetUser"]
 * }
 * ```
 *
 * @since 0.4.0
 * @category models
 */
export type ClientOptions = Parameters<typeof Connection.connectTcp>[0] & {
  readonly retrySchedule?: Schedule.Schedule<unknown, unknown> | undefined
  readonly maxQueuedRequests?: number | undefined
  readonly queueTimeout?: Duration.DurationInput | undefined
  readonly idempotent?: ReadonlyArray<string> | ((tag: string) => boolean) | undefined
}

/**
 * The default bound on calls waiting for a connection: 10 000.
 *
 * @example
 * ```ts
 * import * as RpcProtocol from "effect-tether/RpcProtocol"
 *
 * console.log(RpcProtocol.defaultMaxQueued) // 10000
 * ```
 *
 * @since 0.4.0
 * @category constants
 */
export const defaultMaxQueued: number = internal.defaultMaxQueued

/**
 * The default bound on how long a call waits for a connection: 5 seconds.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import * as RpcProtocol from "effect-tether/RpcProtocol"
 *
 * console.log(Duration.toMillis(RpcProtocol.defaultQueueTimeout)) // 5000
 * ```
 *
 * @since 0.4.0
 * @category constants
 */
export const defaultQueueTimeout: Duration.Duration = internal.defaultQueueTimeout

/**
 * The default connect retry schedule: exponential from 100 ms (× 1.5), at most every 5 s.
 *
 * @example
 * ```ts
 * import * as RpcProtocol from "effect-tether/RpcProtocol"
 *
 * const options: RpcProtocol.ClientOptions = { port: 7000, retrySchedule: RpcProtocol.defaultRetrySchedule }
 * ```
 *
 * @since 0.4.0
 * @category constants
 */
export const defaultRetrySchedule: Schedule.Schedule<unknown, unknown> = internal.defaultRetrySchedule

/**
 * The client protocol, in the current scope (connects in the background; closing the scope closes the connection
 * with the full shutdown and fails the calls still waiting).
 *
 * @example
 * ```ts
 * import { RpcClient, RpcSerialization } from "@effect/rpc"
 * import { Effect, Layer } from "effect"
 * import * as RpcProtocol from "effect-tether/RpcProtocol"
 *
 * const Protocol = Layer.scoped(RpcClient.Protocol, RpcProtocol.makeClient({ port: 7000 })).pipe(
 *   Layer.provide(RpcSerialization.layerMsgPack)
 * )
 * ```
 *
 * @since 0.4.0
 * @category constructors
 */
export const makeClient: (
  options: ClientOptions
) => Effect.Effect<RpcClient.Protocol["Type"], never, Scope.Scope | RpcSerialization.RpcSerialization> =
  internal.makeClient

/**
 * {@link makeClient} as a layer of `RpcClient.Protocol`.
 *
 * @example
 * ```ts
 * import { Rpc, RpcClient, RpcGroup, RpcSerialization } from "@effect/rpc"
 * import { Effect, Layer, Schema } from "effect"
 * import { Watchdog } from "effect-tether"
 * import * as RpcProtocol from "effect-tether/RpcProtocol"
 *
 * class Api extends RpcGroup.make(Rpc.make("Add", { payload: { a: Schema.Number, b: Schema.Number }, success: Schema.Number })) {}
 *
 * const ProtocolLive = RpcProtocol.layerClient({ port: 7000, watchdogs: Watchdog.defaults() }).pipe(
 *   Layer.provide(RpcSerialization.layerMsgPack)
 * )
 * const program = Effect.gen(function*() {
 *   const client = yield* RpcClient.make(Api)
 *   return yield* client.Add({ a: 1, b: 2 })
 * }).pipe(Effect.scoped, Effect.provide(ProtocolLive))
 * ```
 *
 * @since 0.4.0
 * @category layers
 */
export const layerClient: (
  options: ClientOptions
) => Layer.Layer<RpcClient.Protocol, never, RpcSerialization.RpcSerialization> = internal.layerClient

/**
 * The server protocol: `RpcServer.layerProtocolSocketServer` on a tether listener (`PlatformSocketServer.layer`
 * with `Framing.lengthPrefixed()`): seats, session registry, watchdogs, and a shutdown bounded by `shutdownTimeout`.
 *
 * @example
 * ```ts
 * import { Rpc, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
 * import { Effect, Layer, Schema } from "effect"
 * import * as RpcProtocol from "effect-tether/RpcProtocol"
 *
 * class Api extends RpcGroup.make(Rpc.make("Add", { payload: { a: Schema.Number, b: Schema.Number }, success: Schema.Number })) {}
 *
 * const ServerLive = RpcServer.layer(Api).pipe(
 *   Layer.provide(Api.toLayer({ Add: ({ a, b }) => Effect.succeed(a + b) })),
 *   Layer.provide(RpcProtocol.layerServer({ port: 7000, shutdownTimeout: "5 seconds" })),
 *   Layer.provide(RpcSerialization.layerMsgPack)
 * )
 * // Layer.launch(ServerLive)
 * ```
 *
 * @since 0.4.0
 * @category layers
 */
export const layerServer: (
  options: PlatformSocketServer.Options
) => Layer.Layer<RpcServer.Protocol, SocketServer.SocketServerError, RpcSerialization.RpcSerialization> =
  internal.layerServer
