/**
 * The RPC group the @effect/rpc-over-tether tests use, and its handlers: every handler notes the request id it
 * started (a ledger), so a test can tell how many times each request ran on the server.
 */
import { Rpc, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Layer, Schema } from "effect"
import type { Duration } from "effect"
import * as RpcProtocol from "effect-tether/RpcProtocol"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import * as Readline from "node:readline"

const root = Path.resolve(import.meta.dirname, "../..")

export class Api extends RpcGroup.make(
  Rpc.make("Add", { payload: { id: Schema.Number, a: Schema.Number, b: Schema.Number }, success: Schema.Number }),
  Rpc.make("Slow", { payload: { id: Schema.Number, millis: Schema.Number }, success: Schema.Number }),
  Rpc.make("Put", { payload: { id: Schema.Number, data: Schema.Uint8ArrayFromSelf }, success: Schema.Number })
) {}

export const handlers = (note: (id: number) => Effect.Effect<void>) =>
  Api.toLayer({
    Add: ({ a, b, id }) => Effect.as(note(id), a + b),
    Slow: ({ id, millis }) => Effect.zipRight(note(id), Effect.as(Effect.sleep(millis), id)),
    Put: ({ data, id }) => Effect.as(note(id), data.length)
  })

export const serverLayer = (
  port: number,
  note: (id: number) => Effect.Effect<void>,
  options?: { readonly shutdownTimeout?: Duration.DurationInput | undefined }
) =>
  RpcServer.layer(Api).pipe(
    Layer.provide(handlers(note)),
    Layer.provide(RpcProtocol.layerServer({ port, shutdownTimeout: options?.shutdownTimeout ?? "2 seconds" })),
    Layer.provide(RpcSerialization.layerMsgPack)
  )

/** a server process (see rpcServerProcess.ts): its ledger fills from its output; `kill` sends SIGKILL */
export interface ServerProcess {
  readonly kill: Effect.Effect<void>
}

export const spawnServer = (port: number, started: Map<number, number>) =>
  Effect.acquireRelease(
    Effect.async<{ readonly child: ChildProcess.ChildProcess }, Error>((resume) => {
      // node itself with tsx's loader (not the tsx wrapper, whose SIGKILL would leave its node child running)
      const child = ChildProcess.spawn(
        process.execPath,
        ["--import", "tsx", "--conditions=effect-tether-source", Path.join(root, "test/helpers/rpcServerProcess.ts"), String(port)],
        { cwd: root, stdio: ["ignore", "pipe", "pipe"] }
      )
      let stderr = ""
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
      Readline.createInterface({ input: child.stdout! }).on("line", (line) => {
        if (line === "ready") resume(Effect.succeed({ child }))
        else if (line.startsWith("S ")) {
          const id = Number(line.slice(2))
          started.set(id, (started.get(id) ?? 0) + 1)
        }
      })
      child.once("exit", (code) => resume(Effect.fail(new Error(`server exited (${code}) before ready: ${stderr}`))))
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
  ).pipe(
    Effect.map(({ child }): ServerProcess => ({
      kill: Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("close", () => resume(Effect.void))
        child.kill("SIGKILL")
      })
    }))
  )
