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
import { TransportError } from "./transportError.js"
import * as Inbound from "./inbound.js"
import { omit } from "./options.js"
import * as Resource from "./resource.js"

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

// A release made at module level: one made inside a constructor keeps that constructor's context
// (its options, its connect callbacks) alive for as long as the transport is.
const destroyOf = (t: Transport): Effect.Effect<void> => t.destroy

/** A write handed to the socket whose callback has not reported success yet. */
interface InFlightWrite {
  readonly chunks: ReadonlyArray<Uint8Array>
  /** Plaintext bytes of the write. */
  readonly bytes: number
  done: boolean
  /** What the handle held before the write was dispatched (undefined: unreadable). */
  readonly before: number | undefined
  /** TLS: ciphertext bytes the write became (undefined: unknown). */
  cipher: number | undefined
}

// ---- the one place that reads semi-private Node fields ----
//
// `socket._handle.writeQueueSize` is what Node's own lib/net.js reads to refresh socket timeouts
// (`Socket.prototype._onTimeout`). For a TCP handle (LibuvStreamWrap) it is libuv's
// `uv_stream_t.write_queue_size`: the bytes of queued writes libuv has not yet written to the kernel
// (libuv first tries a synchronous write and queues the remainder). For a TLS socket `_handle` is a
// TLSWrap, whose `writeQueueSize` is BIO_pending(enc_out): ciphertext not yet confirmed written by
// the underlying handle, and `_handle._parent` is that underlying TCP handle. Everything is read
// synchronously on the JS thread, so nothing can reach the kernel between a read and `destroy()`.
// All such reads are in `writeQueues` below.
// Guarded: when a field is missing or inconsistent the result is `undefined` ("cannot tell"), and
// callers fall back to counting the whole in-flight write as not accepted (at-least-once, the
// behaviour before exact accounting).

/**
 * The only function that reads semi-private Node fields: `own` is `socket._handle.writeQueueSize`
 * (TCP: bytes libuv still holds; TLS: ciphertext TLSWrap has not had confirmed), `parent` is
 * `socket._handle._parent.writeQueueSize` (TLS only: what libuv still holds of that ciphertext).
 * Either is undefined when the field is missing or not a count (no handle after destroy, another
 * Node version): callers then say "cannot tell".
 */
const writeQueues = (socket: Net.Socket): { readonly own: number | undefined; readonly parent: number | undefined } => {
  const count = (v: unknown) => (typeof v === "number" && v >= 0 ? v : undefined)
  const handle = (socket as unknown as { _handle?: { writeQueueSize?: unknown; _parent?: { writeQueueSize?: unknown } } | null })
    ._handle
  if (typeof handle !== "object" || handle === null) return { own: undefined, parent: undefined }
  const parent = handle._parent
  return {
    own: count(handle.writeQueueSize),
    parent: typeof parent === "object" && parent !== null ? count(parent.writeQueueSize) : undefined
  }
}

/** What the socket's handle holds right now (TLS: ciphertext pending in TLSWrap). */
const handleQueued = (socket: Net.Socket): number | undefined => writeQueues(socket).own

/** TLS: the ciphertext a write just dispatched became (TLSWrap encrypts synchronously in DoWrite). */
const dispatchedCipher = (socket: Net.Socket, before: number | undefined): number | undefined => {
  const after = handleQueued(socket)
  return before === 0 && after !== undefined && after > 0 ? after : undefined
}

/** TLS record plaintext limit (OpenSSL's default max_send_fragment; Node does not change it). */
const TLS_RECORD = 16384
/** Largest per-record overhead for which Node's TLSWrap allocates the whole write's ciphertext in one BIO buffer. */
const TLS_MAX_OVERHEAD = 37

/**
 * Plaintext bytes of a TLS write that the peer can decrypt, given how much of its ciphertext the
 * kernel accepted. One SSL_write of `plain` bytes (TLSWrap joins a writev into one) makes
 * ceil(plain / 16384) records of 16384 plaintext bytes (the last one shorter), each with the same
 * overhead (AEAD suites: TLS 1.3 22 bytes, TLS 1.2 GCM 29); a record is decryptable only when all of
 * it arrives, so only complete records count. Undefined when the sizes do not fit that model
 * (e.g. CBC padding).
 */
