/**
 * Interop with an independent WebSocket implementation: the Python `websockets`
 * library (Debian's python3-websockets; .ci/run installs it when missing).
 * Covers text, binary, ping/pong (both directions), close codes and permessage-deflate, with our
 * server against its client and our client against its server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { WebSocket } from "effect-tether"

const script = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "helpers", "ws_interop.py")

/** The first Python on this machine that can import websockets (pyenv's python3 may not; Debian's may). */
const python = ["python3", "/usr/bin/python3", "python3.11", "python3.12"].find((exe) => {
  const r = spawnSync(exe, ["-c", "import websockets"], { stdio: "ignore" })
  return r.status === 0
})
if (python === undefined) {
  console.warn(
    "WebSocket interop tests SKIPPED: no python3 with the 'websockets' module " +
      "(install Debian's python3-websockets; .ci/run does this)"
  )
}

type Line = Record<string, unknown>

/** Runs the Python peer; `onLine` sees every JSON line; resolves on exit (bounded by the caller). */
const runPython = (args: ReadonlyArray<string>, onLine: (line: Line, stdin: NodeJS.WritableStream) => void) =>
  Effect.async<{ code: number | null; stderr: string }>((resume) => {
    const child = spawn(python!, [script, ...args], { stdio: ["pipe", "pipe", "pipe"] })
    let out = ""
    let stderr = ""
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString()
      let idx: number
      while ((idx = out.indexOf("\n")) >= 0) {
        const line = out.slice(0, idx)
        out = out.slice(idx + 1)
        if (line.trim() !== "") onLine(JSON.parse(line) as Line, child.stdin)
      }
    })
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString()
    })
    child.on("exit", (code) => resume(Effect.succeed({ code, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/**
 * The Python echo server (`mode`: "server" or "deflate-server"): its port, the JSON lines of its closed
 * connections, the first close, and `stop` (its stdin closed, its exit awaited, bounded).
 */
const pythonServer = (mode: "server" | "deflate-server") =>
  Effect.gen(function*() {
    const lines: Array<Line> = []
    let resolvePort: (port: number) => void = () => {}
    const portP = new Promise<number>((r) => (resolvePort = r))
    let resolveClosed: () => void = () => {}
    const firstClosed = new Promise<void>((r) => (resolveClosed = r))
    let stdin: NodeJS.WritableStream | undefined
    const peer = yield* Effect.fork(runPython([mode], (line, input) => {
      stdin = input
      if (typeof line.port === "number") resolvePort(line.port)
      else {
        lines.push(line)
        resolveClosed()
      }
    }))
    const port = yield* Effect.promise(() => portP).pipe(Effect.timeout("10 seconds"))
    const stop = Effect.suspend(() => {
      stdin?.end()
      return peer.await.pipe(Effect.timeout("5 seconds"))
    })
    return { port, lines, firstClosed, stop }
  })

const handler = (conn: WebSocket.Connection) =>
  Stream.runForEach(WebSocket.messages(conn), (m) =>
    m._tag === "Text" && m.text === "close-me"
      ? Effect.asVoid(WebSocket.close(conn, 4001, "bye"))
      : conn.send(m._tag === "Text" ? WebSocket.text(`echo:${m.text}`) : WebSocket.binary(m.data))).pipe(Effect.orDie)

describe.skipIf(python === undefined)("WebSocket interop (Python websockets)", () => {
  it.live("our server ↔ websockets client: text, binary, ping/pong both ways, close codes 1000/4001/1009/1007", () =>
    Effect.gen(function*() {
      const server = yield* WebSocket.serve({
        port: 0,
        maxPayload: 4096,
        heartbeat: { interval: "100 millis", timeout: "1 second" }
      }, handler)
      const results = new Map<string, Line>()
      const exit = yield* runPython(["client", `ws://127.0.0.1:${server.address.port}/`], (line) => {
        results.set(String(line.scenario), line)
      }).pipe(Effect.timeout("30 seconds"))
      expect(exit.stderr).toBe("")
      expect(exit.code).toBe(0)
      expect(results.get("done")?.ok).toBe(true)
      expect(results.get("echo")).toMatchObject({
        ok: true,
        texts_ok: true,
        binary_ok: true,
        pong_ok: true,
        burst_ok: true,
        close_code: 1000 // our Close echoes theirs
      })
      expect(results.get("server_close")).toMatchObject({
        ok: true,
        received: [],
        close_code: 4001,
        close_reason: "bye"
      })
      expect(results.get("oversized")).toMatchObject({ ok: true, close_code: 1009 })
      expect(results.get("bad_utf8")).toMatchObject({ ok: true, close_code: 1007 })
      // idle 1 s under a 100 ms heartbeat with a 1 s timeout: their automatic pongs kept the session alive
      expect(results.get("heartbeat")).toMatchObject({ ok: true, reply: "echo:still here", close_code: 1000 })
      for (const r of results.values()) expect(r.wait_closed).toBeUndefined()
      const stats = yield* server.stats
      expect(stats.accepted).toBe(5)
    }).pipe(Effect.scoped), 40_000)

  it.live("our client ↔ websockets server: text, binary, heartbeat pings answered, our close code", () =>
    Effect.gen(function*() {
      const { port, lines, firstClosed, stop } = yield* pythonServer("server")
      const closed = yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* WebSocket.connect(`ws://127.0.0.1:${port}/`, {
          handshakeTimeout: "5 seconds",
          heartbeat: { interval: "50 millis", timeout: "1 second" }
        })
        yield* conn.send(WebSocket.text("héllo"))
        yield* conn.send(WebSocket.binary(new Uint8Array([5, 6, 7])))
        const got = yield* WebSocket.messages(conn).pipe(Stream.take(2), Stream.runCollect, Effect.timeout("5 seconds"))
        expect([...got][0]).toEqual(WebSocket.Message.Text({ text: "héllo" }))
        const bin = [...got][1]!
        expect(bin._tag === "Binary" ? [...bin.data] : []).toEqual([5, 6, 7])
        // several heartbeat rounds: their pongs keep us alive
        yield* Effect.sleep("400 millis")
        expect(yield* conn.state).toBe("Active")
        const outcome = yield* WebSocket.close(conn, 4002, "client bye").pipe(Effect.timeout("5 seconds"))
        return { outcome, info: WebSocket.closeInfo(conn) }
      }))
      expect(closed.outcome.peerEof).toBe(true)
      expect(closed.outcome.lingerExpired).toBe(false)
      expect(closed.info?.sent).toEqual({ code: 4002, reason: "client bye" })
      expect(closed.info?.received?.code).toBe(4002)
      // the Python server saw our messages and our close code
      yield* Effect.promise(() => firstClosed).pipe(Effect.timeout("5 seconds"))
      expect(lines[0]).toMatchObject({ closed: true, code: 4002, reason: "client bye", received: ["héllo", [5, 6, 7]] })
      yield* stop
    }).pipe(Effect.scoped), 40_000)
  it.live("permessage-deflate both ways: our server ↔ websockets client, our client ↔ websockets server", () =>
    Effect.gen(function*() {
      // our server, deflate accepted; their client offers it
      const server = yield* WebSocket.serve({ port: 0, perMessageDeflate: true }, handler)
      const results = new Map<string, Line>()
      const exit = yield* runPython(["deflate-client", `ws://127.0.0.1:${server.address.port}/`], (line) => {
        results.set(String(line.scenario), line)
      }).pipe(Effect.timeout("30 seconds"))
      expect(exit.stderr).toBe("")
      expect(results.get("deflate")).toMatchObject({
        ok: true,
        negotiated: ["permessage-deflate"],
        texts_ok: true,
        blob_ok: true,
        noise_ok: true,
        burst_ok: true,
        close_code: 1000
      })

      // their server, deflate accepted; our client offers it
      const { port, lines, firstClosed, stop } = yield* pythonServer("deflate-server")
      const big = "compress me, ".repeat(2000)
      const blob = new Uint8Array(16 * 1024).map((_, i) => i % 7)
      yield* Effect.scoped(Effect.gen(function*() {
        const conn = yield* WebSocket.connect(`ws://127.0.0.1:${port}/`, { handshakeTimeout: "5 seconds", perMessageDeflate: true })
        yield* conn.send(WebSocket.text(big))
        yield* conn.send(WebSocket.binary(blob))
        for (let i = 0; i < 200; i++) yield* conn.send(WebSocket.text(`m-${i} ${"z".repeat(i)}`))
        const got = [...yield* WebSocket.messages(conn).pipe(Stream.take(202), Stream.runCollect, Effect.timeout("10 seconds"))]
        expect(got[0]).toEqual(WebSocket.Message.Text({ text: big }))
        const bin = got[1]!
        expect(bin._tag === "Binary" ? Buffer.from(bin.data).equals(Buffer.from(blob)) : false).toBe(true)
        expect(got.slice(2).map((m) => (m._tag === "Text" ? m.text : ""))).toEqual(
          Array.from({ length: 200 }, (_, i) => `m-${i} ${"z".repeat(i)}`)
        )
        yield* WebSocket.close(conn, 1000, "done").pipe(Effect.timeout("5 seconds"))
      }))
      yield* Effect.promise(() => firstClosed).pipe(Effect.timeout("5 seconds"))
      expect(lines[0]).toMatchObject({ closed: true, code: 1000, extensions: ["permessage-deflate"] })
      yield* stop
    }).pipe(Effect.scoped), 40_000)
})
