/**
 * Helpers for the example tests: run an example's command line with tsx, as
 * a user would (`npx tsx examples/...`), bounded by a timeout.
 */
import { Data, Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "../..")
const tsx = Path.join(root, "node_modules", ".bin", "tsx")

export class CliError extends Data.TaggedError("CliError")<{ readonly message: string }> {}

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `tsx <script> ...args` to completion (killed after `timeoutMs`), feeding `stdin` if given. */
export const runCli = (
  script: string,
  args: ReadonlyArray<string>,
  options?: { readonly stdin?: string; readonly timeoutMs?: number }
) =>
  Effect.async<CliResult, CliError>((resume) => {
    const child = ChildProcess.spawn(tsx, ["--conditions=effect-tether-source", script, ...args], { cwd: root, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()))
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      resume(Effect.fail(new CliError({ message: `${script} did not exit within ${options?.timeoutMs ?? 15000} ms\n${stdout}\n${stderr}` })))
    }, options?.timeoutMs ?? 15000)
    child.on("error", (e) => {
      clearTimeout(timer)
      resume(Effect.fail(new CliError({ message: String(e) })))
    })
    child.on("exit", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr }))
    })
    if (options?.stdin !== undefined) child.stdin.end(options.stdin)
    else child.stdin.end()
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })
