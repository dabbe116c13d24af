/**
 * Builds and runs the small QuickFIX acceptor of test/quickfix (C++, Debian's
 * libquickfix-dev) for the interoperability tests.
 *
 * The binary is compiled once per source version into the OS temp dir (keyed
 * by a hash of the source and config) and reused by every test and run.
 */
import { Deferred, Duration, Effect, FiberId } from "effect"
import * as ChildProcess from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Testing from "effect-tether/testing"

const here = Path.dirname(new URL(import.meta.url).pathname)
const sourceDir = Path.resolve(here, "../quickfix")
const source = Path.join(sourceDir, "acceptor.cpp")
export const configFile = Path.join(sourceDir, "acceptor.cfg")

export type Build =
  | { readonly ok: true; readonly binary: string; readonly version: string; readonly compileMillis: number }
  | { readonly ok: false; readonly reason: string }

/** The installed QuickFIX package version, as dpkg reports it. */
const quickfixVersion = (): string => {
  try {
    return ChildProcess.execFileSync("dpkg-query", ["-W", "-f=${Version}", "libquickfix-dev"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"]
    }).trim()
  } catch {
    return "unknown"
  }
}

/** Compiles the acceptor (synchronously: the test file needs the answer to decide whether to skip). */
export const buildAcceptor = (): Build => {
  if (!Fs.existsSync("/usr/include/quickfix/SocketAcceptor.h")) {
    return { ok: false, reason: "libquickfix-dev is not installed (no /usr/include/quickfix/SocketAcceptor.h)" }
  }
  const hash = Crypto.createHash("sha256").update(Fs.readFileSync(source)).digest("hex").slice(0, 16)
  const dir = Path.join(Os.tmpdir(), `tether-quickfix-${hash}`)
  const binary = Path.join(dir, "qf-acceptor")
  const version = quickfixVersion()
  if (Fs.existsSync(binary)) return { ok: true, binary, version, compileMillis: 0 }
  Fs.mkdirSync(dir, { recursive: true })
  const started = performance.now()
  const tmp = `${binary}.${process.pid}`
  // headers of QuickFIX < 1.15 use dynamic exception specifications: C++14 at most
  const r = ChildProcess.spawnSync(
    "g++",
    ["-std=gnu++14", "-O0", "-w", "-o", tmp, source, "-lquickfix", "-lpthread"],
    { encoding: "utf8", timeout: 120_000 }
  )
  if (r.error !== undefined || r.status !== 0) {
    return {
      ok: false,
      reason: `could not compile the QuickFIX acceptor: ${r.error?.message ?? (r.stderr || "").slice(0, 2000)}`
    }
  }
  Fs.renameSync(tmp, binary)
  return { ok: true, binary, version, compileMillis: Math.round(performance.now() - started) }
}

const freePort = Testing.freePort()

export interface RunningAcceptor {
  readonly port: number
  /** Every stdout line so far. */
  readonly lines: () => ReadonlyArray<string>
  /** Waits (bounded) for a stdout line matching `pattern`; fails with the transcript. */
  readonly waitForLine: (pattern: RegExp, timeout?: Duration.DurationInput) => Effect.Effect<string, Error>
}

/** Runs the acceptor on a free loopback port, in the current scope (stdin closed + bounded wait, then SIGKILL). */
export const runAcceptor = (binary: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const port = yield* freePort
      const child = ChildProcess.spawn(binary, [configFile, String(port)], { stdio: ["pipe", "pipe", "pipe"] })
      const lines: Array<string> = []
      const waiters: Array<{ pattern: RegExp; done: Deferred.Deferred<string> }> = []
      let partial = ""
      let stderr = ""
      const exited = Deferred.unsafeMake<number | null>(FiberId.none)
      child.stdout.setEncoding("utf8")
      child.stdout.on("data", (chunk: string) => {
        partial += chunk
        let nl: number
        while ((nl = partial.indexOf("\n")) >= 0) {
          const line = partial.slice(0, nl)
          partial = partial.slice(nl + 1)
          lines.push(line)
          for (const w of waiters) if (w.pattern.test(line)) Deferred.unsafeDone(w.done, Effect.succeed(line))
        }
      })
      child.stderr.setEncoding("utf8")
      child.stderr.on("data", (chunk: string) => (stderr += chunk))
      child.on("exit", (code) => Deferred.unsafeDone(exited, Effect.succeed(code)))
      child.on("error", (e) => {
        stderr += String(e)
        Deferred.unsafeDone(exited, Effect.succeed(-1))
      })
      const waitForLine = (pattern: RegExp, timeout: Duration.DurationInput = "5 seconds") =>
        Effect.suspend(() => {
          const seen = lines.find((l) => pattern.test(l))
          if (seen !== undefined) return Effect.succeed(seen)
          const done = Deferred.unsafeMake<string>(FiberId.none)
          waiters.push({ pattern, done })
          return Deferred.await(done).pipe(
            Effect.timeoutFail({
              duration: timeout,
              onTimeout: () =>
                new Error(`QuickFIX acceptor: no line matching ${pattern} within ${Duration.format(Duration.decode(timeout))}\n` +
                  `stdout:\n${lines.join("\n")}\nstderr:\n${stderr}`)
            })
          )
        })
      const exitedEarly = Effect.flatMap(Deferred.await(exited), (code) =>
        Effect.fail(new Error(`QuickFIX acceptor exited with ${code} before READY: ${stderr}`)))
      return { child, exited, exitedEarly, port, lines, waitForLine }
    }),
    ({ child, exited }) =>
      Effect.gen(function*() {
        child.stdin.end()
        const gone = yield* Deferred.await(exited).pipe(Effect.timeout("3 seconds"), Effect.option)
        if (gone._tag === "None") {
          child.kill("SIGKILL")
          yield* Deferred.await(exited).pipe(Effect.timeout("2 seconds"), Effect.ignore)
        }
      })
  ).pipe(
    // waited for outside the (uninterruptible) acquire, so that the race can interrupt its loser
    Effect.tap((r) => Effect.raceFirst(r.waitForLine(/^READY /, "10 seconds"), r.exitedEarly)),
    Effect.map((r): RunningAcceptor => ({ port: r.port, lines: () => r.lines, waitForLine: r.waitForLine }))
  )
