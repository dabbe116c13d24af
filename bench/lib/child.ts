/**
 * Spawning bench children with hard time limits. Every child is a direct
 * `node --import tsx` process (no wrapper shell), so killing its pid kills it;
 * every live child is killed when the orchestrator exits for any reason.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const benchDir = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
const rootDir = Path.resolve(benchDir, "..")

const live = new Set<ChildProcess>()
/** BENCH_DEBUG=1: forward the children's other output (e.g. --trace-gc) to stderr. */
const debug = process.env.BENCH_DEBUG === "1"

/** Compiled tether entry handed to every child (set once by the orchestrator). */
let tetherEntry: string | undefined
export const setTetherEntry = (entry: string): void => {
  tetherEntry = entry
}

const killAll = () => {
  for (const c of live) {
    try {
      c.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
  live.clear()
}
process.on("exit", killAll)
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

export type Message = Record<string, unknown>

export interface Child {
  readonly pid: number | undefined
  /** The `{"ready":…}` line (receivers). */
  readonly ready: Promise<Message>
  /** The `result` object. */
  readonly result: Promise<Message>
  readonly kill: () => void
  /** Asks the child to exit (it exits when its stdin closes). */
  readonly requestExit: () => void
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>
}

/** Spawns `bench/proc/<script>.ts` with `params`; fails its promises after `limitMs`. */
export const spawnChild = (
  script: "recv" | "send",
  params: Message,
  limitMs: number,
  extraNodeArgs: ReadonlyArray<string> = []
): Child => {
  const proc = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "--expose-gc",
      ...extraNodeArgs,
      Path.join(benchDir, "proc", `${script}.ts`),
      JSON.stringify({ ...params, limitMs: limitMs + 5_000, tetherEntry })
    ],
    { cwd: rootDir, stdio: ["pipe", "pipe", "pipe"] }
  )
  live.add(proc)
  let stderr = ""
  let buffered = ""
  let resolveReady!: (m: Message) => void
  let rejectReady!: (e: Error) => void
  let resolveResult!: (m: Message) => void
  let rejectResult!: (e: Error) => void
  const ready = new Promise<Message>((res, rej) => {
    resolveReady = res
    rejectReady = rej
  })
  const result = new Promise<Message>((res, rej) => {
    resolveResult = res
    rejectResult = rej
  })
  // callers may only await one of them
  ready.catch(() => {})
  result.catch(() => {})
  const failWith = (e: Error) => {
    rejectReady(e)
    rejectResult(e)
  }
  const kill = () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL")
    live.delete(proc)
  }
  const timer = setTimeout(() => {
    failWith(new Error(`${script} ${String(params.variant)}: time limit ${limitMs} ms exceeded`))
    kill()
  }, limitMs)
  proc.stdout.setEncoding("utf8")
  proc.stdout.on("data", (data: string) => {
    buffered += data
    let nl: number
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim()
      buffered = buffered.slice(nl + 1)
      if (!line.startsWith("{")) {
        if (debug) process.stderr.write(`[${script} ${String(params.variant)}] ${line}\n`)
        continue
      }
      let msg: Message
      try {
        msg = JSON.parse(line) as Message
      } catch {
        continue
      }
      if (msg.ready === true) resolveReady(msg)
      else if (msg.result !== undefined) {
        clearTimeout(timer)
        resolveResult(msg.result as Message)
      } else if (typeof msg.error === "string") {
        failWith(new Error(`${script} ${String(params.variant)}: ${msg.error}`))
      }
    }
  })
  proc.stderr.setEncoding("utf8")
  proc.stderr.on("data", (d: string) => {
    stderr = (stderr + d).slice(-4000)
    if (debug) process.stderr.write(d)
  })
  proc.stdin.on("error", () => {})
  const exited = new Promise<void>((res) => proc.once("exit", () => res()))
  proc.on("exit", (code, signal) => {
    clearTimeout(timer)
    live.delete(proc)
    failWith(new Error(`${script} ${String(params.variant)} exited (${code ?? signal}) before reporting\n${stderr}`))
  })
  proc.on("error", (e) => failWith(e))
  return { pid: proc.pid, ready, result, kill, exited, requestExit: () => proc.stdin.end() }
}

/**
 * One measurement: a receiver, then a sender pointed at its port. Both must
 * report within `limitMs`; both are killed afterwards whatever happened.
 */
export const runPair = async (
  recvParams: Message,
  sendParams: Message,
  limitMs: number,
  senderNodeArgs: ReadonlyArray<string> = [],
  /** How long to let the sender exit by itself (e.g. to write a CPU profile) before killing it. */
  graceMs = 0
): Promise<{ send: Message; recv: Message }> => {
  const recv = spawnChild("recv", recvParams, limitMs)
  let send: Child | undefined
  try {
    const { port } = await recv.ready
    send = spawnChild("send", { ...sendParams, port }, limitMs, senderNodeArgs)
    const [s, r] = await Promise.all([send.result, recv.result])
    return { send: s, recv: r }
  } finally {
    if (send !== undefined && graceMs > 0) {
      send.requestExit()
      await Promise.race([send.exited, new Promise((res) => setTimeout(res, graceMs))])
    }
    send?.kill()
    recv.kill()
  }
}