export const tlsPlainAccepted = (plain: number, cipher: number, acceptedCipher: number): number | undefined => {
  const records = Math.ceil(plain / TLS_RECORD)
  const overhead = (cipher - plain) / records
  if (!Number.isInteger(overhead) || overhead < 0 || overhead > TLS_MAX_OVERHEAD) return undefined
  if (acceptedCipher >= cipher) return plain
  return Math.min(plain, Math.floor(acceptedCipher / (TLS_RECORD + overhead)) * TLS_RECORD)
}

/**
 * Bytes of the write in progress that the kernel accepted (TLS: plaintext of the complete records
 * it accepted), or undefined when the handle cannot tell. Read it before `destroy`: afterwards the
 * handle is gone.
 */
const inFlightAccepted = (socket: Net.Socket, w: InFlightWrite): number | undefined => {
  if (w.before !== 0) return undefined // something else was queued: the remainder is not ours alone
  const queues = writeQueues(socket)
  if (!(socket instanceof Tls.TLSSocket)) {
    const held = queues.own
    return held === undefined || held > w.bytes ? undefined : w.bytes - held
  }
  // TLS: TLSWrap hands the whole write's ciphertext (one BIO buffer, see TLS_MAX_OVERHEAD) to the
  // underlying handle in one write; the kernel took all of it but what the underlying handle holds.
  const pending = queues.own
  const held = queues.parent
  if (w.cipher === undefined || pending === undefined || held === undefined || held > pending || pending > w.cipher) {
    return undefined
  }
  return tlsPlainAccepted(w.bytes, w.cipher, w.cipher - held)
}

/**
 * Wraps a connected socket. Reads are pulled: chunks are buffered until `read`
 * takes them, and the socket is paused while more than the high-water mark is
 * buffered, so a slow consumer pushes back on the peer through TCP.
 *
 * A class with its methods on the prototype (one per connection: a closure per member and the context
 * they shared was ~1.2 KB of every idle connection); the socket's four listeners are the only closures.
 * It is also its inbound buffer's source (`pause`, `resume`, `destroyed`).
 * @internal
 */
class SocketTransport implements Transport, Inbound.InboundOptions {
  readonly remoteAddress: string | undefined
  readonly localAddress: string | undefined
  readonly highWaterMark: number
  readonly closedMessage = "socket destroyed"
  private readonly inbound: Inbound.InboundBuffer
  // ---- kernel accounting: what of our writes the kernel accepted ----
  // Node counts a chunk as pending (writableLength) until its write callback, although libuv may
  // have written most of it already; so the transport tracks its own writes: `completedBytes` (writes
  // whose callback reported success) and the write in progress, whose accepted part is read from
  // the handle by `inFlightAccepted`. `destroy` freezes that part (nothing reaches the kernel after).
  private completedBytes = 0
  private current: InFlightWrite | undefined = undefined
  private frozen: number | undefined = undefined // accepted bytes of `current`, read right before our destroy

  constructor(readonly socket: Net.Socket, readonly kind: "tcp" | "tls", options?: SocketOptions) {
    this.remoteAddress = address(socket.remoteAddress, socket.remotePort)
    this.localAddress = address(socket.localAddress, socket.localPort)
    this.highWaterMark = options?.readHighWaterMark ?? DEFAULT_READ_HWM
    const inbound = this.inbound = new Inbound.InboundBuffer(this)
    socket.on("data", (chunk: Buffer) => inbound.push(chunk))
    socket.on("end", () => inbound.end())
    socket.on("error", (cause) => inbound.fail(toTransportError("Read", cause)))
    socket.on("close", () => inbound.close())
  }

  // the inbound buffer's source
  pause(): void {
    this.socket.pause()
  }
  resume(): void {
    if (!this.socket.destroyed) this.socket.resume()
  }
  destroyed(): boolean {
    return this.socket.destroyed
  }

  get read(): Effect.Effect<ReadonlyArray<Uint8Array>, TransportError> {
    return this.inbound.read
  }
  unsafePoll(): ReadonlyArray<Uint8Array> | TransportError | undefined {
    return this.inbound.poll()
  }
  unsafeOnReadable(wake: () => void): void {
    this.inbound.onReadable(wake)
  }

  private acceptedOfCurrent(): number {
    const current = this.current
    if (current === undefined || current.done) return 0 // a completed write is in completedBytes
    if (this.frozen !== undefined) return this.frozen
    return (this.socket.destroyed ? undefined : inFlightAccepted(this.socket, current)) ?? 0
  }

