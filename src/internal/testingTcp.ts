/**
 * The test kit's raw misbehaving TCP peers on loopback, each a scoped resource.
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import type { NonReaderPeer, Peer, PeerOptions, SilentWebSocketPeer } from "../Testing.js"

const ACCEPTED_CAPACITY = 4096

interface Core extends Peer {
  /** Sockets as they are accepted, for the peer's own behaviour fiber. */
  readonly incoming: Queue.Dequeue<Net.Socket>
  readonly count: (bytes: number) => void
}

const core = (options: PeerOptions): Effect.Effect<Core, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const host = options.host ?? "127.0.0.1"
      const accepted = yield* Queue.bounded<Net.Socket>(ACCEPTED_CAPACITY)
      const incoming = yield* Queue.bounded<Net.Socket>(ACCEPTED_CAPACITY)
      const first = yield* Deferred.make<Net.Socket>()
      const sockets: Array<Net.Socket> = []
      let received = 0
      const server = Net.createServer(
        { allowHalfOpen: options.allowHalfOpen ?? false, pauseOnConnect: options.pauseOnConnect ?? false },
        (socket) => {
          sockets.push(socket)
          socket.on("error", () => {}) // the code under test observes errors on its side
          options.onSocket?.(socket)
          Deferred.unsafeDone(first, Effect.succeed(socket))
          Queue.unsafeOffer(incoming, socket)
          Queue.unsafeOffer(accepted, socket)
        }
      )
      const port = yield* Effect.async<number>((resume) => {
        server.listen(0, host, () => resume(Effect.succeed((server.address() as Net.AddressInfo).port)))
      })
      const peer: Core = {
        host,
        port,
        accepted,
        incoming,
        first: Deferred.await(first),
        sockets,
        bytesReceived: () => received,
        count: (n) => {
          received += n
        }
      }
      return { peer, server }
    }),
    ({ peer, server }) =>
      Effect.async<void>((resume) => {
        for (const s of peer.sockets) s.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ peer }) => peer))

const publicView = ({ accepted, bytesReceived, first, host, port, sockets }: Core): Peer => ({
  host,
  port,
  accepted,
  first,
  sockets,
  bytesReceived
})

/** Runs `f` on every accepted socket, in a fiber of the peer's scope. */
const onEach = (
  c: Core,
  f: (socket: Net.Socket) => Effect.Effect<void>
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const fibers = yield* FiberSet.make<void>()
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(c.incoming), (s) => FiberSet.run(fibers, f(s)))))
  })

/** @internal */
export const peer = (options?: PeerOptions): Effect.Effect<Peer, never, Scope.Scope> =>
  Effect.map(core(options ?? {}), publicView)

/** @internal */
export const stubbornPeer = (options?: { readonly host?: string | undefined }): Effect.Effect<Peer, never, Scope.Scope> =>
  Effect.gen(function*() {
    let c: Core | undefined
    c = yield* core({
      host: options?.host,
      allowHalfOpen: true, // our FIN is not answered with its own
      onSocket: (socket) => {
        socket.on("data", (chunk: Buffer) => c?.count(chunk.length)) // reads and discards, never ends or closes
      }
    })
    return publicView(c)
  })

/** @internal */
export const nonReaderPeer = (options?: { readonly host?: string | undefined }): Effect.Effect<
  NonReaderPeer,
  never,
  Scope.Scope
> =>
  Effect.gen(function*() {
    let reading = false
    let c: Core | undefined
    c = yield* core({
      host: options?.host,
      pauseOnConnect: true,
      onSocket: (socket) => {
        socket.on("data", (chunk: Buffer) => c?.count(chunk.length))
        if (reading) socket.resume()
      }
    })
    const self = c
    const resume = Effect.sync(() => {
      reading = true
      for (const s of self.sockets) s.resume()
    })
    return { ...publicView(self), resume }
  })

