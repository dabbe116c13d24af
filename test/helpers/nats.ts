/**
 * A real nats-server for the NatsEngine tests and the fleet proof: found on PATH (CI installs Debian's), started
 * with JetStream on a free port and a temporary store dir, killed (and the dir removed) with the scope.
 */
import { Effect, Schedule, Scope } from "effect"
import * as Testing from "effect-tether/testing"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

/** The nats-server binary, or undefined when it is not installed. */
export const natsServerBinary: string | undefined = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v nats-server"], { encoding: "utf8" }).trim() || undefined
  } catch {
    return undefined
  }
})()

/** Under CI=true a missing nats-server is a failure, not a skip. */
export const skipWithoutNats = (what: string): boolean => {
  const skip = natsServerBinary === undefined && process.env["CI"] !== "true"
  if (skip) console.warn(`${what} skipped: nats-server is not installed (apt-get install nats-server; CI installs it)`)
  return skip
}

/** A child process killed with SIGKILL (awaited, bounded) when the scope closes, or with this process. */
export const acquireChild = (spawnIt: () => ChildProcess) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const c = spawnIt()
      // and if the scope never closes (a timed-out test), with this process
      process.once("exit", () => c.kill("SIGKILL"))
      return c
    }),
    (c) =>
      c.exitCode !== null || c.signalCode !== null
        ? Effect.void
        : Effect.async<void>((resume) => {
          c.once("exit", () => resume(Effect.void))
          c.kill("SIGKILL")
        }).pipe(Effect.timeout("5 seconds"), Effect.ignore)
  )

const ready = (port: number) =>
  Effect.async<void, Error>((resume) => {
    const s = Net.connect(port, "127.0.0.1")
    s.once("connect", () => {
      s.destroy()
      resume(Effect.void)
    })
    s.once("error", (e) => resume(Effect.fail(e)))
  }).pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.intersect(Schedule.recurs(100)))), Effect.orDie)

/**
 * nats-server -js on a free port with a temporary store dir; ready once it accepts TCP (bounded). `kill` is a
 * SIGKILL (awaited); `restart` starts it again on the same port and store dir (awaited ready).
 */
export const natsServer = Effect.gen(function*() {
  const binary = natsServerBinary
  if (binary === undefined) return yield* Effect.die(new Error("CI=true but nats-server is not installed"))
  const port = yield* Testing.freePort()
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tether-nats-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
  const scope = yield* Effect.scope
  const start = Effect.gen(function*() {
    const c = yield* acquireChild(() =>
      spawn(binary, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir], { stdio: "ignore" })
    ).pipe(Scope.extend(scope))
    yield* ready(port)
    return c
  })
  let child: ChildProcess = yield* start
  const kill = Effect.async<void>((resume) => {
    const c = child
    if (c.exitCode !== null || c.signalCode !== null) return resume(Effect.void)
    c.once("exit", () => resume(Effect.void))
    c.kill("SIGKILL")
  }).pipe(Effect.timeout("5 seconds"), Effect.orDie)
  const restart = Effect.map(start, (c) => void (child = c))
  return { url: `nats://127.0.0.1:${port}`, port, get child() { return child }, kill, restart }
})
