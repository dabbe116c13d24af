/**
 * The module layout, the way effect lays out its own: a public module `src/X.ts` documents and re-exports, its
 * implementation lives in `src/internal/`, and an internal module imports only types from the public modules that
 * import it. A value import back into a public module that value-imports the internal one is an import cycle: the
 * module that is evaluated second sees the other half-initialised, and the public module ends up passing its own
 * Tags into the internals. This test reads the import declarations of `src/` and fails listing every cycle.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"

const srcDir = Path.resolve(import.meta.dirname, "../src")

const sourceFiles = (dir: string): Array<string> =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = Path.join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(full)
    return entry.name.endsWith(".ts") ? [full] : []
  })

/** a module's name relative to src/, without the extension: "Dialer", "internal/dialer" */
const moduleName = (file: string): string => Path.relative(srcDir, file).replace(/\\/g, "/").replace(/\.ts$/, "")

const isInternal = (module: string): boolean => module.startsWith("internal/")

/**
 * The relative modules a file imports or re-exports as values. `import type`, `export type` and imports whose
 * every name is marked `type` carry no value and are left out; a JSDoc `@example` block is not code (its lines start
 * with `*`), and the `^` anchor keeps those out.
 */
const valueImports = (file: string): Array<string> => {
  const text = Fs.readFileSync(file, "utf8")
  const declaration = /^(import|export)\s+([^;"']*?)\s*from\s*["'](\.{1,2}\/[^"']+)["']/gm
  const bare = /^import\s*["'](\.{1,2}\/[^"']+)["']/gm
  const out = new Set<string>()
  const resolve = (spec: string) =>
    moduleName(Path.resolve(Path.dirname(file), spec.replace(/\.js$/, ".ts")))
  for (const match of text.matchAll(declaration)) {
    const clause = match[2]!.trim()
    if (/^type\b/.test(clause)) continue
    const braces = /^\{([^}]*)\}$/.exec(clause)
    if (braces) {
      const names = braces[1]!.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
      if (names.length > 0 && names.every((name) => /^type\b/.test(name))) continue
    }
    out.add(resolve(match[3]!))
  }
  for (const match of text.matchAll(bare)) out.add(resolve(match[1]!))
  return [...out]
}

type Edge = readonly [from: string, to: string]
const key = ([from, to]: Edge) => `${from} -> ${to}`

const graph = (): Map<string, Array<string>> =>
  new Map(sourceFiles(srcDir).map((file) => [moduleName(file), valueImports(file)]))

/** the edges that lie on a cycle: `from -> to` where `to` reaches `from` again */
const cycleEdges = (edges: ReadonlyMap<string, ReadonlyArray<string>>): Array<Edge> => {
  const reaches = (start: string, target: string): boolean => {
    const seen = new Set<string>()
    const stack = [start]
    while (stack.length > 0) {
      const next = stack.pop()!
      if (next === target) return true
      if (seen.has(next)) continue
      seen.add(next)
      stack.push(...(edges.get(next) ?? []))
    }
    return false
  }
  const out: Array<Edge> = []
  for (const [from, tos] of edges) {
    for (const to of tos) if (reaches(to, from)) out.push([from, to])
  }
  return out.sort((a, b) => key(a).localeCompare(key(b)))
}

/**
 * Back edges (an internal module value-importing a public one) tolerated while a cycle is being removed: none left
 * since core v2. An entry must still close a cycle (the second test says so), so the list cannot go stale.
 */
const allowed: ReadonlyArray<Edge> = []

describe("Layout", () => {
  it("reads the imports of src/ (the check is not vacuous)", () => {
    const edges = graph()
    expect(edges.get("Dialer")).toContain("internal/dialer")
    expect(edges.get("internal/connection")).toContain("Transport")
    // a made-up pair closes a cycle and is reported, in both directions
    const withCycle = new Map(edges)
    withCycle.set("internal/dialer", [...(edges.get("internal/dialer") ?? []), "Dialer"])
    expect(cycleEdges(withCycle).map(key)).toEqual(
      expect.arrayContaining(["Dialer -> internal/dialer", "internal/dialer -> Dialer"])
    )
  })

  it("no value-import cycle in src/ beyond the allow-listed core, which is still there to remove", () => {
    const edges = graph()
    const allowedKeys = new Set(allowed.map(key))
    // with the allow-listed back edges removed, the value-import graph has no cycle
    const pruned = new Map(
      [...edges].map(([from, tos]) => [from, tos.filter((to) => !allowedKeys.has(key([from, to])))])
    )
    const offending = cycleEdges(pruned)
      .filter(([from, to]) => isInternal(from) && !isInternal(to))
      .map(key)
    const remaining = cycleEdges(pruned).map(key)
    expect({ offending, cycles: remaining }).toEqual({ offending: [], cycles: [] })
    // every allow-listed edge still closes a cycle (else it is stale and goes)
    const live = new Set(cycleEdges(edges).map(key))
    expect(allowed.map(key).filter((edge) => !live.has(edge))).toEqual([])
  })

  it("every Tag, Reference and TypeId key follows one scheme: tether/<public module>[/<name>]", () => {
    const publicModules = new Set([...graph().keys()].filter((m) => !isInternal(m)))
    const keyed = /(Context\.Tag|GenericTag<[^>]*>|Reference<[^>]*>\(\)|Symbol\.for)\(\s*"([^"]+)"/g
    const keys = sourceFiles(srcDir).flatMap((file) =>
      [...Fs.readFileSync(file, "utf8").matchAll(keyed)].map((m) => ({
        kind: m[1] === "Symbol.for" ? "TypeId" : "Tag",
        module: moduleName(file),
        key: m[2]!
      }))
    )
    // the check reads them: the Connection tag, a Reference, a TypeId
    expect(keys.map((k) => k.key)).toEqual(
      expect.arrayContaining(["tether/Connection", "tether/Watchdog/TcpProbe", "tether/Dialer"])
    )
    const off = keys.filter(({ key }) => {
      const [scope, module, ...rest] = key.split("/")
      return scope !== "tether" || !publicModules.has(module ?? "") || !rest.every((name) => /^[A-Z]\w*$/.test(name))
    })
    expect(off).toEqual([])
    // a key names one Tag and one TypeId at most (a model's TypeId may share its Tag's key, as in @effect/platform)
    const seen = new Set<string>()
    const duplicates = keys.filter(({ key, kind }) => {
      const first = seen.has(`${kind} ${key}`)
      seen.add(`${kind} ${key}`)
      return first
    })
    expect(duplicates).toEqual([])
  })

  it("public modules declare no classes: errors, Tags and models live in internal/ and are re-exported", () => {
    // core v2 (lead) removed the Connection, Transport and StopGate ones; Framing still holds its whole
    // implementation (no internal/ module yet) and moves with it
    const pending = new Set([
      "Framing: FrameError",
      "Framing: ChunkAccumulator"
    ])
    const declared = sourceFiles(srcDir).filter((file) => !isInternal(moduleName(file))).flatMap((file) =>
      [...Fs.readFileSync(file, "utf8").matchAll(/^(?:export\s+)?class\s+(\w+)/gm)].map((m) =>
        `${moduleName(file)}: ${m[1]}`
      )
    )
    expect(declared).toContain("Framing: FrameError") // the check reads them
    expect(declared.filter((c) => !pending.has(c))).toEqual([])
    // and the pending list holds only classes still there
    expect([...pending].filter((c) => !declared.includes(c))).toEqual([])
  })
})
