/**
 * The byte-duplex contract every connection sits on.
 *
 * A transport reads inbound bytes with backpressure (the socket is paused while
 * nobody reads), writes a *batch* of chunks in one go (completing when the batch
 * is handed to the kernel), half-closes with `shutdownWrite` (FIN), and can be
 * destroyed at any time. `stats` is a synchronous snapshot used by watchdogs that
 * look at the socket from outside the write path.
 *
 * Implementations: TCP ({@link connectTcp}, {@link fromSocket}), TLS
 * ({@link connectTls}) and an in-memory pair with a scriptable, misbehaving far
 * end for virtual-time tests ({@link memoryPair}).
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Net from "node:net"
import type * as Tls from "node:tls"
import * as memory from "./internal/memoryTransport.js"
import * as net from "./internal/netTransport.js"
import * as internalError from "./internal/transportError.js"

/**
 * A transport-level failure.
 *
 * @example
 * ```ts
 * import { Transport } from "effect-tether"
 *
 * const err = new Transport.TransportError({ reason: "Connect", message: "ECONNREFUSED", code: "ECONNREFUSED" })
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export const TransportError: typeof internalError.TransportError = internalError.TransportError

/**
 * @since 0.1.0
 * @category errors
 */
export type TransportError = internalError.TransportError

/**
 * Lifecycle of the underlying socket as the transport sees it.
 *
 * - `open`: both directions usable
 * - `half-closed`: we sent FIN (`local`) or read the peer's EOF (`remote`)
 * - `closed`: destroyed
 *
 * @example
 * ```ts
 * import type { Transport } from "effect-tether"
 *
 * const s: Transport.TransportState = "open"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TransportState = "open" | "half-closed-local" | "half-closed-remote" | "closed"

/**
 * A snapshot of a transport's counters.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Transport } from "effect-tether"
 *
 * const program = (t: Transport.Transport) =>
 *   Effect.sync(() => t.stats()).pipe(Effect.map((s) => s.queuedBytes))
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface TransportStats {
  /** Bytes accepted by `write` but still in user space (Node's `writableLength`). */
  readonly queuedBytes: number
  /**
   * Bytes the kernel accepted so far, exact, including the accepted part of a write in progress
   * (for sockets it is read from libuv's write queue, not Node's `bytesWritten − writableLength`,
   * which misses that part). For TLS it counts plaintext whose complete TLS records the kernel
   * accepted (the bytes the peer can decrypt).
   */
  readonly bytesHandedToKernel: number
  /** Bytes read from the peer so far. */
  readonly bytesRead: number
  readonly state: TransportState
  /** The underlying socket, for kernel probes (undefined for in-memory transports). */
  readonly socket: Net.Socket | undefined
}

