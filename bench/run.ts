/**
 * `npm run bench` — tether side by side with raw node:net, ws and
 * @effect/platform, in one run, on loopback, sender and receiver in separate
 * processes. Every figure that matters is a ratio against a baseline measured
 * in the same run (paired per repetition: variants run interleaved).
 *
 *   npm run bench                      full run (≥ 3 repetitions, ~5–10 min)
 *   npm run bench -- --quick           fast pass: 1 repetition, short runs
 *   npm run bench -- --only small,rtt  only these cases
 *   npm run bench -- --reps 5          repetitions
 *   npm run bench -- --out dir         where to write (default bench/results)
 *
 * Writes bench/results/latest.json, latest.md and ratios.svg.
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { cases, type Case, type Size } from "./cases.js"
import { buildTether } from "./lib/build.js"
import { type Message, runPair, setTetherEntry } from "./lib/child.js"
import { fmt, median, summarize, type Summary } from "./lib/stats.js"
import { renderMarkdown, renderSvg } from "./lib/report.js"

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const option = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}
const quick = flag("quick")
const size: Size = quick ? "quick" : "full"
const reps = Number(option("reps") ?? (quick ? 1 : 3))
const only = option("only")?.split(",").map((s) => s.trim())
const outDir = Path.resolve(
  option("out") ?? Path.join(Path.dirname(fileURLToPath(import.meta.url)), "results")
)

const log = (s: string) => process.stderr.write(s + "\n")

export interface VariantResult {
  readonly id: string
  readonly label: string
  readonly metrics: Record<string, Summary & { unit: string }>
  readonly failures: ReadonlyArray<string>
}
export interface RatioResult {
  readonly label: string
  readonly median: number
  readonly min: number
  readonly max: number
  readonly runs: ReadonlyArray<number>
  readonly target: string
  readonly met: boolean | null
  readonly better: "higher" | "lower"
  readonly note?: string | undefined
}
export interface CaseResult {
  readonly id: string
  readonly title: string
  readonly notes: ReadonlyArray<string>
  readonly skipped?: string | undefined
  readonly variants: ReadonlyArray<VariantResult>
  readonly ratios: ReadonlyArray<RatioResult>
}

const runCase = async (c: Case): Promise<CaseResult> => {
  const unavailable = c.unavailable?.()
  if (unavailable !== undefined) {
    log(`\n== ${c.id}: not measured (${unavailable})`)
    return { id: c.id, title: c.title, notes: c.notes, skipped: unavailable, variants: [], ratios: [] }
  }
  const variants = c.variants(size)
  log(`\n== ${c.id}: ${c.title}`)
  // per repetition, per variant: metrics (or undefined on failure)
  const perRep: Array<Map<string, Record<string, number>>> = []
  const failures = new Map<string, Array<string>>()
  for (let rep = 0; rep < reps; rep++) {
    const got = new Map<string, Record<string, number>>()
    for (const v of variants) {
      const t0 = Date.now()
      try {
        const r = await runPair(v.recv, v.send, v.limitMs, v.senderNodeArgs)
        const m = v.metrics(r)
        got.set(v.id, m)
        log(
          `  [${rep + 1}/${reps}] ${v.id.padEnd(22)} ${
            Object.entries(m).map(([k, x]) => `${k}=${fmt(x, c.units[k] ?? "")}`).join("  ")
          }  (${((Date.now() - t0) / 1000).toFixed(1)} s)`
        )
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e)
        log(`  [${rep + 1}/${reps}] ${v.id.padEnd(22)} FAILED: ${msg.split("\n").slice(0, 6).join(" | ")}`)
        failures.set(v.id, [...(failures.get(v.id) ?? []), msg.slice(0, 2000)])
      }
    }
    perRep.push(got)
  }
  const variantResults: Array<VariantResult> = variants.map((v) => {
    const keys = new Set<string>()
    for (const rep of perRep) for (const k of Object.keys(rep.get(v.id) ?? {})) keys.add(k)
    const metrics: Record<string, Summary & { unit: string }> = {}
    for (const k of keys) {
      const runs = perRep.map((rep) => rep.get(v.id)?.[k]).filter((x): x is number => x !== undefined)
      metrics[k] = { ...summarize(runs), unit: c.units[k] ?? "" }
    }
    return { id: v.id, label: v.label, metrics, failures: failures.get(v.id) ?? [] }
  })
  const ratios: Array<RatioResult> = c.ratios.map((r) => {
    const runs: Array<number> = []
    for (const rep of perRep) {
      const a = rep.get(r.num[0])?.[r.num[1]]
      const b = typeof r.den === "number" ? r.den : rep.get(r.den[0])?.[r.den[1]]
      if (a !== undefined && b !== undefined && b !== 0) runs.push(a / b)
    }
    const m = median(runs)
    const met = r.target === undefined || runs.length === 0
      ? null
      : r.better === "higher"
      ? m >= r.target
      : m <= r.target
    return {
      label: r.label,
      median: m,
      min: runs.length ? Math.min(...runs) : NaN,
      max: runs.length ? Math.max(...runs) : NaN,
      runs,
      target: r.target === undefined ? "—" : `${r.better === "higher" ? "≥" : "≤"} ${r.target}×`,
      met,
      better: r.better,
      note: r.note
    }
  })
  for (const r of ratios) {
    log(
      `  ratio ${r.label}: ${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)}) target ${r.target} ${
        r.met === null ? "" : r.met ? "met" : "MISSED"
      }`
    )
  }
  return { id: c.id, title: c.title, notes: c.notes, variants: variantResults, ratios }
}

const main = async () => {
  const selected = cases.filter((c) => only === undefined || only.includes(c.id))
  if (selected.length === 0) throw new Error(`no case matches --only ${only?.join(",")}; cases: ${cases.map((c) => c.id).join(", ")}`)
  // tether runs as compiled JavaScript, like the precompiled baselines (see lib/build.ts)
  setTetherEntry(buildTether())
  const startedAt = new Date()
  log(`tether bench: ${size}, ${reps} repetition(s), cases: ${selected.map((c) => c.id).join(", ")}`)
  const results: Array<CaseResult> = []
  for (const c of selected) results.push(await runCase(c))
  const cpus = Os.cpus()
  const report = {
    date: startedAt.toISOString(),
    durationSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    mode: size,
    repetitions: reps,
    machine: {
      cpu: cpus[0]?.model ?? "unknown",
      cores: cpus.length,
      memoryGiB: Math.round(Os.totalmem() / 2 ** 30),
      os: `${Os.type()} ${Os.release()}`,
      node: process.version,
      loadAvgAtStart: Os.loadavg()
    },
    versions: versions(),
    cases: results
  }
  Fs.mkdirSync(outDir, { recursive: true })
  Fs.writeFileSync(Path.join(outDir, "latest.json"), JSON.stringify(report, null, 2) + "\n")
  Fs.writeFileSync(Path.join(outDir, "latest.md"), renderMarkdown(report))
  Fs.writeFileSync(Path.join(outDir, "ratios.svg"), renderSvg(report))
  log(`\nwrote ${Path.join(outDir, "latest.json")}, latest.md, ratios.svg (${report.durationSeconds} s)`)
  process.stdout.write(renderMarkdown(report))
  const failed = results.flatMap((c) => c.variants.filter((v) => v.failures.length > 0).map((v) => `${c.id}/${v.id}`))
  if (failed.length > 0) {
    log(`\nfailed runs: ${failed.join(", ")}`)
    process.exitCode = 1
  }
}

const versions = (): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const pkg of ["effect", "@effect/platform", "@effect/platform-node", "ws"]) {
    try {
      const p = JSON.parse(Fs.readFileSync(Path.join("node_modules", pkg, "package.json"), "utf8")) as { version: string }
      out[pkg] = p.version
    } catch {
      out[pkg] = "?"
    }
  }
  return out
}

export type Report = {
  readonly date: string
  readonly durationSeconds: number
  readonly mode: Size
  readonly repetitions: number
  readonly machine: { cpu: string; cores: number; memoryGiB: number; os: string; node: string; loadAvgAtStart: Array<number> }
  readonly versions: Record<string, string>
  readonly cases: ReadonlyArray<CaseResult>
}

export type { Message }

main().catch((e) => {
  log(e instanceof Error ? e.stack ?? e.message : String(e))
  process.exit(1)
})
