/**
 * A key-value RPC server: @effect/rpc's `RpcServer` on a tether listener (`RpcProtocol.layerServer`): seats,
 * watchdogs, and a shutdown bounded by --shutdown-timeout.
 *
 *   npx tsx examples/rpc/server.ts --port 7100
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Console, Duration, Effect, Layer, Ref } from "effect"
import { Watchdog } from "effect-tether"
import * as RpcProtocol from "effect-tether/RpcProtocol"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { duration } from "../cli.js"
import { KvApi, NotFound } from "./api.js"

/** Options of {@link layer}. */
export interface KvServerOptions {
  readonly host?: string | undefined
  readonly port: number
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

/** The handlers: an in-memory map. */
const handlers = KvApi.toLayer(Effect.gen(function*() {
  const store = yield* Ref.make(new Map<string, string>())
  return {
    Put: ({ key, value }) => Ref.update(store, (m) => new Map(m).set(key, value)),
    Get: ({ key }) =>
      Effect.flatMap(Ref.get(store), (m) => {
        const value = m.get(key)
        return value === undefined ? Effect.fail(new NotFound({ key })) : Effect.succeed(value)
      }),
    Count: () => Effect.map(Ref.get(store), (m) => m.size)
  }
}))

/** The server as a layer: building it listens, closing it shuts the listener down (bounded). */
export const layer = (options: KvServerOptions) =>
  RpcServer.layer(KvApi).pipe(
    Layer.provide(handlers),
    Layer.provide(RpcProtocol.layerServer({
      host: options.host ?? "127.0.0.1",
      port: options.port,
      shutdownTimeout: options.shutdownTimeout ?? "5 seconds",
      watchdogs: Watchdog.defaults()
    })),
    Layer.provide(RpcSerialization.layerMsgPack)
  )

// ---- command line ----

const usage = `key-value RPC server (@effect/rpc over tether)

usage: npx tsx examples/rpc/server.ts [options]

  --host <addr>              interface to bind (default 127.0.0.1)
  --port <n>                 port (default 7100)
  --shutdown-timeout <dur>   bound on the graceful shutdown (default 5s)
  -h, --help`

const main = () => {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "7100" },
      "shutdown-timeout": { type: "string", default: "5s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const server = layer({
    host: values.host,
    port: Number(values.port),
    shutdownTimeout: duration("--shutdown-timeout", values["shutdown-timeout"])
  })
  NodeRuntime.runMain(
    Layer.launch(Layer.provide(Layer.effectDiscard(Console.log(`kv server on ${values.host}:${values.port}`)), server))
  )
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