/**
 * The byte-duplex every connection sits on.
 *
 * The TCP and TLS transports are class instances whose members are methods and getters on the
 * prototype (an idle connection pays no closure per member). To decorate one, delegate to it
 * (`write: (chunks) => inner.write(chunks)`, `get destroy() { return inner.destroy }`) rather than
 * spreading it (`{ ...inner }` copies none of its members), and call its members on it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Transport } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const t = yield* Transport.connectTcp({ host: "127.0.0.1", port: 7000 })
 *     yield* t.write([new TextEncoder().encode("hello\n")])
 *     yield* t.shutdownWrite
 *   })
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface Transport {
  readonly kind: "tcp" | "tls" | "memory" | "websocket"
  readonly remoteAddress: string | undefined
  readonly localAddress: string | undefined
  /**
   * Takes every inbound chunk buffered so far, waiting for at least one.
   * An empty array means the peer's EOF: no more bytes will come.
   * Single reader only. While nobody calls `read` and the buffer is over its
   * high-water mark, the socket is paused (TCP backpressure reaches the peer).
   */
  readonly read: Effect.Effect<ReadonlyArray<Uint8Array>, TransportError>
  /**
   * `read` without waiting, for readers driven by the transport's callbacks (a connection parks
   * no fiber on an idle socket): every chunk buffered so far, `[]` for the EOF, the read failure,
   * or `undefined` when there is nothing yet. The same single-reader rule and backpressure as
   * `read` (the socket is paused above the high-water mark until the chunks are taken).
   * Optional: a connection over a transport without it reads with a fiber.
   */
  readonly unsafePoll?: (() => ReadonlyArray<Uint8Array> | TransportError | undefined) | undefined
  /**
   * Registers the push reader's wake-up (one per transport; a later call replaces it). It is
   * called synchronously whenever `unsafePoll` may have something new: a chunk, the EOF, a
   * failure, the socket closing. Provided together with `unsafePoll`.
   */
  readonly unsafeOnReadable?: ((wake: () => void) => void) | undefined
  /**
   * Writes a batch of chunks as one operation (one syscall where possible);
   * completes when all of it has been handed to the kernel. Single writer only.
   */
  readonly write: (chunks: ReadonlyArray<Uint8Array>) => Effect.Effect<void, TransportError>
  /**
   * `write` in callback form, for a writer driven by callbacks (a connection's writer over it
   * runs without a fiber): the same batch, single-writer rule and accounting; `callback` is called
   * once, with `undefined` once all of it has been handed to the kernel, or with the failure (it may
   * be called synchronously, e.g. on a closed socket). Optional: a connection over a transport
   * without it writes with a fiber. A decorator that overrides `write` must override this too
   * (or leave it out). (since 0.4.0)
   */
  readonly unsafeWrite?:
    | ((chunks: ReadonlyArray<Uint8Array>, callback: (error: TransportError | undefined) => void) => void)
    | undefined
  /** Sends FIN once everything written has been flushed; completes when it is sent. */
  readonly shutdownWrite: Effect.Effect<void, TransportError>
  /** Destroys the socket at once (idempotent). Pending reads and writes fail. */
  readonly destroy: Effect.Effect<void>
  /** Synchronous snapshot of the counters. */
  readonly stats: () => TransportStats
  /**
   * How many bytes of one write (the very array passed to `write`) the kernel accepted: 0 if that
   * array is not the latest write, its whole length once the write completed, the exact part in
   * between (TLS: the plaintext of complete records). After `destroy` it keeps answering with the
   * value read right before the socket was destroyed (nothing can reach the kernel after that).
   * `undefined` when the transport cannot tell (then a connection counts the write as not accepted).
   * Optional: transports without it (WebSocket) get that fallback.
   */
  readonly unsafeKernelAccepted?: ((chunks: ReadonlyArray<Uint8Array>) => number | undefined) | undefined
  /**
   * Optional control lane: writes the transport itself needs made (e.g. a
   * WebSocket PONG). They are run by the connection's writer fiber, ahead of
   * queued data, so the socket still has exactly one writer.
   */
  readonly control?: ControlLane | undefined
}

/**
 * Control writes a transport asks its connection's writer fiber to perform.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Transport } from "effect-tether"
 *
 * // inside a transport: on a ping, queue the pong for the writer fiber
 * const onPing = (lane: Transport.ControlLane, pong: Effect.Effect<void, Transport.TransportError>) => lane
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface ControlLane {
  /** Takes every pending control write (empty when there is none). */
  readonly unsafeTake: () => ReadonlyArray<Effect.Effect<void, TransportError>>
  /** Registers the writer's wake-up, called whenever a control write is queued. */
  readonly unsafeOnPending: (wake: () => void) => void
}

/**
 * Options shared by the socket transports.
 *
 * @example
 * ```ts
 * import type { Transport } from "effect-tether"
 *
 * const o: Transport.SocketOptions = { noDelay: true, readHighWaterMark: 256 * 1024 }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface SocketOptions {
  /** Disable Nagle's algorithm (default true: the writer batches already). */
  readonly noDelay?: boolean | undefined
  /** TCP keepalive initial delay; `false` to disable (default 30 s). */
  readonly keepAlive?: Duration.DurationInput | false | undefined
  /** Bytes buffered in user space on the read side before the socket is paused (default 256 KiB). */
  readonly readHighWaterMark?: number | undefined
}

