#!/usr/bin/env bash
# Consumer smoke test on the packed tarball, in a scratch project outside the repo, offline (npm cache only):
#  (a) plain Node ESM JavaScript: the README's five-line example against a small loopback echo server, graceful close;
#      every public subpath imports, ./internal/* is closed;
#  (b) a TypeScript consumer (module NodeNext, skipLibCheck false), strict and non-strict, type-checks without
#      @types/ws and runs;
#  (c) the consumer's own effect (SMOKE_EFFECT_VERSION, another 3.22.x than ours) is the only copy and no
#      "Executing an Effect versioned" warning is printed.
# Needs in the npm cache: the lockfile's packages (npm ci) and effect@$SMOKE_EFFECT_VERSION (.ci/run adds it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
effect_version=${SMOKE_EFFECT_VERSION:-3.22.3}
ts_version=$(node -p 'require(process.argv[1]).devDependencies.typescript' "$root/package.json")
types_node_version=$(node -p 'require(process.argv[1]).devDependencies["@types/node"]' "$root/package.json")
ours=$(node -p 'require(process.argv[1]).devDependencies.effect' "$root/package.json")
[ "$ours" != "$effect_version" ] || { echo "smoke: SMOKE_EFFECT_VERSION must differ from our effect ($ours)"; exit 1; }
# --prime (online, .ci/run calls it before the offline run): npm ci caches tarballs but not the registry metadata an
# install resolves names with, so add the few packages the consumer installs (their lockfile versions and the
# lockfile's versions of their dependencies) and the consumer's effect to the npm cache, explicitly.
if [ "${1:-}" = --prime ]; then
  specs=$(node -e '
    const lock = require(process.argv[1]).packages, seen = new Set()
    const visit = (name) => {
      const p = lock["node_modules/" + name]
      if (!p || seen.has(name)) return
      seen.add(name)
      for (const d of Object.keys({ ...p.dependencies, ...p.peerDependencies })) visit(d)
    }
    for (const n of ["ws", "effect", "typescript", "@types/node"]) visit(n)
    console.log([...seen].map((n) => n + "@" + lock["node_modules/" + n].version).join(" "))
  ' "$root/package-lock.json")
  echo "smoke: caching $specs effect@$effect_version"
  npm cache add $specs "effect@$effect_version" >/dev/null
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

cd "$root"
tarball="$work/$(npm pack --silent --pack-destination "$work" 2>/dev/null | tail -1)"   # prepack runs npm run build
echo   # prepack runs npm run build
files=$(tar tzf "$tarball")
echo "smoke: $(basename "$tarball"): $(stat -c %s "$tarball") bytes, $(echo "$files" | wc -l) files"
if echo "$files" | grep -E '^package/(src|test|bench|examples|scripts|docs)/'; then fail "tarball ships sources/tests"; fi
for f in package/dist/index.js package/dist/index.d.ts package/dist/index.js.map package/README.md package/LICENSE package/CHANGELOG.md; do
  echo "$files" | grep -qx "$f" || fail "tarball lacks $f"
done

# every public module (src/*.ts but index) has its export entry (the test kit also as ./testing)
for f in "$root"/src/*.ts; do
  m=$(basename "$f" .ts); [ "$m" != index ] || continue
  key="./$m"
  node -e 'process.exit(require(process.argv[1]).exports[process.argv[2]] ? 0 : 1)' "$root/package.json" "$key" \
    || fail "src/$m.ts has no \"$key\" entry in package.json exports"
done

app="$work/app"
mkdir "$app" && cd "$app"
echo '{ "name": "consumer", "version": "1.0.0", "private": true, "type": "module" }' > package.json
npm install --offline --no-audit --no-fund --loglevel=error \
  "$tarball" "effect@$effect_version" "typescript@$ts_version" "@types/node@$types_node_version" >/dev/null \
  || fail "offline install (is effect@$effect_version in the npm cache? npm cache add effect@$effect_version)"
echo "smoke: node_modules of a fresh project with effect-tether + effect: $(du -sk node_modules/effect-tether node_modules/effect | awk '{s+=$1} END {print s}') KiB (effect-tether $(du -sk node_modules/effect-tether | cut -f1) KiB, effect $(du -sk node_modules/effect | cut -f1) KiB)"
[ ! -e node_modules/ws ] || fail "ws got installed (tether has no runtime dependency)"
[ ! -e node_modules/@types/ws ] || fail "@types/ws got installed"
[ ! -e node_modules/@effect/platform ] || fail "@effect/platform got installed"

# (c) one effect, the consumer's
copies=$(find node_modules -path '*/effect/package.json' -not -path '*/effect/*/package.json' | wc -l)
[ "$copies" = 1 ] || fail "$copies copies of effect: $(find node_modules -path '*/effect/package.json' -not -path '*/effect/*/package.json')"
[ "$(node -p 'require("effect/package.json").version')" = "$effect_version" ] || fail "effect is not the consumer's $effect_version"

# a small loopback echo server (plain node:net, allowHalfOpen: echoes frames, answers our FIN with its own)
cat > server.mjs <<'JS'
import * as Net from "node:net"
export const startEcho = () => new Promise((resolve) => {
  const server = Net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket))
  server.listen(0, "127.0.0.1", () => resolve(server))
})
JS

# (a) plain JavaScript, the README's example
cat > main.mjs <<'JS'
import { Effect, Stream, Option } from "effect"
import { Connection, Framing } from "effect-tether"
import { startEcho } from "./server.mjs"

const server = await startEcho()
const port = server.address().port
const program = Effect.scoped(
  Effect.gen(function*() {
    const conn = yield* Connection.connectTcp({ host: "127.0.0.1", port })
    yield* conn.send(Framing.utf8("hello"))
    const reply = yield* Stream.runHead(conn.incoming)
    const outcome = yield* conn.close("bye")
    return { reply: new TextDecoder().decode(Option.getOrThrow(reply)), delivered: outcome.delivered, undelivered: outcome.undelivered.length, reason: yield* conn.closed }
  })
)
const r = await Effect.runPromise(program.pipe(Effect.timeout("10 seconds")))
server.close()
console.log(JSON.stringify({ reply: r.reply, delivered: r.delivered, undelivered: r.undelivered, reason: r.reason._tag }))
if (r.reply !== "hello" || r.delivered !== 1 || r.undelivered !== 0) process.exit(1)
JS
run_checked() { # runs node on a file; fails on a non-zero exit or Effect's version-mismatch warning
  local out
  out=$(node "$@" 2>&1) || { echo "$out"; fail "node $*"; }
  if echo "$out" | grep -q "Executing an Effect versioned"; then echo "$out"; fail "duplicate effect runtime"; fi
  echo "$out"
}
echo "smoke: (a) JS: $(run_checked main.mjs)"

# every public subpath imports; internals are closed
cat > subpaths.mjs <<'JS'
import * as Fs from "node:fs"
const pkg = JSON.parse(Fs.readFileSync("node_modules/effect-tether/package.json", "utf8"))
const open = Object.entries(pkg.exports).filter(([k, v]) => v !== null && k !== "./package.json").map(([k]) => k)
if (!open.includes("./testing")) throw new Error("the test kit's ./testing entry is missing")
// subpaths built on optional peer dependencies, which this consumer does not install: importing them must fail
// naming the missing peer, and nothing else must need it
const optional = {
  "./PlatformSocket": "@effect/platform",
  "./PlatformSocketServer": "@effect/platform",
  "./RpcProtocol": "@effect/",
  "./NatsEngine": "@nats-io/"
}
for (const k of open) {
  const spec = k === "." ? "effect-tether" : `effect-tether/${k.slice(2)}`
  if (k in optional) {
    try { await import(spec); throw new Error(`${spec} imported without its peers`) } catch (e) {
      if (e.code !== "ERR_MODULE_NOT_FOUND" || !String(e.message).includes(optional[k])) throw e
    }
    continue
  }
  const m = await import(spec)
  if (Object.keys(m).length === 0) throw new Error(`${spec}: no exports`)
}
try { await import("effect-tether/internal/connection"); throw new Error("internal is open") } catch (e) {
  if (e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e
}
console.log(`${open.length} subpaths import; ./internal/* closed`)
JS
echo "smoke: (a) exports: $(run_checked subpaths.mjs)"

# (b) TypeScript consumer
cat > main.ts <<'TS'
import { Effect, Option, Stream } from "effect"
import { Connection, DisconnectReason, Framing, WebSocket } from "effect-tether"
import type * as Listener from "effect-tether/Listener"
import * as Net from "node:net"

const startEcho = (): Promise<Net.Server> => new Promise((resolve) => {
  const server = Net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket))
  server.listen(0, "127.0.0.1", () => resolve(server))
})
const closeCode = (info: WebSocket.CloseInfo): number | undefined => info.sent?.code
type Handler = Listener.Options extends object ? true : false
const ok: Handler = true

const server = await startEcho()
const { port } = server.address() as Net.AddressInfo
const program = Effect.scoped(
  Effect.gen(function*() {
    const conn: Connection.Connection = yield* Connection.connectTcp({ host: "127.0.0.1", port })
    yield* conn.send(Framing.utf8("hello"))
    const reply = yield* Stream.runHead(conn.incoming)
    const outcome = yield* conn.close("bye")
    const reason = yield* conn.closed
    return { reply: new TextDecoder().decode(Option.getOrThrow(reply)), outcome, clean: DisconnectReason.isClean(reason) }
  })
)
const r = await Effect.runPromise(program)
server.close()
console.log(JSON.stringify({ reply: r.reply, delivered: r.outcome.delivered, clean: r.clean, ok, closeCode: typeof closeCode }))
if (r.reply !== "hello" || r.outcome.delivered !== 1 || r.outcome.undelivered.length !== 0) process.exit(1)
TS
for strict in true false; do
  cat > tsconfig.json <<JSON
{ "compilerOptions": { "target": "ES2022", "lib": ["ES2022"], "module": "NodeNext", "moduleResolution": "NodeNext",
  "strict": $strict, "skipLibCheck": false, "types": ["node"], "outDir": "out-$strict" }, "files": ["main.ts"] }
JSON
  npx tsc -p tsconfig.json --listFiles > files.txt || { cat files.txt; fail "tsc (strict: $strict)"; }
  if grep -E '/node_modules/(ws|@types/ws)/' files.txt; then fail "the public .d.ts reach ws"; fi
  echo "smoke: (b) TS strict=$strict ($(grep -c 'effect-tether/dist' files.txt) effect-tether .d.ts checked): $(run_checked "out-$strict/main.js")"
done
echo "smoke: (c) one effect@$effect_version in the consumer (ours: $ours), no version warning"
echo "smoke: OK"