  write(batch: ReadonlyArray<Uint8Array>): Effect.Effect<void, TransportError> {
    return Effect.async<void, TransportError>((resume) => {
      this.unsafeWrite(batch, (err) => resume(err === undefined ? Effect.void : Effect.fail(err)))
    })
  }

  unsafeWrite(batch: ReadonlyArray<Uint8Array>, cb: (error: TransportError | undefined) => void): void {
    const socket = this.socket
    if (socket.destroyed || socket.writableEnded) {
      cb(new TransportError({ reason: "Closed", message: "socket is closed for writing" }))
      return
    }
    const n = batch.length
    if (n === 0) return cb(undefined)
    let bytes = 0
    for (let i = 0; i < n; i++) bytes += batch[i]!.length
    const w: InFlightWrite = { chunks: batch, bytes, done: false, before: handleQueued(socket), cipher: undefined }
    this.current = w
    const done = (err?: Error | null) => {
      if (!err && !w.done && this.current === w && this.frozen === undefined) {
        w.done = true
        this.completedBytes += bytes
      }
      cb(err ? toTransportError("Write", err) : undefined)
    }
    if (n === 1) {
      socket.write(batch[0]!, done)
    } else {
      // one writev for the whole batch
      socket.cork()
      for (let i = 0; i < n - 1; i++) socket.write(batch[i]!)
      socket.write(batch[n - 1]!, done)
      socket.uncork()
    }
    if (this.kind === "tls" && !w.done) w.cipher = dispatchedCipher(socket, w.before)
  }

  get shutdownWrite(): Effect.Effect<void, TransportError> {
    const socket = this.socket
    return Effect.async<void, TransportError>((resume) => {
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
  }

  /** Destroys the socket now (no linger). */
  unsafeDestroy(): void {
    const socket = this.socket
    if (socket.destroyed) return
    // the last moment the handle can say how much of the write in progress the kernel took
    const current = this.current
    if (current !== undefined && !current.done) this.frozen = inFlightAccepted(socket, current) ?? 0
    socket.destroy()
  }
  get destroy(): Effect.Effect<void> {
    return Effect.sync(() => this.unsafeDestroy())
  }

  unsafeKernelAccepted(chunks: ReadonlyArray<Uint8Array>): number | undefined {
    const current = this.current
    if (current === undefined || current.chunks !== chunks) return 0 // never handed to the socket
    if (current.done) return current.bytes
    if (this.frozen !== undefined) return this.frozen
    return this.socket.destroyed ? undefined : inFlightAccepted(this.socket, current)
  }

  state(): TransportState {
    return this.inbound.state(this.socket.destroyed, this.socket.writableEnded)
  }

  stats(): TransportStats {
    return {
      queuedBytes: this.socket.writableLength,
      bytesHandedToKernel: this.completedBytes + this.acceptedOfCurrent(),
      bytesRead: this.inbound.bytesRead(),
      state: this.state(),
      socket: this.socket
    }
  }
}

/** @internal */
export const makeSocketTransport = (socket: Net.Socket, kind: "tcp" | "tls", options?: SocketOptions): Transport =>
  new SocketTransport(socket, kind, options)

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
  return Resource.acquireRelease(
    Effect.map(Effect.interruptible(bounded), (socket) => {
      applySocketOptions(socket, options)
      return makeSocketTransport(socket, kind, options)
    }),
    destroyOf
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

/** Every socket option once (a new one that is not listed does not compile), and connectTimeout. */
const socketOptionKeys: Record<keyof SocketOptions | "connectTimeout", true> = {
  noDelay: true,
  keepAlive: true,
  readHighWaterMark: true,
  connectTimeout: true
}


/** @internal */
export const connectTls = (
  options: Tls.ConnectionOptions & {
    readonly host?: string | undefined
    readonly port: number
    readonly connectTimeout?: Duration.DurationInput | undefined
  } & SocketOptions
): Effect.Effect<Transport, TransportError, Scope.Scope> => {
  const tlsOptions = omit(options, socketOptionKeys)
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
  Resource.acquireRelease(
    Effect.sync(() => {
      applySocketOptions(socket, options)
      return makeSocketTransport(socket, options?.kind ?? (socket instanceof Tls.TLSSocket ? "tls" : "tcp"), options)
    }),
    destroyOf
  )
