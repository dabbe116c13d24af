/**
 * The message seam between a byte transport and a connection (tokio-util's `Framed`, Netty's
 * codec handlers): the connection's single writer hands it whole batches of messages, its push
 * reader takes decoded messages out of it. `Framed.fromTransport(transport, codec)` builds one
 * over any {@link Transport.Transport} with a typed {@link Framing.Codec}; a transport that speaks
 * messages natively (WebSocket) can implement the interface itself.
 *
 * A `Framed` has one writer and one reader, like the transport under it: the connection that owns
 * it. It is not exposed on a `Connection`, so nothing can write around that writer.
 *
 * @since 0.3.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { DisconnectReason } from "./DisconnectReason.js"
import type * as Framing from "./Framing.js"
import type { Encoded } from "./internal/connection/models.js"
import * as internal from "./internal/connection/framed.js"
import type * as Transport from "./Transport.js"

/**
 * What one `unsafeRead` found: a byte count (data was taken, and every message it completed was
 * appended to `out`: call again), `"pending"` (nothing more now: wait for the readable wake-up),
 * `"eof"` (the peer's end of stream; final), a `TransportError` (the read side failed; final), or a
 * `FrameError` (the inbound stream is malformed; later calls discard bytes until `"eof"`).
 *
 * @example
 * ```ts
 * import type { Framed } from "effect-tether"
 *
 * const describe = (r: Framed.ReadResult) => typeof r === "number" ? `${r} bytes` : typeof r === "string" ? r : r._tag
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export type ReadResult = number | "pending" | "eof" | Transport.TransportError | Framing.FrameError

/**
 * How much of the batch written last reached the kernel: `written` messages (from the first) in
 * full, whether the next one was `truncated` (cut in the middle), and the `bytes` accepted.
 *
 * @example
 * ```ts
 * import type { Framed } from "effect-tether"
 *
 * const none: Framed.Split = { written: 0, truncated: false, bytes: 0 }
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface Split {
  readonly written: number
  readonly truncated: boolean
  readonly bytes: number
}

/**
 * A message duplex with one writer and one reader.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Framed, Framing, Transport } from "effect-tether"
 *
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const transport = yield* Transport.connectTcp({ port: 7000 })
 *     const framed = yield* Framed.fromTransport(transport, Framing.newline())
 *     yield* framed.write([Framing.utf8("hello")])
 *   })
 * )
 * ```
 *
 * @since 0.3.0
 * @category models
 */
export interface Framed<In = Uint8Array, Out = In> {
  readonly kind: Transport.Transport["kind"]
  readonly remoteAddress: string | undefined
  readonly localAddress: string | undefined
  /** The codec, when the messages are bytes framed by one (undefined for native message transports). */
  readonly codec: Framing.Codec<In, Out>
  /** Validates one outbound message before it is queued (too large, not encodable). */
  readonly check: (message: Out) => Framing.FrameError | undefined
  /** Wire bytes of one outbound message: the weight the send queue's byte bound counts. */
  readonly weight: (message: Out | Encoded<Out>) => number
  /**
   * Encodes and writes one batch as one operation (one syscall where possible); succeeds with
   * the bytes written once all of it has been handed to the kernel. Single writer only.
   */
  readonly write: (batch: ReadonlyArray<Out | Encoded<Out>>) => Effect.Effect<number, Transport.TransportError>
  /**
   * `write` in callback form (called on the seam): `callback` gets `undefined` and the bytes
   * written once all of the batch has been handed to the kernel, or the failure; once, possibly
   * synchronously. Optional: where it is present, a connection's writer runs without a fiber —
   * no fiber per burst of sends, no fiber hand-off between a write's completion and the next
   * batch. A decorator that overrides `write` must override this too (or set it `undefined`).
   * (since 0.4.0)
   */
  readonly unsafeWrite?:
    | ((
      batch: ReadonlyArray<Out | Encoded<Out>>,
      callback: (error: Transport.TransportError | undefined, bytes: number) => void
    ) => void)
    | undefined
  /**
   * For the batch passed to the latest `write` (the same array): how much of it the kernel
   * accepted. Exact where the transport can tell (TCP, TLS, memory); read it before `destroy`
   * for the last word (the transport freezes the figure at its destroy). Any other array: nothing.
   */
  readonly unsafeSplit: (batch: ReadonlyArray<Out | Encoded<Out>>) => Split
  /** Takes what has arrived, without waiting: see {@link ReadResult}. Single reader only. */
  readonly unsafeRead: (out: Array<In>) => ReadResult
  /** Registers the reader's wake-up, called synchronously whenever `unsafeRead` may have news. */
  readonly unsafeOnReadable: (wake: () => void) => void
  /**
   * The reason a peer's end of stream closes the connection with (default `PeerClosed({})`): a
   * WebSocket's carries the Close frame's code and reason. Read once, when `unsafeRead` answers
   * `"eof"`. (since 0.3.0)
   */
  readonly unsafeEofReason?: (() => DisconnectReason) | undefined
  /** Writes the transport itself asks for (e.g. WebSocket PONGs), run by the single writer. */
  readonly control: Transport.ControlLane | undefined
  /** Sends FIN once everything written has been flushed. */
  readonly shutdownWrite: Effect.Effect<void, Transport.TransportError>
  /** Destroys the underlying socket at once (idempotent). */
  readonly destroy: Effect.Effect<void>
  readonly stats: () => Transport.TransportStats
  /** The byte transport underneath (for the owner of this `Framed` only). */
  readonly transport: Transport.Transport
}

/**
 * A {@link Framed} over a byte transport with a codec. Transports with a push read
 * (`unsafePoll`, every built-in one) are read in their callbacks; others through one pulling fiber
 * in the current scope.
 *
 * The seam is a class instance whose members are methods on its prototype: decorate it by
 * delegation (`{ ...framed }` copies none of them), and call them on it. `weight` and `check`
 * may be passed point-free.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Framed, Framing, Transport } from "effect-tether"
 *
 * const framedTcp = Effect.flatMap(Transport.connectTcp({ port: 7000 }), (t) =>
 *   Framed.fromTransport(t, Framing.lengthPrefixed()))
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const fromTransport: <In, Out>(
  transport: Transport.Transport,
  codec: Framing.Codec<In, Out>
) => Effect.Effect<Framed<In, Out>, never, Scope.Scope> = internal.fromTransport
