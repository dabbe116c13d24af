/**
 * The RPC bench's service (one `Echo` RPC: a number in, the same number out) and its servers: @effect/rpc's
 * `RpcServer` on the platform's `NodeSocketServer` (raw bytes, NDJSON/MsgPack framing by @effect/rpc) or on a
 * tether `PlatformSocketServer` (length-prefixed frames, what `RpcProtocol.layerServer` uses), MsgPack both.
 */
import { Rpc, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import * as SocketServer from "@effect/platform/SocketServer"
import { Effect, Layer, Schema, Scope } from "effect"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import type { Params } from "./common.js"

export class BenchApi extends RpcGroup.make(
  Rpc.make("Echo", { payload: { n: Schema.Number }, success: Schema.Number })
) {}

/** A tether subpath module (e.g. "RpcProtocol") from the same build as `loadTether` (dist/ or src/). */
export const loadTetherModule = <A>(p: Params, name: string): Promise<A> =>
  typeof p.tetherEntry === "string"
    ? import(pathToFileURL(Path.join(Path.dirname(p.tetherEntry), `${name}.js`)).href) as Promise<A>
    : import(`../../src/${name}.js`) as Promise<A>

/**
 * Serves BenchApi on `server` in `scope`; `onSessionEnd` runs when a client's socket ends (with the calls served).
 */
export const serveRpc = (
  server: SocketServer.SocketServer["Type"],
  scope: Scope.Scope,
  onSessionEnd: (served: number) => void
) => {
  let served = 0
  const observed = SocketServer.SocketServer.of({
    address: server.address,
    run: (handler) => server.run((socket) => Effect.ensuring(handler(socket), Effect.sync(() => onSessionEnd(served))))
  })
  return Layer.buildWithScope(
    RpcServer.layer(BenchApi).pipe(
      Layer.provide(BenchApi.toLayer({ Echo: ({ n }) => Effect.sync(() => (served++, n)) })),
      Layer.provide(RpcServer.layerProtocolSocketServer),
      Layer.provide(Layer.succeed(SocketServer.SocketServer, observed)),
      Layer.provide(RpcSerialization.layerMsgPack)
    ),
    scope
  )
}
