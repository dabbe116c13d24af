/**
 * Transports on node:net and node:tls sockets.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import * as Tls from "node:tls"
import type { SocketOptions, Transport, TransportState, TransportStats } from "../Transport.js"
import { TransportError } from "../Transport.js"
import * as Inbound from "./inbound.js"

const DEFAULT_READ_HWM = 256 * 1024
const DEFAULT_KEEPALIVE = Duration.seconds(30)

/** The `code` of a Node error (ECONNRESET, EADDRINUSE, ...), if it has one. @internal */
export const errorCode = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : undefined
const errorMessage = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** @internal */
export const toTransportError = (reason: TransportError["reason"], cause: unknown): TransportError =>
  new TransportError({ reason, message: errorMessage(cause), code: errorCode(cause), cause })

const applySocketOptions = (socket: Net.Socket, options: SocketOptions | undefined) => {
  socket.setNoDelay(options?.noDelay ?? true)
  const ka = options?.keepAlive
  if (ka === false) socket.setKeepAlive(false)
  else socket.setKeepAlive(true, Duration.toMillis(ka === undefined ? DEFAULT_KEEPALIVE : Duration.decode(ka)))
}

const address = (host: string | undefined, port: number | undefined) =>
  host === undefined ? undefined : `${host.includes(":") ? `[${host}]` : host}:${port}`

/**
 * Wraps a connected socket. Reads are pulled: chunks are buffered until `read`
 * takes them, and the socket is paused while more than the high-water mark is
 * buffered, so a slow consumer pushes back on the peer through TCP.
 * @internal
 */