/**
 * Opens a TCP connection as a scoped resource (destroyed when the scope closes;
 * a graceful close is the Connection's job).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Transport } from "effect-tether"
 *
 * const t = Transport.connectTcp({ host: "127.0.0.1", port: 7000, connectTimeout: "5 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connectTcp: (
  options: {
    readonly host?: string | undefined
    readonly port: number
    readonly connectTimeout?: Duration.DurationInput | undefined
  } & SocketOptions
) => Effect.Effect<Transport, TransportError, Scope.Scope> = net.connectTcp

/**
 * Opens a TLS connection as a scoped resource (completes after the TLS handshake).
 *
 * @example
 * ```ts
 * import { Transport } from "effect-tether"
 *
 * const t = Transport.connectTls({ host: "localhost", port: 7443, ca: [] })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const connectTls: (
  options: Tls.ConnectionOptions & {
    readonly host?: string | undefined
    readonly port: number
    readonly connectTimeout?: Duration.DurationInput | undefined
  } & SocketOptions
) => Effect.Effect<Transport, TransportError, Scope.Scope> = net.connectTls

/**
 * Wraps an already connected socket (e.g. one accepted by a server, or a
 * `TLSSocket`) as a scoped transport. The socket must have been created with
 * `allowHalfOpen: true` so that the peer's FIN does not end our side.
 *
 * @example
 * ```ts
 * import * as Net from "node:net"
 * import { Transport } from "effect-tether"
 *
 * const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
 *   // Transport.fromSocket(socket) inside a scope
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromSocket: (
  socket: Net.Socket,
  options?: SocketOptions & { readonly kind?: "tcp" | "tls" | undefined }
) => Effect.Effect<Transport, never, Scope.Scope> = net.fromSocket

/**
 * The scriptable far end of an in-memory transport: it sees what the near end
 * wrote and can be told to misbehave.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Transport } from "effect-tether"
 *
 * Effect.gen(function*() {
 *   const [transport, peer] = yield* Transport.memoryPair()
 *   peer.setReading(false)   // stop reading: writes stall once the "kernel buffer" is full
 *   peer.setIgnoreFin(true)  // never answer our FIN with its own
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryPeer {
  /** Sends bytes to the near end. */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void>
  /** Takes the bytes the near end wrote (waits for at least one chunk; empty = near end sent FIN). */
  readonly read: Effect.Effect<ReadonlyArray<Uint8Array>>
  /** Everything the near end wrote that the peer has accepted, concatenated. */
  readonly received: () => Uint8Array
  /** Sends FIN to the near end. */
  readonly end: Effect.Effect<void>
  /** Resets the connection: the near end's pending and future reads and writes fail. */
  readonly reset: Effect.Effect<void>
  /** Whether the peer accepts bytes; when false, near-end writes stall once `kernelBufferBytes` are pending. */
  readonly setReading: (reading: boolean) => void
  /** When true, the peer does not answer the near end's FIN with its own EOF. */
  readonly setIgnoreFin: (ignore: boolean) => void
  /** Each near-end write completes only after this delay (virtual time under TestClock). */
  readonly setWriteDelay: (delay: Duration.DurationInput) => void
  /** When true, the near end's `shutdownWrite` never completes. */
  readonly setShutdownHangs: (hang: boolean) => void
  /** Whether the near end sent FIN. */
  readonly finReceived: () => boolean
  /** Whether the near end was destroyed. */
  readonly destroyed: () => boolean
  /** Completes when the near end is destroyed. */
  readonly awaitDestroyed: Effect.Effect<void>
}

/**
 * Makes an in-memory transport and the scriptable far end it talks to. By
 * default the far end reads everything and answers FIN with FIN, so a graceful
 * close completes at once.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Transport } from "effect-tether"
 *
 * Effect.gen(function*() {
 *   const [transport, peer] = yield* Transport.memoryPair({ kernelBufferBytes: 1024 })
 *   yield* transport.write([new Uint8Array([1, 2, 3])])
 *   peer.received() // Uint8Array [1, 2, 3]
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const memoryPair: (options?: {
  /** Bytes the far end's "kernel" buffers while it is not reading (default 64 KiB). */
  readonly kernelBufferBytes?: number | undefined
  /** Near-end inbound buffer before reads are backpressured (default 256 KiB). */
  readonly readHighWaterMark?: number | undefined
}) => Effect.Effect<readonly [Transport, MemoryPeer]> = memory.memoryPair

/**
 * The inbound bytes of a transport as a stream that ends on the peer's EOF.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Transport } from "effect-tether"
 *
 * const dump = (t: Transport.Transport) => Stream.runForEach(Transport.stream(t), (chunk) => Effect.log(chunk.length))
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const stream = (transport: Transport): Stream.Stream<Uint8Array, TransportError> =>
  Stream.repeatEffectChunkOption(
    Effect.matchEffect(transport.read, {
      onFailure: (e) => Effect.fail(Option.some(e)),
      onSuccess: (chunks) =>
        chunks.length === 0 ? Effect.fail(Option.none()) : Effect.succeed(Chunk.unsafeFromArray(chunks.slice()))
    })
  )