/** @internal */
export const halfOpenPeer = (options?: { readonly host?: string | undefined }): Effect.Effect<Peer, never, Scope.Scope> =>
  Effect.gen(function*() {
    let c: Core | undefined
    c = yield* core({
      host: options?.host,
      allowHalfOpen: true,
      onSocket: (socket) => {
        socket.on("data", (chunk: Buffer) => c?.count(chunk.length))
        socket.end() // its FIN at once; allowHalfOpen keeps its read side open
      }
    })
    return publicView(c)
  })

/** @internal */
export const resetPeer = (options: {
  readonly afterMillis?: Duration.DurationInput | undefined
  readonly afterBytes?: number | undefined
  readonly host?: string | undefined
}): Effect.Effect<Peer, never, Scope.Scope> =>
  Effect.gen(function*() {
    let c: Core | undefined
    const perSocket = new WeakMap<Net.Socket, number>()
    c = yield* core({
      host: options.host,
      onSocket: (socket) => {
        perSocket.set(socket, 0)
        socket.on("data", (chunk: Buffer) => {
          c?.count(chunk.length)
          const n = (perSocket.get(socket) ?? 0) + chunk.length
          perSocket.set(socket, n)
          if (options.afterBytes !== undefined && n >= options.afterBytes) socket.resetAndDestroy()
        })
      }
    })
    const self = c
    if (options.afterMillis !== undefined) {
      const delay = options.afterMillis
      yield* onEach(self, (socket) => Effect.zipRight(Effect.sleep(delay), Effect.sync(() => socket.resetAndDestroy())))
    }
    return publicView(self)
  })

/** @internal */
export const slowAlivePeer = (options: {
  readonly bytesPerSecond: number
  readonly tick?: Duration.DurationInput | undefined
  readonly host?: string | undefined
}): Effect.Effect<Peer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const tick = Duration.decode(options.tick ?? "100 millis")
    const perTick = Math.max(1, Math.floor((options.bytesPerSecond * Duration.toMillis(tick)) / 1000))
    const c = yield* core({ host: options.host, pauseOnConnect: true })
    yield* onEach(c, (socket) =>
      Effect.forever(
        Effect.zipRight(
          Effect.sleep(tick),
          Effect.sync(() => {
            let budget = perTick
            while (budget > 0 && !socket.destroyed) {
              const available = socket.readableLength
              if (available === 0) {
                socket.read(0) // asks the stream to refill its buffer from the kernel
                break
              }
              const chunk: Buffer | null = socket.read(Math.min(budget, available))
              if (chunk === null) break
              budget -= chunk.length
              c.count(chunk.length)
            }
          })
        )
      ))
    return publicView(c)
  })

/** @internal */
export const silentWebSocketPeer = (options?: { readonly host?: string | undefined }): Effect.Effect<
  SilentWebSocketPeer,
  never,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const upgradeRequests = yield* Queue.bounded<string>(ACCEPTED_CAPACITY)
    let c: Core | undefined
    c = yield* core({
      host: options?.host,
      onSocket: (socket) => {
        let head = ""
        let done = false
        socket.on("data", (chunk: Buffer) => {
          c?.count(chunk.length)
          if (done) return
          head += chunk.toString("latin1")
          const end = head.indexOf("\r\n\r\n")
          if (end >= 0) {
            done = true
            Queue.unsafeOffer(upgradeRequests, head.slice(0, end))
          }
        })
      }
    })
    return { ...publicView(c), upgradeRequests }
  })

/** @internal */
export const freePort = (host = "127.0.0.1"): Effect.Effect<number> =>
  Effect.async<number>((resume) => {
    const s = Net.createServer()
    s.listen(0, host, () => {
      const port = (s.address() as Net.AddressInfo).port
      s.close(() => resume(Effect.succeed(port)))
    })
  })

/** @internal */
export const collectFrames = (socket: Net.Socket): ReadonlyArray<Buffer> => {
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
