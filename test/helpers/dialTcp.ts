/**
 * A loopback TCP server for dialer tests that can go down (listener closed,
 * accepted sockets destroyed) and come back on the same port. Every
 * length-prefixed frame it receives is pushed to `frames`, with the index of
 * the accepted socket it came on.
 */
import { Duration, Effect, Queue } from "effect"
import * as Net from "node:net"
import { Framing } from "effect-tether"
import * as Testing from "effect-tether/testing"

export interface FrameServer {
  readonly port: number
  readonly frames: Queue.Queue<{ readonly socket: number; readonly text: string }>
  readonly sockets: ReadonlyArray<Net.Socket>
  /** Starts listening on `port` (again). */
  readonly up: Effect.Effect<void>
  /** Closes the listener and destroys every accepted socket. */
  readonly down: Effect.Effect<void>
}

/** A port nothing listens on (yet). */
export const freePort = Testing.freePort()

export const frameServer = (options: {
  readonly port: number
  /** Keep our side open after the client's FIN: a peer that never closes. */
  readonly allowHalfOpen?: boolean
}) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const frames = yield* Queue.bounded<{ readonly socket: number; readonly text: string }>(100_000)
      const sockets: Array<Net.Socket> = []
      let server: Net.Server | undefined
      const onSocket = (socket: Net.Socket) => {
        const index = sockets.length
        sockets.push(socket)
        socket.on("error", () => {})
        const decoder = Framing.lengthPrefixed().makeDecoder()
        socket.on("data", (chunk: Buffer) => {
          const out: Array<Uint8Array> = []
          decoder.decode(chunk, out)
          for (const f of out) Queue.unsafeOffer(frames, { socket: index, text: Framing.text(f) })
        })
      }
      const up = Effect.async<void>((resume) => {
        server = Net.createServer({ allowHalfOpen: options.allowHalfOpen ?? false }, onSocket)
        server.listen(options.port, "127.0.0.1", () => resume(Effect.void))
      })
      const down = Effect.async<void>((resume) => {
        for (const s of sockets) s.destroy()
        if (server === undefined) return resume(Effect.void)
        const srv = server
        server = undefined
        srv.close(() => resume(Effect.void))
      })
      const result: FrameServer = { port: options.port, frames, sockets, up, down }
      return result
    }),
    (s) => s.down
  )

/** Takes `n` frames, failing the test if they do not arrive within `timeout`. */
export const takeFrames = (server: FrameServer, n: number, timeout: Duration.DurationInput = "5 seconds") =>
  Effect.timeoutFail(
    Effect.map(Effect.replicateEffect(Queue.take(server.frames), n), (fs) => fs.map((f) => f.text)),
    { duration: timeout, onTimeout: () => new Error(`expected ${n} frames within ${Duration.format(Duration.decode(timeout))}`) }
  )
