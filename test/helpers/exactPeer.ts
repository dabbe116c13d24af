/**
 * Raw peers for the exactly-once tests: a server that accepts and never reads
 * (TCP: `pauseOnConnect`, TLS: paused right after the handshake) until the test
 * lets it read to the end, plus numbered frames and an exact decoder of what a
 * peer received (complete length-prefixed frames and a possible truncated tail).
 */
import { Deferred, Effect } from "effect"
import * as Net from "node:net"
import * as Tls from "node:tls"
import { selfSigned } from "./tls.js"

export interface SilentPeer {
  readonly port: number
  /** Accepted sockets, in accept order. */
  readonly sockets: ReadonlyArray<Net.Socket>
  /** Waits (bounded) until `n` sockets were accepted. */
  readonly awaitSockets: (n: number) => Effect.Effect<void, Error>
  /** Resumes socket `i` and reads it to its end (EOF, reset or close); all the bytes it got, bounded. */
  readonly readToEnd: (i: number) => Effect.Effect<Buffer, Error>
}

/** A peer that accepts and then reads nothing until `readToEnd`. */
export const silentPeer = (options?: { readonly tls?: boolean }) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const sockets: Array<Net.Socket> = []
      const arrived: Array<() => void> = []
      const onSocket = (socket: Net.Socket) => {
        socket.on("error", () => {})
        if (options?.tls) socket.pause() // TLS: stop reading after the handshake (backpressure reaches TCP)
        sockets.push(socket)
        for (const f of arrived.splice(0)) f()
      }
      const server: Net.Server = options?.tls
        ? Tls.createServer({ ...selfSigned(), allowHalfOpen: true } as Tls.TlsOptions, onSocket)
        : Net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, onSocket)
      const listening = yield* Deferred.make<number>()
      server.listen(0, "127.0.0.1", () =>
        Deferred.unsafeDone(listening, Effect.succeed((server.address() as Net.AddressInfo).port)))
      const port = yield* Deferred.await(listening)
      const awaitSockets = (n: number): Effect.Effect<void, Error> =>
        Effect.async<void>((resume) => {
          const check = () => (sockets.length >= n ? resume(Effect.void) : arrived.push(check))
          check()
        }).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`fewer than ${n} sockets`) }))
      const readToEnd = (i: number): Effect.Effect<Buffer, Error> =>
        Effect.async<Buffer>((resume) => {
          const socket = sockets[i]!
          const parts: Array<Buffer> = []
          let done = false
          const finish = () => {
            if (done) return
            done = true
            resume(Effect.succeed(Buffer.concat(parts)))
          }
          socket.on("data", (d: Buffer) => parts.push(d))
          socket.once("end", finish)
          socket.once("close", finish)
          socket.resume()
        }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error(`socket ${i} never ended`) }))
      return { server, sockets, port, awaitSockets, readToEnd }
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const s of sockets) s.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ awaitSockets, port, readToEnd, sockets }): SilentPeer => ({ awaitSockets, port, readToEnd, sockets })))

/** Frame `seq`: 4-byte big-endian sequence number, then filler, 1–8 KiB in all (deterministic). */
export const numbered = (seq: number): Uint8Array => {
  const size = 1024 + ((seq * 2654435761) >>> 0) % (7 * 1024 + 1)
  const b = Buffer.alloc(size, seq & 0xff)
  b.writeUInt32BE(seq, 0)
  return b
}
export const seqOf = (frame: Uint8Array): number => Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).readUInt32BE(0)

/** What a peer got, decoded as length-prefixed frames: complete frames' numbers and the cut tail, if any. */
export const decodeReceived = (bytes: Buffer): { readonly seqs: Array<number>; readonly tailBytes: number } => {
  const seqs: Array<number> = []
  let off = 0
  while (bytes.length - off >= 4) {
    const len = bytes.readUInt32BE(off)
    if (bytes.length - off < 4 + len) break
    seqs.push(bytes.readUInt32BE(off + 4))
    off += 4 + len
  }
  return { seqs, tailBytes: bytes.length - off }
}

/** Count of numbers that occur more than once across the lists. */
export const duplicates = (...lists: ReadonlyArray<ReadonlyArray<number>>): number => {
  const seen = new Set<number>()
  let dup = 0
  for (const l of lists) {
    for (const n of l) {
      if (seen.has(n)) dup++
      else seen.add(n)
    }
  }
  return dup
}
