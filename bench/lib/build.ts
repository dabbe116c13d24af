/**
 * The bench children load tether as users get it: the package's published
 * build (`npm run build` → dist/, plain ESM JavaScript emitted by tsc), never
 * the TypeScript sources through tsx.
 *
 * Why not tsx: it transforms with esbuild's `keepNames`, which wraps every
 * function expression in `__name(fn, "…")` (an `Object.defineProperty` on each
 * closure, each time it is created). That costs CPU on every hot-path closure
 * and about 256 bytes per closure: ~12 KB per idle connection. Raw node:net,
 * ws and @effect/platform come precompiled from node_modules, so loading
 * tether through tsx would not be a fair comparison.
 *
 * dist/ sits inside the project, so its bare imports ("effect", "ws") resolve
 * to the project's node_modules, as they would in a consumer's.
 */
import * as ChildProcess from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const rootDir = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/** Runs `npm run build` (fresh dist/ from the current sources); returns the absolute path of dist/index.js. */
export const buildTether = (): string => {
  ChildProcess.execFileSync("npm", ["run", "--silent", "build"], { cwd: rootDir, stdio: "inherit" })
  return Path.join(rootDir, "dist", "index.js")
}
