/**
 * Misbehaving peers for the demo, each a scoped node:net server on loopback.
 */
import { Effect, Queue } from "effect"
import * as Net from "node:net"

export interface Peer {
  readonly port: number
  readonly accepted: Queue.Dequeue<Net.Socket>
  readonly sockets: Set<Net.Socket>
}

/** A raw server; `onSocket` scripts the misbehaviour. Every socket is destroyed when the scope closes. */
export const rawPeer = (options: {
  readonly allowHalfOpen?: boolean
  readonly onSocket?: (socket: Net.Socket) => void
}) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const accepted = yield* Queue.bounded<Net.Socket>(64)
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer({ allowHalfOpen: options.allowHalfOpen ?? false }, (socket) => {
        sockets.add(socket)
        socket.on("error", () => {})
        socket.on("close", () => sockets.delete(socket))
        options.onSocket?.(socket)
        Queue.unsafeOffer(accepted, socket)
      })
      const port = yield* Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as Net.AddressInfo).port)))
      })
      return { server, peer: { port, accepted, sockets } satisfies Peer }
    }),
    ({ peer, server }) =>
      Effect.async<void>((resume) => {
        for (const s of peer.sockets) s.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ peer }) => peer))

/** Splits a raw byte stream into 4-byte length-prefixed frames. */
export const frameReader = (onFrame: (frame: Buffer) => void) => {
  let buf: Buffer = Buffer.alloc(0)
  return (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0)
      if (buf.length < 4 + len) break
      onFrame(buf.subarray(4, 4 + len))
      buf = buf.subarray(4 + len)
    }
  }
}

export const lengthPrefixed = (text: string) => {
  const body = Buffer.from(text)
  const out = Buffer.alloc(4 + body.length)
  out.writeUInt32BE(body.length)
  body.copy(out, 4)
  return out
}
