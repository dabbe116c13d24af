/**
 * A peer in its own network namespace behind a veth pair, for the demo and the tests that need a
 * real half-open link: taking the peer's end down inside its namespace makes it
 * vanish without FIN or RST (our kernel keeps retransmitting into the void).
 *
 * Needs Linux, root and iproute2. Everything is created with names unique to
 * this run (namespace `tether-wd-<pid>-<rand>`, veths `twa…`/`twb…`) on a
 * private 10.231.X.0/24 that exists only on the veth pair; all of it is removed
 * by the scope's finalizer, and leftovers of earlier runs (dead pids) are
 * removed on start.
 */
import { Deferred, Effect } from "effect"
import type { Scope } from "effect"
import * as ChildProcess from "node:child_process"

const ip = (args: ReadonlyArray<string>) =>
  ChildProcess.execFileSync("ip", args, { stdio: ["ignore", "pipe", "pipe"], timeout: 5000 }).toString()
const ipQuiet = (args: ReadonlyArray<string>) => {
  try {
    ip(args)
  } catch {
    // already gone
  }
}

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Removes namespaces left behind by earlier runs whose process is gone. */
const removeStale = () => {
  let list = ""
  try {
    list = ip(["netns", "list"])
  } catch {
    return
  }
  for (const line of list.split("\n")) {
    const name = line.trim().split(/\s+/)[0] ?? ""
    const m = /^tether-wd-(\d+)-/.exec(name)
    if (m && !pidAlive(Number(m[1]))) ipQuiet(["netns", "del", name])
  }
}

/**
 * Whether network namespaces can be used here; when not, why (the test is then
 * skipped with that message).
 */
export const availability = (): { readonly ok: true } | { readonly ok: false; readonly reason: string } => {
  if (process.platform !== "linux") return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` }
  if (process.getuid?.() !== 0) return { ok: false, reason: "network namespaces need root" }
  try {
    ip(["-V"])
  } catch {
    return { ok: false, reason: "iproute2 (`ip`) is not installed" }
  }
  const probe = `tether-wd-${process.pid}-probe`
  try {
    ip(["netns", "add", probe])
    ip(["netns", "del", probe])
  } catch (e) {
    ipQuiet(["netns", "del", probe])
    return { ok: false, reason: `\`ip netns add\` is not permitted here: ${String(e).split("\n")[0]}` }
  }
  return { ok: true }
}

/** A free 10.231.X.0/24: not on any interface of the host. */
const freeSubnet = (): number => {
  const used = ip(["-4", "-o", "addr", "show"])
  const start = Math.floor(Math.random() * 250) + 1
  for (let i = 0; i < 250; i++) {
    const x = ((start + i) % 250) + 1
    if (!used.includes(`10.231.${x}.`)) return x
  }
  throw new Error("no free 10.231.X.0/24")
}

export interface NetNs {
  readonly name: string
  readonly hostIp: string
  readonly peerIp: string
  /** Takes the peer's veth down inside its namespace: the peer vanishes without FIN or RST. */
  readonly linkDown: Effect.Effect<void>
  /** Starts a TCP peer (node) inside the namespace that reads everything; resolves with its port. */
  readonly spawnReader: Effect.Effect<number, Error, Scope.Scope>
}

/** Creates the namespace and veth pair; the scope's finalizer removes them. */
export const make: Effect.Effect<NetNs, Error, Scope.Scope> = Effect.acquireRelease(
  Effect.try({
    try: () => {
      removeStale()
      const tag = `${process.pid}-${Math.random().toString(36).slice(2, 6)}`
      const name = `tether-wd-${tag}`
      const short = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 5)}`.slice(-9)
      const hostDev = `twa${short}`
      const peerDev = `twb${short}`
      // leftovers of the same names (cannot normally exist: the names are unique to this run)
      ipQuiet(["netns", "del", name])
      ipQuiet(["link", "del", hostDev])
      const x = freeSubnet()
      const hostIp = `10.231.${x}.1`
      const peerIp = `10.231.${x}.2`
      const cleanup = () => {
        ipQuiet(["netns", "del", name]) // takes the peer's veth, and with it the pair, along
        ipQuiet(["link", "del", hostDev])
      }
      try {
        ip(["netns", "add", name])
        ip(["link", "add", hostDev, "type", "veth", "peer", "name", peerDev])
        ip(["link", "set", peerDev, "netns", name])
        ip(["addr", "add", `${hostIp}/24`, "dev", hostDev])
        ip(["link", "set", hostDev, "up"])
        ip(["netns", "exec", name, "ip", "addr", "add", `${peerIp}/24`, "dev", peerDev])
        ip(["netns", "exec", name, "ip", "link", "set", peerDev, "up"])
        ip(["netns", "exec", name, "ip", "link", "set", "lo", "up"])
      } catch (e) {
        cleanup()
        throw e
      }
      return { name, hostIp, peerIp, hostDev, peerDev, cleanup }
    },
    catch: (e) => new Error(`netns setup failed: ${String(e)}`)
  }),
  (ns) => Effect.sync(ns.cleanup)
).pipe(Effect.map((ns): NetNs => ({
  name: ns.name,
  hostIp: ns.hostIp,
  peerIp: ns.peerIp,
  linkDown: Effect.sync(() => ip(["netns", "exec", ns.name, "ip", "link", "set", ns.peerDev, "down"])),
  spawnReader: spawnReader(ns.name, ns.peerIp)
})))

// The peer: listens on the namespace's address, reads and discards everything,
// prints its port, and exits when its stdin closes (so it cannot outlive the test).
const readerScript = `
const net = require("node:net")
const server = net.createServer((s) => { s.on("error", () => {}); s.resume() })
server.listen(0, process.argv[1], () => process.stdout.write("PORT " + server.address().port + "\\n"))
process.stdin.on("end", () => process.exit(0)).on("error", () => process.exit(0)).resume()
`

const spawnReader = (ns: string, host: string): Effect.Effect<number, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const port = yield* Deferred.make<number, Error>()
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const c = ChildProcess.spawn("ip", ["netns", "exec", ns, process.execPath, "-e", readerScript, host], {
          stdio: ["pipe", "pipe", "pipe"]
        })
        let out = ""
        let err = ""
        c.stdout.on("data", (d: Buffer) => {
          out += d.toString()
          const m = /PORT (\d+)/.exec(out)
          if (m) Deferred.unsafeDone(port, Effect.succeed(Number(m[1])))
        })
        c.stderr.on("data", (d: Buffer) => (err += d.toString()))
        c.on("exit", (code) =>
          Deferred.unsafeDone(port, Effect.fail(new Error(`peer exited (${code}) before listening: ${err}`))))
        return c
      }),
      (c) =>
        Effect.sync(() => {
          c.stdin.end()
          c.kill("SIGKILL")
        })
    )
    void child
    return yield* Deferred.await(port).pipe(
      Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("peer did not start listening in 5 s") })
    )
  })