export const makeSocketTransport = (
  socket: Net.Socket,
  kind: "tcp" | "tls",
  options?: SocketOptions
): Transport => {
  const inbound = Inbound.make({
    highWaterMark: options?.readHighWaterMark ?? DEFAULT_READ_HWM,
    pause: () => socket.pause(),
    resume: () => {
      if (!socket.destroyed) socket.resume()
    },
    destroyed: () => socket.destroyed,
    closedMessage: "socket destroyed"
  })
  socket.on("data", (chunk: Buffer) => inbound.push(chunk))
  socket.on("end", inbound.end)
  socket.on("error", (cause) => inbound.fail(toTransportError("Read", cause)))
  socket.on("close", inbound.close)
  const read = inbound.read

  const write = (batch: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> =>
    Effect.async<void, TransportError>((resume) => {
      if (socket.destroyed || socket.writableEnded) {
        resume(Effect.fail(new TransportError({ reason: "Closed", message: "socket is closed for writing" })))
        return
      }
      const done = (err?: Error | null) =>
        resume(err ? Effect.fail(toTransportError("Write", err)) : Effect.void)
      const n = batch.length
      if (n === 0) return resume(Effect.void)
      if (n === 1) {
        socket.write(batch[0]!, done)
        return
      }
      // one writev for the whole batch
      socket.cork()
      for (let i = 0; i < n - 1; i++) socket.write(batch[i]!)
      socket.write(batch[n - 1]!, done)
      socket.uncork()
    })

  const shutdownWrite: Effect.Effect<void, TransportError> = Effect.async<void, TransportError>((resume) => {
    if (socket.writableFinished) return resume(Effect.void)
    if (socket.destroyed) {
      return resume(Effect.fail(new TransportError({ reason: "Closed", message: "socket destroyed before FIN" })))
    }
    const onFinish = () => {
      cleanup()
      resume(Effect.void)
    }
    const onClose = () => {
      cleanup()
      resume(
        socket.writableFinished
          ? Effect.void
          : Effect.fail(new TransportError({ reason: "Shutdown", message: "socket closed before FIN was sent" }))
      )
    }
    const cleanup = () => {
      socket.off("finish", onFinish)
      socket.off("close", onClose)
    }
    socket.once("finish", onFinish)
    socket.once("close", onClose)
    if (!socket.writableEnded) socket.end()
    return Effect.sync(cleanup)
  })

  const destroy = Effect.sync(() => {
    if (!socket.destroyed) socket.destroy()
  })

  const state = (): TransportState => inbound.state(socket.destroyed, socket.writableEnded)

  const stats = (): TransportStats => {
    const queued = socket.writableLength
    return {
      queuedBytes: queued,
      bytesHandedToKernel: Math.max(0, socket.bytesWritten - queued),
      bytesRead: inbound.bytesRead(),
      state: state(),
      socket
    }
  }

  return {
    kind,
    remoteAddress: address(socket.remoteAddress, socket.remotePort),
    localAddress: address(socket.localAddress, socket.localPort),
    read,
    write,
    shutdownWrite,
    destroy,
    stats
  }
}

const connectWith = <S extends Net.Socket>(
  open: () => S,
  connectEvent: "connect" | "secureConnect",
  kind: "tcp" | "tls",
  options: { readonly connectTimeout?: Duration.DurationInput | undefined } & SocketOptions
): Effect.Effect<Transport, TransportError, Scope.Scope> => {
  const connect = Effect.async<S, TransportError>((resume) => {
    const socket = open()
    const onConnect = () => {
      socket.off("error", onError)
      resume(Effect.succeed(socket))
    }
    const onError = (cause: Error) => {
      socket.off(connectEvent, onConnect)
      socket.destroy()
      resume(Effect.fail(toTransportError("Connect", cause)))
    }
    socket.once(connectEvent, onConnect)
    socket.once("error", onError)
    // interrupted (timeout, scope closed) while connecting: nothing may outlive us
    return Effect.sync(() => socket.destroy())
  })
  const bounded = options.connectTimeout === undefined ? connect : connect.pipe(
    Effect.timeoutFail({
      duration: options.connectTimeout,
      onTimeout: () =>
        new TransportError({
          reason: "ConnectTimeout",
          message: `connect timed out after ${Duration.format(Duration.decode(options.connectTimeout!))}`
        })
    })
  )
  // the connect itself must stay interruptible (the timeout, a closing scope); its canceler destroys the socket
  return Effect.acquireRelease(
    Effect.map(Effect.interruptible(bounded), (socket) => {
      applySocketOptions(socket, options)
      return makeSocketTransport(socket, kind, options)
    }),
    (t) => t.destroy
  )
}

/** @internal */
export const connectTcp = (
  options: {
    readonly host?: string | undefined
    readonly port: number
    readonly connectTimeout?: Duration.DurationInput | undefined
  } & SocketOptions
): Effect.Effect<Transport, TransportError, Scope.Scope> =>
  connectWith(
    () => Net.connect({ host: options.host ?? "127.0.0.1", port: options.port, allowHalfOpen: true }),
    "connect",
    "tcp",
    options
  )

/** @internal */
export const connectTls = (
  options: Tls.ConnectionOptions & {
    readonly host?: string | undefined
    readonly port: number
    readonly connectTimeout?: Duration.DurationInput | undefined
  } & SocketOptions
): Effect.Effect<Transport, TransportError, Scope.Scope> => {
  const { connectTimeout: _ct, keepAlive: _ka, noDelay: _nd, readHighWaterMark: _hwm, ...tlsOptions } = options
  return connectWith(
    () =>
      // allowHalfOpen is honoured by tls.connect (passed on to the TLSSocket) though not in its typings
      Tls.connect({ ...tlsOptions, host: options.host ?? "127.0.0.1", port: options.port, allowHalfOpen: true } as Tls.ConnectionOptions),
    "secureConnect",
    "tls",
    options
  )
}

/** @internal */
export const fromSocket = (
  socket: Net.Socket,
  options?: SocketOptions & { readonly kind?: "tcp" | "tls" | undefined }
): Effect.Effect<Transport, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      applySocketOptions(socket, options)
      return makeSocketTransport(socket, options?.kind ?? (socket instanceof Tls.TLSSocket ? "tls" : "tcp"), options)
    }),
    (t) => t.destroy
  )
