/**
 * tether demo: an echo exchange over loopback that ends with a graceful close
 * against a peer that never closes its socket (the zombie-session story).
 *
 *   npm start
 */
import { Effect, Stream } from "effect"
import * as Net from "node:net"
import { Connection, DisconnectReason, Framing } from "tether"

// A stubborn peer: echoes every byte, keeps its side open after our FIN, never closes.
const stubbornEchoPeer = Effect.acquireRelease(
  Effect.async<{ server: Net.Server; port: number; sockets: Set<Net.Socket> }>((resume) => {
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
      socket.on("data", (chunk) => socket.write(chunk))
    })
    server.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({ server, port: (server.address() as Net.AddressInfo).port, sockets })))
  }),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      for (const s of sockets) s.destroy()
      server.close(() => resume(Effect.void))
    })
)

const t0 = performance.now()
const at = () => `${(performance.now() - t0).toFixed(0).padStart(5)} ms`
const say = (line: string) => Effect.sync(() => console.log(`${at()}  ${line}`))

const program = Effect.gen(function*() {
  const peer = yield* stubbornEchoPeer
  yield* say(`peer listening on 127.0.0.1:${peer.port} (echoes, never closes)`)
  const conn = yield* Connection.connectTcp({ port: peer.port, lingerTimeout: "1 second" })
  yield* say(`${conn.id} connected`)

  const words = ["hello", "from", "tether", "one", "writer"]
  yield* conn.sendAll(words.map(Framing.utf8))
  yield* say(`sent ${words.length} frames`)
  const echoes = yield* conn.incoming.pipe(Stream.take(words.length), Stream.map(Framing.text), Stream.runCollect)
  yield* say(`echoed: ${Array.from(echoes).join(" ")}`)

  yield* say("closing: drain → FIN → wait for the peer's EOF (it never comes) → destroy at the linger bound")
  const outcome = yield* conn.close("demo finished")
  yield* say(
    `closed: ${DisconnectReason.describe(outcome.reason)}; delivered ${outcome.delivered}, ` +
      `undelivered ${outcome.undelivered.length}, FIN sent ${outcome.finSent}, ` +
      `linger expired ${outcome.lingerExpired}, close took ${outcome.closeMillis} ms`
  )
  yield* say(`socket destroyed: ${conn.transport.stats().socket?.destroyed}`)
})

Effect.runPromise(Effect.scoped(program)).then(
  () => console.log("done: no zombie left behind"),
  (err) => {
    console.error(err)
    process.exitCode = 1
  }
)
