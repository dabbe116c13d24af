/**
 * A FleetHub across processes, in one command: nats-server (JetStream, a free port, a temporary store), two node
 * processes (examples/fleet/node.ts) that share 4 outbound venues between them, and this process as a
 * client-only node sending to every venue. Midway the node holding the most venues is killed with SIGKILL: its
 * venues move to the other node after the lease TTL, the frames it wrote but had not acked are replayed in
 * order and flagged ("!"), nothing is lost.
 *
 *   npx tsx examples/fleet/main.ts
 *   npx tsx examples/fleet/main.ts --frames 2000 --ttl 1500
 *
 * Needs `nats-server` on the PATH (Debian: apt-get install nats-server).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Schedule } from "effect"
import { Engine, FleetHub, Framing } from "effect-tether"
import * as NatsEngine from "effect-tether/NatsEngine"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { parseArgs } from "node:util"
import { kinds, Venue } from "./kinds.js"

const { values } = parseArgs({ options: { frames: { type: "string" }, ttl: { type: "string" }, venues: { type: "string" } } })
const FRAMES = Number(values.frames ?? 1000)
const TTL = Number(values.ttl ?? 1500)
const VENUES = Number(values.venues ?? 4)
const here = import.meta.dirname
const root = Path.resolve(here, "../..")

const child = (cmd: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "ignore"] })),
    (c) => Effect.sync(() => c.kill("SIGKILL"))
  )

const freePort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const s = Net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
)

/** A TCP venue: records every length-prefixed frame it reads. */
const venue = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<{ server: Net.Server; port: number; got: Array<string> }>((resolve) => {
      const got: Array<string> = []
      const server = Net.createServer((socket) => {
        let buf = Buffer.alloc(0)
        socket.on("error", () => {})
        socket.on("data", (d: Buffer) => {
          buf = Buffer.concat([buf, d])
          while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
            const n = buf.readUInt32BE(0)
            got.push(buf.subarray(4, 4 + n).toString("utf8"))
            buf = buf.subarray(4 + n)
          }
        })
      }).listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as Net.AddressInfo).port, got }))
    })
  ),
  (v) => Effect.sync(() => v.server.close())
)


const fleetNode = (url: string, id: string) =>
  Effect.gen(function*() {
    const c: ChildProcess = yield* child(process.execPath, ["--conditions=effect-tether-source", "--import", "tsx", Path.join(here, "node.ts")], {
      NATS_URL: url,
      NODE_ID: id,
      LEASE_TTL: String(TTL)
    })
    const state = { id, child: c, held: [] as ReadonlyArray<string>, ready: false }
    let out = ""
    c.stdout!.on("data", (d: Buffer) => {
      out += d.toString()
      let k: number
      while ((k = out.indexOf("\n")) >= 0) {
        const line = out.slice(0, k)
        out = out.slice(k + 1)
        const v = JSON.parse(line) as { held?: Array<string>; ready?: boolean; event?: string; key?: string; count?: number; reason?: string }
        if (v.ready) state.ready = true
        if (v.held) state.held = v.held
        if (v.event) console.log(`  [${id}] ${v.event} ${v.key}${v.count === undefined ? "" : ` (${v.count} frames)`}${v.reason === undefined ? "" : `: ${v.reason}`}`)
      }
    })
    return state
  })

const until = (cond: () => boolean) =>
  Effect.suspend(() => (cond() ? Effect.void : Effect.fail("not yet"))).pipe(
    Effect.retry(Schedule.spaced("50 millis")),
    Effect.timeout("30 seconds"),
    Effect.orDie
  )

const program = Effect.gen(function*() {
  const port = yield* freePort
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tether-fleet-example-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
  yield* child("nats-server", ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir])
  const url = `nats://127.0.0.1:${port}`
  yield* Effect.sleep("300 millis")
  const venues = yield* Effect.all(Array.from({ length: VENUES }, () => venue))
  const nodes = yield* Effect.all([fleetNode(url, "n1"), fleetNode(url, "n2")])
  yield* until(() => nodes.every((n) => n.ready))
  const engine = yield* NatsEngine.make({ servers: [url], node: "driver", leaseTtl: TTL })
  const driver = yield* FleetHub.make({ kinds, leaseTtl: TTL, hold: false }).pipe(
    Effect.provideService(Engine.Engine, engine)
  )
  for (const [i, v] of venues.entries()) yield* driver.addPeer(`v${i}`, Venue, { port: v.port })
  yield* until(() => nodes.reduce((n, x) => n + x.held.length, 0) === VENUES)
  yield* Console.log(`held: ${nodes.map((n) => `${n.id}=[${n.held.join(",")}]`).join(" ")}`)
  for (let i = 0; i < FRAMES; i++) {
    for (let p = 0; p < VENUES; p++) yield* driver.send(`v${p}`, Framing.utf8(`v${p}:${i}`))
    if (i === Math.floor(FRAMES / 3)) {
      const victim = nodes.slice().sort((a, b) => b.held.length - a.held.length)[0]!
      yield* Console.log(`kill -9 ${victim.id} (holding ${victim.held.join(",")}) after frame ${i}`)
      victim.child.kill("SIGKILL")
    }
    if (i % 50 === 0) yield* Effect.sleep("5 millis")
  }
  yield* until(() => venues.every((v) => new Set(v.got.map((s) => s.replace(/^!/, ""))).size === FRAMES))
  for (const [p, v] of venues.entries()) {
    const seen = new Set<string>()
    const firsts: Array<number> = []
    let dups = 0
    let flagged = 0
    for (const s of v.got) {
      const plain = s.replace(/^!/, "")
      if (s.startsWith("!")) flagged++
      if (seen.has(plain)) dups++
      else {
        seen.add(plain)
        firsts.push(Number(plain.split(":")[1]))
      }
    }
    const inOrder = firsts.every((x, i) => x === i)
    yield* Console.log(
      `v${p}: ${seen.size}/${FRAMES} frames, first arrivals ${inOrder ? "in order" : "OUT OF ORDER"}, ${dups} duplicates, ${flagged} flagged`
    )
  }
})

NodeRuntime.runMain(Effect.scoped(program))
