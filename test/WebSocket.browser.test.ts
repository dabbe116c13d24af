/**
 * A real browser against a tether WebSocket server: a page served on localhost by a node:http server
 * that also carries the WebSocket endpoint (`WebSocket.mount`, one port), opened in headless Chromium
 * (Debian's `chromium`, driven by playwright-core; .ci/run installs it). The page exchanges 1 000
 * messages, survives a server restart through its own reconnect loop (seeing Close 1001), and its
 * own close code reaches the server's `DisconnectReason`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Queue, Scope, Stream } from "effect"
import * as Fs from "node:fs"
import * as Http from "node:http"
import type * as Net from "node:net"
import { chromium } from "playwright-core"
import { type DisconnectReason, WebSocket } from "effect-tether"

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => Fs.existsSync(p))
if (CHROMIUM === undefined) {
  console.warn("WebSocket browser test SKIPPED: no Chromium at /usr/bin/chromium (install Debian's chromium; .ci/run does this)")
}

const PAGE = `<!doctype html><html><body><script>
window.state = { echoes: 0, closeCodes: [], opens: 0, afterRestart: false }
let ws
const connect = () => {
  ws = new WebSocket("ws://" + location.host + "/ws")
  ws.onopen = () => {
    window.state.opens++
    if (window.state.opens === 1) for (let i = 0; i < 1000; i++) ws.send("m-" + i)
    else ws.send("after-restart")
  }
  ws.onmessage = (e) => {
    if (e.data === "echo:after-restart") window.state.afterRestart = true
    else if (e.data === "echo:m-" + window.state.echoes) window.state.echoes++
  }
  // the browser's own reconnect loop
  ws.onclose = (e) => {
    window.state.closeCodes.push(e.code)
    if (!window.state.stop) setTimeout(connect, 100)
  }
}
window.bye = () => { window.state.stop = true; ws.close(4100, "browser bye") }
connect()
</script></body></html>`

describe.skipIf(CHROMIUM === undefined)("WebSocket in headless Chromium", () => {
  it.live("1 000 messages, a server restart survived by the page's reconnect loop, close codes both ways", () =>
    Effect.gen(function*() {
      const http = Http.createServer((_req, res) => {
        res.writeHead(200, { "Content-Type": "text/html" })
        res.end(PAGE)
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void http.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => http.close())
      )
      const port = (http.address() as Net.AddressInfo).port
      const closed = yield* Queue.unbounded<DisconnectReason.DisconnectReason>()
      const endpoint = Effect.gen(function*() {
        const scope = yield* Scope.make()
        const server = yield* WebSocket.mount(http, { path: "/ws" }, (conn) =>
          Effect.zipRight(
            Stream.runForEach(conn.incoming, (m) => conn.send(m._tag === "Text" ? WebSocket.text(`echo:${m.text}`) : m)).pipe(
              Effect.ignore
            ),
            Effect.flatMap(conn.closed, (r) => Queue.offer(closed, r))
          )).pipe(Scope.extend(scope))
        return { server, scope }
      })
      const first = yield* endpoint
      const browser = yield* Effect.acquireRelease(
        Effect.promise(() =>
          chromium.launch({
            executablePath: CHROMIUM!,
            args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
          })
        ),
        (b) => Effect.promise(() => b.close())
      )
      const page = yield* Effect.promise(() => browser.newPage())
      yield* Effect.promise(() => page.goto(`http://127.0.0.1:${port}/`))
      const wait = (fn: string) => Effect.promise(() => page.waitForFunction(fn, undefined, { timeout: 15_000 }))
      yield* wait("window.state.echoes === 1000")
      // restart: the endpoint shuts down (Close 1001), the page reconnects by itself once it is back
      yield* first.server.shutdown
      yield* Scope.close(first.scope, Exit.void)
      yield* wait("window.state.closeCodes.includes(1001)")
      const second = yield* endpoint
      yield* wait("window.state.afterRestart === true")
      const state = (yield* Effect.promise(() => page.evaluate("window.state"))) as {
        echoes: number
        opens: number
        closeCodes: Array<number>
      }
      expect(state.echoes).toBe(1000)
      expect(state.opens).toBeGreaterThanOrEqual(2)
      expect(state.closeCodes[0]).toBe(1001)
      // the page's own close code reaches the server
      const before = yield* Queue.takeAll(closed)
      expect([...before].map((r) => r._tag)).toContain("Shutdown")
      yield* Effect.promise(() => page.evaluate("window.bye()"))
      const reason = yield* Queue.take(closed).pipe(Effect.timeout("10 seconds"))
      expect(reason).toMatchObject({ _tag: "PeerClosed", code: 4100, reason: "browser bye" })
      yield* Scope.close(second.scope, Exit.void)
    }).pipe(Effect.scoped), 40_000)
})
