/**
 * examples/stream-server end to end: one seat; a client that stops reading is
 * reaped by the send-stall watchdog, the seat frees, the next client is
 * streamed to in order, and GET /sessions (an @effect/platform HTTP server)
 * shows each step.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { WebSocket } from "effect-tether"
import { client } from "../examples/stream-server/client.js"
import { server, type SessionsView } from "../examples/stream-server/server.js"
import { connectRaw } from "./helpers/wsRaw.js"

const getSessions = (port: number) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}/sessions`).then(async (r) => ({ status: r.status, body: (await r.json()) as SessionsView }))
  )

describe("examples/stream-server", () => {
  it.live("a non-reading client is reaped (SendStalled), the seat frees, a new client is served; GET /sessions follows", () =>
    Effect.scoped(Effect.gen(function*() {
      const srv = yield* server({
        port: 0,
        httpPort: 0,
        // long enough that the dead client surely still holds the seat when the second client knocks
        stallTimeout: "800 millis",
        probeInterval: "100 millis",
        heartbeat: { interval: "30 seconds" } // the stall watchdog is the one under test
      })
      const wsPort = srv.ws.address.port
      const waitSessions = (n: number) =>
        Stream.runHead(Stream.filter(srv.ws.sessionChanges, (rows) => rows.length === n)).pipe(Effect.timeout("5 seconds"))

      // 1. a client that upgrades, then never reads again
      const { ws: dead } = yield* Effect.promise(() => connectRaw(wsPort))
      dead!.socket.pause()
      yield* Effect.addFinalizer(() => Effect.sync(() => dead!.socket.destroy()))
      yield* waitSessions(1)

      // 2. the seat is taken: a second client is turned away
      const refused = yield* Effect.scoped(WebSocket.connect(`ws://127.0.0.1:${wsPort}/`, { handshakeTimeout: "2 seconds" }))
        .pipe(Effect.flip)
      expect(refused._tag).toBe("TransportError")
      const first = yield* getSessions(srv.http.port)
      expect(first.status).toBe(200)
      expect(first.body.sessions.map((s) => s.id)).toEqual(["stream-1"])
      expect(first.body.sessions[0]!.kind).toBe("websocket")
      expect(first.body.stats.refused).toBe(1)

      // 3. the send-stall watchdog reaps the dead client: the seat is free
      yield* waitSessions(0)
      const afterReap = yield* getSessions(srv.http.port)
      expect(afterReap.body.sessions).toEqual([])
      expect(afterReap.body.ended).toMatchObject([{ id: "stream-1", reason: "SendStalled" }])
      expect(afterReap.body.ended[0]!.sent).toBeGreaterThan(0)
      expect(afterReap.body.stats).toMatchObject({ active: 0, accepted: 1, completed: 1 })
      expect(afterReap.body.stats.refused).toBe(1)

      // 4. a new client takes the seat and gets the stream in order; /sessions shows it meanwhile
      const reading = yield* Effect.fork(client({ url: `ws://127.0.0.1:${wsPort}/`, count: 300, timeout: "10 seconds" }))
      yield* Stream.runHead(Stream.filter(srv.ws.sessionChanges, (rows) => rows.some((r) => r.id === "stream-2")))
        .pipe(Effect.timeout("5 seconds"))
      const during = yield* getSessions(srv.http.port)
      expect(during.body.sessions.map((s) => s.id)).toEqual(["stream-2"])
      const got = yield* reading
      expect(got.received).toBe(300)
      expect(got.inOrder).toBe(true)
      yield* waitSessions(0)
      const last = yield* getSessions(srv.http.port)
      expect(last.body.ended.map((e) => `${e.id}:${e.reason}`)).toEqual(["stream-1:SendStalled", "stream-2:PeerClosed"])
    })))
})
