/**
 * Profiles one bench variant: runs its receiver and sender once, the sender
 * (or with --recv the receiver too) under `node --cpu-prof`, and prints the
 * functions with the most self time.
 *
 *   npx tsx bench/profile.ts <case> <variant> [--quick] [--recv] [--top 30]
 *
 * Profiles are written to bench/results/profiles/ (ignored by git: *.cpuprofile).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { cases } from "./cases.js"
import { buildTether } from "./lib/build.js"
import { runPair, setTetherEntry, spawnChild } from "./lib/child.js"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { functionName: string; url: string; lineNumber: number }
  readonly hitCount?: number
}

const summarize = (file: string, top: number) => {
  const profile = JSON.parse(Fs.readFileSync(file, "utf8")) as { nodes: Array<ProfileNode>; startTime: number; endTime: number }
  const self = new Map<string, number>()
  let total = 0
  for (const n of profile.nodes) {
    const hits = n.hitCount ?? 0
    total += hits
    const url = n.callFrame.url.replace(/^.*\/node_modules\//, "").replace(/^.*\/work\/main\//, "")
    const key = `${n.callFrame.functionName || "(anonymous)"}  ${url}:${n.callFrame.lineNumber + 1}`
    self.set(key, (self.get(key) ?? 0) + hits)
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
  process.stdout.write(`\n${Path.basename(file)}: ${total} samples\n`)
  for (const [k, v] of rows) process.stdout.write(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}\n`)
}

const main = async () => {
  const [caseId, variantId] = process.argv.slice(2)
  const quick = process.argv.includes("--quick")
  const withRecv = process.argv.includes("--recv")
  const topIdx = process.argv.indexOf("--top")
  const top = topIdx >= 0 ? Number(process.argv[topIdx + 1]) : 30
  const c = cases.find((x) => x.id === caseId)
  const v = c?.variants(quick ? "quick" : "full").find((x) => x.id === variantId)
  if (c === undefined || v === undefined) throw new Error(`usage: profile.ts <case> <variant>; cases: ${cases.map((x) => x.id).join(", ")}`)
  setTetherEntry(buildTether())
  const dir = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "results", "profiles")
  Fs.mkdirSync(dir, { recursive: true })
  const stamp = `${c.id}-${v.id}-${Date.now()}`
  // one directory per process: node writes one profile per thread (tsx's loader runs in a worker)
  const sendDir = Path.join(dir, `${stamp}-send`)
  const recvDir = Path.join(dir, `${stamp}-recv`)
  const sendArgs = ["--cpu-prof", `--cpu-prof-dir=${sendDir}`]
  let r
  if (withRecv) {
    // the receiver gets its own profile: spawn it by hand with the flag
    const recv = spawnChild("recv", v.recv, v.limitMs, ["--cpu-prof", `--cpu-prof-dir=${recvDir}`])
    const { port } = await recv.ready
    const send = spawnChild("send", { ...v.send, port }, v.limitMs, sendArgs)
    const [s, rr] = await Promise.all([send.result, recv.result])
    r = { send: s, recv: rr }
    // let both write their profiles (written at exit)
    await Promise.race([Promise.all([send.exited, recv.exited]), new Promise((res) => setTimeout(res, 10_000))])
    send.kill()
    recv.kill()
  } else {
    r = await runPair(v.recv, v.send, v.limitMs, sendArgs, 10_000)
  }
  process.stdout.write(JSON.stringify(v.metrics(r)) + "\n")
  for (const d of [sendDir, recvDir]) {
    if (!Fs.existsSync(d)) continue
    // the main thread's profile is the largest
    const files = Fs.readdirSync(d).map((f) => Path.join(d, f)).sort((a, b) => Fs.statSync(b).size - Fs.statSync(a).size)
    if (files[0] !== undefined) summarize(files[0], top)
  }
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`)
  process.exit(1)
})
