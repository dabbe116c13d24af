/**
 * A key-value RPC client: @effect/rpc's `RpcClient` on tether (`RpcProtocol.layerClient`): it reconnects, a call
 * made while the server is down waits for it (bounded by --queue-timeout), a request that never reached the kernel
 * is sent again after a reconnect, and one that may have run fails with a typed `RpcClientError`.
 *
 *   npx tsx examples/rpc/client.ts --port 7100 put greeting hello
 *   npx tsx examples/rpc/client.ts --port 7100 get greeting
 *   npx tsx examples/rpc/client.ts --port 7100 count
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { Console, Duration, Effect, Layer } from "effect"
import { Watchdog } from "effect-tether"
import * as RpcProtocol from "effect-tether/RpcProtocol"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { duration } from "../cli.js"
import { KvApi } from "./api.js"

/** Options of {@link protocol}. */
export interface KvClientOptions {
  readonly host?: string | undefined
  readonly port: number
  readonly queueTimeout?: Duration.DurationInput | undefined
}

/** The client protocol as a layer: a tether connection with watchdogs, reconnecting; `Get` and `Count` are idempotent. */
export const protocol = (options: KvClientOptions) =>
  RpcProtocol.layerClient({
    host: options.host ?? "127.0.0.1",
    port: options.port,
    connectTimeout: "3 seconds",
    queueTimeout: options.queueTimeout ?? "5 seconds",
    watchdogs: Watchdog.defaults(),
    idempotent: ["Get", "Count"]
  }).pipe(Layer.provide(RpcSerialization.layerMsgPack))

/** Runs one command (`put k v`, `get k`, `count`) and returns the line to print. */
export const command = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const kv = yield* RpcClient.make(KvApi)
    const [verb, key = "", value = ""] = args
    switch (verb) {
      case "put":
        yield* kv.Put({ key, value })
        return `ok`
      case "get":
        return yield* kv.Get({ key }).pipe(Effect.catchTag("NotFound", (e) => Effect.succeed(`not found: ${e.key}`)))
      case "count":
        return String(yield* kv.Count())
      default:
        return yield* Effect.dieMessage(`unknown command: ${verb ?? "(none)"} (put k v | get k | count)`)
    }
  })

// ---- command line ----

const usage = `key-value RPC client (@effect/rpc over tether)

usage: npx tsx examples/rpc/client.ts [options] put <key> <value> | get <key> | count

  --host <addr>            server host (default 127.0.0.1)
  --port <n>               server port (default 7100)
  --queue-timeout <dur>    how long a call waits for a connection (default 5s)
  -h, --help`

const main = () => {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "7100" },
      "queue-timeout": { type: "string", default: "5s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const program = command(positionals).pipe(
    Effect.flatMap(Console.log),
    Effect.scoped,
    Effect.provide(protocol({
      host: values.host,
      port: Number(values.port),
      queueTimeout: duration("--queue-timeout", values["queue-timeout"])
    }))
  )
  NodeRuntime.runMain(program)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
