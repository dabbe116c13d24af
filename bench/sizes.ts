/**
 * `npm run bench:sizes` (or `npx tsx bench/sizes.ts`) — a markdown table of
 * the sizes of the connection core's files:
 *
 * - every file under src/internal/ whose name starts with `connection`
 *   (connection.ts, connectionOutbox.ts, …),
 * - every file under src/internal/connection/ (recursively), if that
 *   directory exists,
 * - src/Connection.ts, src/Framed.ts and src/Transport.ts, where present.
 *
 * Per file: lines, code lines (neither blank nor only comment), and the
 * longest function or closure (function declarations and expressions, arrow
 * functions, methods, accessors, constructors; its span in lines, nested
 * functions included, with its name and first line). Parsed with the
 * TypeScript compiler, so comment markers inside strings, templates or
 * regular expressions are not mistaken for comments.
 *
 *   npx tsx bench/sizes.ts                     this tree
 *   npx tsx bench/sizes.ts --root ../main      another checkout (before/after)
 *   npx tsx bench/sizes.ts --also src/internal/netTransport.ts,src/internal/inbound.ts
 *                                              more files (relative to the root)
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const argv = process.argv.slice(2)
const option = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}
const root = Path.resolve(option("root") ?? Path.join(Path.dirname(fileURLToPath(import.meta.url)), ".."))
const also = (option("also") ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0)

const isSource = (name: string) => /\.(ts|tsx|mts|cts)$/.test(name) && !name.endsWith(".d.ts")

const walk = (dir: string): Array<string> =>
  Fs.readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => {
      const p = Path.join(dir, e.name)
      return e.isDirectory() ? walk(p) : e.isFile() && isSource(e.name) ? [p] : []
    })

/** The core's files, relative to `root`, in a stable order (public modules last). */
export const coreFiles = (root: string, extra: ReadonlyArray<string> = []): Array<string> => {
  const internal = Path.join(root, "src", "internal")
  const files = new Set<string>()
  if (Fs.existsSync(internal)) {
    for (const e of Fs.readdirSync(internal, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = Path.join(internal, e.name)
      if (e.isFile() && e.name.startsWith("connection") && isSource(e.name)) files.add(p)
      // src/internal/connection/ and any other src/internal/connection*/ directory
      if (e.isDirectory() && e.name.startsWith("connection")) for (const f of walk(p)) files.add(f)
    }
  }
  for (const name of ["Connection.ts", "Framed.ts", "Transport.ts"]) {
    const p = Path.join(root, "src", name)
    if (Fs.existsSync(p)) files.add(p)
  }
  for (const rel of extra) {
    const p = Path.resolve(root, rel)
    if (!Fs.existsSync(p)) throw new Error(`--also: ${rel} does not exist under ${root}`)
    if (Fs.statSync(p).isDirectory()) for (const f of walk(p)) files.add(f)
    else files.add(p)
  }
  return [...files].map((p) => Path.relative(root, p))
}

export interface FileSize {
  readonly file: string
  readonly lines: number
  readonly code: number
  readonly functions: number
  /** The longest function-like node (lines it spans), if any. */
  readonly longest: { readonly lines: number; readonly name: string; readonly line: number } | undefined
}

const isJsDoc = (node: ts.Node) => node.kind >= ts.SyntaxKind.FirstJSDocNode && node.kind <= ts.SyntaxKind.LastJSDocNode

/** A readable name for a function-like node: its own, or what it is assigned to / passed to. */
const functionName = (node: ts.FunctionLikeDeclaration, sf: ts.SourceFile): string => {
  if (node.name !== undefined) return node.name.getText(sf)
  if (ts.isConstructorDeclaration(node)) return "constructor"
  const parent = node.parent
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) {
    return parent.name.getText(sf)
  }
  if (ts.isCallExpression(parent)) {
    const callee = parent.expression.getText(sf)
    return `${callee.length > 40 ? callee.slice(0, 37) + "…" : callee}(…)`
  }
  return "(anonymous)"
}

export const measure = (root: string, file: string): FileSize => {
  const text = Fs.readFileSync(Path.join(root, file), "utf8")
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const lineOf = (pos: number) => sf.getLineAndCharacterOfPosition(pos).line
  const lineStarts = sf.getLineStarts()
  // a trailing newline does not start another line
  const lines = text.length === 0 ? 0 : text.endsWith("\n") ? lineStarts.length - 1 : lineStarts.length
  const codeLines = new Set<number>()
  let functions = 0
  let longest: FileSize["longest"]
  const visit = (node: ts.Node): void => {
    if (isJsDoc(node)) return
    if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
      const fn = node as ts.FunctionLikeDeclaration
      functions++
      const start = lineOf(fn.getStart(sf))
      const span = lineOf(fn.getEnd()) - start + 1
      if (longest === undefined || span > longest.lines) longest = { lines: span, name: functionName(fn, sf), line: start + 1 }
    }
    const children = node.getChildren(sf)
    if (children.length === 0) {
      // a token: every line it covers holds code (multi-line strings and templates included)
      if (node.kind === ts.SyntaxKind.EndOfFileToken) return
      const first = lineOf(node.getStart(sf))
      const last = lineOf(Math.max(node.getStart(sf), node.getEnd() - 1))
      for (let l = first; l <= last; l++) codeLines.add(l)
      return
    }
    for (const c of children) visit(c)
  }
  visit(sf)
  return { file, lines, code: codeLines.size, functions, longest }
}

export const renderTable = (sizes: ReadonlyArray<FileSize>): string => {
  const out: Array<string> = []
  out.push("| file | lines | code lines | functions | longest function (lines, name:line) |")
  out.push("|---|---:|---:|---:|---|")
  for (const s of sizes) {
    const longest = s.longest === undefined ? "—" : `${s.longest.lines} (\`${s.longest.name}\`:${s.longest.line})`
    out.push(`| ${s.file} | ${s.lines} | ${s.code} | ${s.functions} | ${longest} |`)
  }
  const total = (k: "lines" | "code" | "functions") => sizes.reduce((a, s) => a + s[k], 0)
  const max = sizes.reduce<FileSize | undefined>(
    (m, s) => (s.longest !== undefined && (m?.longest === undefined || s.longest.lines > m.longest.lines) ? s : m),
    undefined
  )
  const maxCell = max?.longest === undefined ? "—" : `${max.longest.lines} (${Path.basename(max.file)} \`${max.longest.name}\`)`
  out.push(`| **total (${sizes.length} files)** | **${total("lines")}** | **${total("code")}** | **${total("functions")}** | max ${maxCell} |`)
  return out.join("\n") + "\n"
}

const main = () => {
  const files = coreFiles(root, also)
  if (files.length === 0) throw new Error(`no connection-core files under ${root}/src`)
  const sizes = files.map((f) => measure(root, f))
  process.stdout.write(`Connection core file sizes (${Path.basename(root)}, code lines = neither blank nor comment-only):\n\n`)
  process.stdout.write(renderTable(sizes))
}

if (process.argv[1] !== undefined && Path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main()
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(1)
  }
}
