/**
 * Micro-harness: N in-memory sessions in one Listener core, then shutdown.
 * Reports wall time, CPU time per session and the shutdown report.
 *
 *   npx tsx bench/closeMicro.ts <N> [--stubborn]
 *   PROF=/tmp/shutdown.cpuprofile npx tsx bench/closeMicro.ts 4000   (a CPU profile of the shutdown alone)
 *   HANDLER=closed npx tsx bench/closeMicro.ts 4000   (the handler awaits `conn.closed` instead of draining `incoming`)
 */
import * as Fs from "node:fs"
import * as Inspector from "node:inspector/promises"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import type * as CoreModule from "../src/internal/listenerCore.js"
import type * as MemoryModule from "../src/internal/memoryTransport.js"
import { buildTether } from "./lib/build.js"

// the compiled library, as the bench children load it (tsx adds a `__name` call per closure)
const entry = buildTether()
const load = <A>(rel: string): Promise<A> => import(pathToFileURL(Path.join(Path.dirname(entry), rel)).href) as Promise<A>
const { makeCore } = await load<typeof CoreModule>("internal/listenerCore.js")
const { memoryPair } = await load<typeof MemoryModule>("internal/memoryTransport.js")

const n = Number(process.argv[2] ?? 1000)
const stubborn = process.argv.includes("--stubborn")

const program = Effect.scoped(Effect.gen(function*() {
  const core = yield* makeCore(
    {
      sessionGrace: "10 millis",
      shutdownTimeout: stubborn ? "3 seconds" : "10 seconds",
      connection: { lingerTimeout: stubborn ? "60 seconds" : "200 millis" },
      stopAccepting: () => {}
    },
    (conn) => (process.env.HANDLER === "closed" ? conn.closed : Stream.runDrain(conn.incoming))
  )
  const server = core.server({ host: "mem", port: 0 })
  for (let i = 0; i < n; i++) {
    const [near, far] = yield* memoryPair()
    if (stubborn) far.setIgnoreFin(true)
    core.unsafeAccept({
      remoteAddress: "mem",
      refuse: () => {},
      open: Effect.succeed(Option.some(near)),
      cleanup: () => {}
    })
  }
  while ((yield* server.sessions).length < n) yield* Effect.sleep("10 millis")
  // PROF=<file>: a CPU profile of the shutdown alone
  const prof = process.env.PROF
  const session = prof === undefined ? undefined : new Inspector.Session()
  if (session !== undefined) {
    session.connect()
    yield* Effect.promise(() => session.post("Profiler.enable"))
    yield* Effect.promise(() => session.post("Profiler.start"))
  }
  const heap0 = process.memoryUsage().heapUsed
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const report = yield* server.shutdown
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const cpuMs = (cpu.user + cpu.system) / 1000
  if (session !== undefined) {
    const { profile } = yield* Effect.promise(() => session.post("Profiler.stop"))
    Fs.writeFileSync(prof!, JSON.stringify(profile))
  }
  console.log(JSON.stringify({
    n,
    stubborn,
    wallMs: Math.round(ms),
    cpuMs: Math.round(cpuMs),
    cpuPerSessionUs: Math.round((cpuMs * 1000) / n),
    heapBeforeMB: Math.round(heap0 / 1e6),
    report
  }))
}))

Effect.runPromise(program as Effect.Effect<void>).then(() => process.exit(0), (e) => {
  console.error(e)
  process.exit(1)
})
