/**
 * A raw node:net server for tests, as a scoped resource: every accepted socket
 * is handed to the test and destroyed when the scope closes.
 */
import { Deferred, Effect, Queue } from "effect"
import * as Net from "node:net"

export interface RawServer {
  readonly port: number
  /** Accepted sockets, in order. */
  readonly accepted: Queue.Dequeue<Net.Socket>
  readonly sockets: ReadonlyArray<Net.Socket>
}

export const rawServer = (options?: {
  /** Keep our side open after the client's FIN (a stubborn peer). Default false: answer FIN with FIN. */
  readonly allowHalfOpen?: boolean
  readonly onSocket?: (socket: Net.Socket) => void
}) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const accepted = yield* Queue.bounded<Net.Socket>(1024)
      const sockets: Array<Net.Socket> = []
      const server = Net.createServer({ allowHalfOpen: options?.allowHalfOpen ?? false }, (socket) => {
        sockets.push(socket)
        socket.on("error", () => {}) // tests observe errors on the client side
        options?.onSocket?.(socket)
        Queue.unsafeOffer(accepted, socket)
      })
      const listening = yield* Deferred.make<number>()
      server.listen(0, "127.0.0.1", () => Deferred.unsafeDone(listening, Effect.succeed((server.address() as Net.AddressInfo).port)))
      const port = yield* Deferred.await(listening)
      return { server, port, accepted, sockets }
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const s of sockets) s.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ accepted, port, sockets }): RawServer => ({ accepted, port, sockets })))

/** Resolves when the socket emits `event`, with the wall-clock time it happened. */
export const awaitEvent = (socket: Net.Socket, event: "end" | "close" | "data") =>
  Effect.async<number>((resume) => {
    const f = () => resume(Effect.sync(() => performance.now()))
    socket.once(event, f)
    return Effect.sync(() => socket.off(event, f))
  })

/** Collects length-prefixed frames from a raw socket. */
export const collectFrames = (socket: Net.Socket) => {
  const frames: Array<Buffer> = []
  let buf: Buffer = Buffer.alloc(0)
  socket.on("data", (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0)
      if (buf.length < 4 + len) break
      frames.push(buf.subarray(4, 4 + len))
      buf = buf.subarray(4 + len)
    }
  })
  return frames
}
