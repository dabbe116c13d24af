/**
 * Pre-encoded frames (`Connection.Encoded`, what a broadcast shares between connections) on a WebSocket:
 * they go out as they are only where they fit the side's wire — a server never masks, a client masks
 * every frame with a fresh key, RSV1 only with permessage-deflate — and are encoded again from their
 * payload otherwise. `ws` on the other end is strict about masking (it closes with 1002).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Schedule, Stream } from "effect"
import * as Http from "node:http"
import type * as Net from "node:net"
import { WebSocket as WsClient, WebSocketServer } from "ws"
import { Connection, WebSocket } from "effect-tether"
import { encodeFrame, OP_BINARY, OP_TEXT } from "./helpers/wsRaw.js"

/** A frame as a server writes it (no mask), optionally with RSV1 set (as a deflate-compressed frame would be). */
const serverFrame = (opcode: number, payload: string, rsv1 = false) => {
  const f = encodeFrame(opcode, payload, { mask: false })
  if (rsv1) f[0] = f[0]! | 0x40
  return f
}

interface Seen {
  readonly messages: Array<string>
  closeCode: number | undefined
  error: string | undefined
}

/** A strict `ws` server recording what its one client sends. */
const wsServer = Effect.acquireRelease(
  Effect.async<{ port: number; seen: Seen; wss: WebSocketServer; http: Http.Server }>((resume) => {
    const http = Http.createServer()
    const wss = new WebSocketServer({ server: http, perMessageDeflate: false })
    const seen: Seen = { messages: [], closeCode: undefined, error: undefined }
    wss.on("connection", (ws) => {
      ws.on("message", (data: Buffer, isBinary: boolean) => seen.messages.push(`${isBinary ? "b" : "t"}:${data.toString()}`))
      ws.on("close", (code) => (seen.closeCode = code))
      ws.on("error", (e) => (seen.error = e.message))
    })
    http.listen(0, "127.0.0.1", () => resume(Effect.succeed({ port: (http.address() as Net.AddressInfo).port, seen, wss, http })))
  }),
  ({ http, wss }) =>
    Effect.async<void>((resume) => {
      for (const c of wss.clients) c.terminate()
      wss.close()
      http.close(() => resume(Effect.void))
    })
)

/** Polls `cond` every 5 ms; dies after 5 s. */
const eventually = (cond: () => boolean, what: string) =>
  Effect.repeat(Effect.sync(cond), { schedule: Schedule.spaced("5 millis"), until: (ok) => ok }).pipe(
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`timed out: ${what}`) }),
    Effect.orDie,
    Effect.asVoid
  )

describe("WebSocket: pre-encoded frames fit the wire of their side", () => {
  it.live("client: a server's unmasked frame and a masked one sent twice reach a strict server (encoded again, masked), in order", () =>
    Effect.gen(function*() {
      const { port, seen } = yield* wsServer
      const conn = yield* WebSocket.connect(`ws://127.0.0.1:${port}/`)
      // unmasked (built for a server): sent as it is, `ws` would close with 1002
      yield* conn.sendEncoded(new Connection.Encoded(serverFrame(OP_TEXT, "shared"), WebSocket.text("shared")))
      // masked by someone else's key, the same buffer twice: each goes out with a fresh key
      const masked = new Connection.Encoded(encodeFrame(OP_BINARY, "masked"), WebSocket.binary(Buffer.from("masked")))
      yield* conn.sendEncoded(masked)
      yield* conn.send(WebSocket.text("plain"))
      yield* conn.sendEncoded(masked)
      expect(yield* conn.trySendEncoded(new Connection.Encoded(serverFrame(OP_TEXT, "try"), WebSocket.text("try")))).toBe("accepted")
      yield* eventually(() => seen.messages.length === 5 || seen.closeCode !== undefined, "5 messages at the server")
      expect(seen.messages).toEqual(["t:shared", "b:masked", "t:plain", "b:masked", "t:try"])
      expect(seen.closeCode).toBeUndefined()
      expect(seen.error).toBeUndefined()
      expect(yield* conn.state).toBe("Active")
      const outcome = yield* conn.close()
      expect(outcome.delivered).toBe(5)
      expect(outcome.undelivered).toEqual([])
    }).pipe(Effect.scoped))

  it.live("server: a client's masked frame, an RSV1 frame without deflate and an unmasked one reach a strict client", () =>
    Effect.gen(function*() {
      const sent = yield* Deferred.make<Connection.CloseOutcome<WebSocket.Message>>()
      const server = yield* WebSocket.serve({ port: 0 }, (conn) =>
        Effect.gen(function*() {
          // masked (built for a client): a client would close with 1002
          yield* conn.sendEncoded(new Connection.Encoded(encodeFrame(OP_TEXT, "from-client-codec"), WebSocket.text("from-client-codec")))
          // RSV1 on a connection without permessage-deflate: a protocol error, so encoded again from the payload
          yield* conn.sendEncoded(new Connection.Encoded(serverFrame(OP_TEXT, "rsv1", true), WebSocket.text("rsv1")))
          // fits a server's wire: as it is
          yield* conn.sendEncoded(new Connection.Encoded(serverFrame(OP_BINARY, "as-is"), WebSocket.binary(Buffer.from("as-is"))))
          yield* Stream.runDrain(conn.incoming).pipe(Effect.ignore)
          yield* Deferred.succeed(sent, yield* conn.outcome)
        }))
      const seen: Seen = { messages: [], closeCode: undefined, error: undefined }
      const client = new WsClient(`ws://127.0.0.1:${server.address.port}/`, { perMessageDeflate: false })
      client.on("message", (data: Buffer, isBinary: boolean) => seen.messages.push(`${isBinary ? "b" : "t"}:${data.toString()}`))
      client.on("close", (code) => (seen.closeCode = code))
      client.on("error", (e) => (seen.error = e.message))
      yield* Effect.addFinalizer(() => Effect.sync(() => client.terminate()))
      yield* eventually(() => seen.messages.length === 3 || seen.closeCode !== undefined, "3 messages at the client")
      expect(seen.messages).toEqual(["t:from-client-codec", "t:rsv1", "b:as-is"])
      expect(seen.error).toBeUndefined()
      client.close(1000)
      const outcome = yield* Deferred.await(sent).pipe(Effect.timeout("5 seconds"))
      expect(outcome.delivered).toBe(3)
      yield* eventually(() => seen.closeCode !== undefined, "the client's close event")
      expect(seen.closeCode).toBe(1000)
    }).pipe(Effect.scoped))
})
