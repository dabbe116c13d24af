/**
 * Compiles src/ to plain JavaScript for the bench children, the way users run
 * the library (tsc output), instead of loading it through tsx.
 *
 * Why: tsx transforms with esbuild's `keepNames`, which wraps every function
 * expression in `__name(fn, "…")` (an `Object.defineProperty` on each closure,
 * each time it is created). That costs CPU on every hot-path closure and about
 * 256 bytes per closure (a property backing store): ~12 KB per idle
 * connection. Raw node:net, ws and @effect/platform come precompiled from
 * node_modules, so loading tether through tsx would not be a fair comparison.
 *
 * The output goes to node_modules/.cache/tether-bench-<hash of the checkout path>/src (one per checkout: worktrees share node_modules) so that bare imports
 * ("effect", "ws") resolve to the project's node_modules.
 */
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const rootDir = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/** Transpiles every src/**\/*.ts file; returns the absolute path of the compiled index.js. */
export const buildTether = (): string => {
  const srcDir = Path.join(rootDir, "src")
  // one build directory per checkout: worktrees may share one node_modules (and run benches at once)
  const checkout = createHash("sha256").update(rootDir).digest("hex").slice(0, 12)
  const outDir = Path.join(rootDir, "node_modules", ".cache", `tether-bench-${checkout}`, "src")
  Fs.rmSync(outDir, { recursive: true, force: true })
  const walk = (dir: string): Array<string> =>
    Fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(Path.join(dir, e.name)) : e.name.endsWith(".ts") ? [Path.join(dir, e.name)] : []
    )
  for (const file of walk(srcDir)) {
    const out = ts.transpileModule(Fs.readFileSync(file, "utf8"), {
      fileName: file,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        isolatedModules: true,
        sourceMap: false,
        removeComments: false
      }
    })
    const target = Path.join(outDir, Path.relative(srcDir, file)).replace(/\.ts$/, ".js")
    Fs.mkdirSync(Path.dirname(target), { recursive: true })
    Fs.writeFileSync(target, out.outputText)
  }
  // the package's "type": "module" applies (nearest package.json is the project's node_modules/.cache? no: add one)
  Fs.writeFileSync(Path.join(outDir, "package.json"), JSON.stringify({ type: "module" }))
  return Path.join(outDir, "index.js")
}
