/**
 * The RPC test server as a process of its own (`tsx test/helpers/rpcServerProcess.ts <port>`), so a test can kill it
 * (SIGKILL: no FIN, no Exit for the calls in flight). It prints `ready` once it listens and `S <id>` when a handler
 * starts.
 */
import { Effect, Layer } from "effect"
import { serverLayer } from "./rpcApi.js"

const port = Number(process.argv[2])
const note = (id: number) => Effect.sync(() => void process.stdout.write(`S ${id}\n`))

Effect.runFork(
  Layer.launch(
    Layer.effectDiscard(Effect.sync(() => void process.stdout.write("ready\n"))).pipe(
      Layer.provide(serverLayer(port, note))
    )
  )
)
