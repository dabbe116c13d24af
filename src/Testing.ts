/**
 * The fault-injection kit tether's own tests use, for testing your code built
 * on tether: an in-memory transport pair with a misbehaving far end, a memory
 * dial target for `Dialer` tests, TestClock helpers, and raw misbehaving TCP
 * peers on loopback.
 *
 * Import it from its own entry point, `effect-tether/testing` (also `effect-tether/Testing`, as every module; it is not part of the main export):
 *
 * ```ts
 * import * as Testing from "effect-tether/Testing"
 * ```
 *
 * Every peer is a scoped resource: its server listens on an ephemeral loopback
 * port, and closing the scope destroys every accepted socket and closes the
 * server. The TestClock helpers (`settle`, `awaitSleeper`, `adjustTo`) are for
 * `it.effect` / `it.scoped`; the peers and `within` are for live tests
 * (`it.live` / `it.scopedLive`), where sockets and real time exist.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Net from "node:net"
import type * as Dialer from "./Dialer.js"
import type * as Framing from "./Framing.js"
import * as internal from "./internal/testing.js"
import * as tcp from "./internal/testingTcp.js"
import type * as Listener from "./Listener.js"
import * as Transport from "./Transport.js"
import type * as Watchdog from "./Watchdog.js"

// ---------------------------------------------------------------------------
// in memory

/**
 * The scriptable far end of an in-memory transport (the same type as
 * `Transport.MemoryPeer`): it sees what the near end wrote and can stop
 * reading, ignore FIN, delay writes, hang `shutdownWrite` or reset.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.gen(function*() {
 *   const [transport, peer]: readonly [unknown, Testing.MemoryPeer] = yield* Testing.memoryPair()
 *   peer.setReading(false) // writes stall once its "kernel buffer" is full
 *   peer.setIgnoreFin(true) // our FIN is never answered
 * })
 * ```
 *
 * @since 0.1.0
 * @category in memory
 */
export type MemoryPeer = Transport.MemoryPeer

/**
 * An in-memory transport and its misbehaving far end (`Transport.memoryPair`,
 * re-exported here). Everything it does is in virtual time under TestClock.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection, Framing } from "effect-tether"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const [transport, peer] = yield* Testing.memoryPair({ kernelBufferBytes: 1024 })
 *   const conn = yield* Connection.make(transport)
 *   yield* conn.send(Framing.utf8("hello"))
 *   yield* Testing.settle
 *   Testing.receivedFrames(peer) // ["hello"]
 * }))
 * ```
 *
 * @since 0.1.0
 * @category in memory
 */
export const memoryPair: (options?: {
  readonly kernelBufferBytes?: number | undefined
  readonly readHighWaterMark?: number | undefined
}) => Effect.Effect<readonly [Transport.Transport, MemoryPeer]> = Transport.memoryPair

/**
 * An in-memory dial target for `Dialer` (and `Hub`) tests: pass its `connect`
 * as `Dialer.Options.connect`; every connect attempt is recorded with its
 * clock time, and each accepted connection's far end is queued in `peers`.
 *
 * @example
 * ```ts
 * import { Effect, Queue, Schedule } from "effect"
 * import { Dialer } from "effect-tether"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const server = yield* Testing.memoryServer()
 *   const dialer = yield* Dialer.make({ connect: server.connect, backoff: Schedule.spaced("1 second") })
 *   const peer = yield* Queue.take(server.peers)
 *   yield* Testing.awaitStatus(dialer, "Connected")
 *   yield* peer.reset // the dialer goes to Backoff, then redials
 * }))
 * ```
 *
 * @since 0.1.0
 * @category in memory
 */
export interface MemoryServer {
  /** Use as `Dialer.Options.connect`. */
  readonly connect: Effect.Effect<Transport.Transport, Transport.TransportError, Scope.Scope>
  /** Far ends of the accepted connections, in order. */
  readonly peers: Queue.Dequeue<MemoryPeer>
  /** While true, connects fail with `ECONNREFUSED`. */
  readonly setRefusing: (refusing: boolean) => void
  /** While true, connects never complete (until the dialer's connect timeout). */
  readonly setHanging: (hanging: boolean) => void
  /** Clock millis of every connect attempt (virtual under TestClock). */
  readonly attempts: ReadonlyArray<number>
  /** Applied to every new far end before the dialer sees it. */
  readonly setup: { current: (peer: MemoryPeer) => void }
}

/**
 * Makes a {@link MemoryServer}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.gen(function*() {
 *   const server = yield* Testing.memoryServer({ kernelBufferBytes: 4096 })
 *   server.setRefusing(true) // every connect fails with ECONNREFUSED until set back
 *   server.setup.current = (peer) => peer.setIgnoreFin(true)
 * })
 * ```
 *
 * @since 0.1.0
 * @category in memory
 */
export const memoryServer: (options?: {
  /** The far ends' "kernel buffer" (see {@link memoryPair}). */
  readonly kernelBufferBytes?: number | undefined
  /** Capacity of the `peers` queue (default 4096). */
  readonly capacity?: number | undefined
}) => Effect.Effect<MemoryServer> = internal.memoryServer

/**
 * Decodes frames (4-byte length prefix unless `codec` says otherwise) from raw
 * bytes, as text; throws on a malformed stream.
 *
 * @example
 * ```ts
 * import { Framing } from "effect-tether"
 * import * as Testing from "effect-tether/Testing"
 *
 * Testing.decodeFrames(Framing.encode(Framing.lengthPrefixed(), Framing.utf8("a"))) // ["a"]
 * ```
 *
 * @since 0.1.0
 * @category in memory
 */
export const decodeFrames: (bytes: Uint8Array, codec?: Framing.Codec) => Array<string> = internal.decodeFrames

/**
 * The complete frames a memory far end has received so far, as text.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.gen(function*() {
 *   const [, peer] = yield* Testing.memoryPair()
 *   const frames: Array<string> = Testing.receivedFrames(peer)
 * })
 * ```
 *
 * @since 0.1.0
 * @category in memory
 */
export const receivedFrames: (peer: MemoryPeer, codec?: Framing.Codec) => Array<string> = internal.receivedFrames

// ---------------------------------------------------------------------------
// scheduling

/**
 * A tagged failure of the kit's bounded waits (a condition never held, nobody
 * slept until the time asked for, a live wait timed out).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Testing.eventually(() => false, { maxTurns: 10 }).pipe(
 *   Effect.catchAll((e: Testing.TestingError) => Effect.succeed(e.message))
 * )
 * ```
 *
 * @since 0.1.0
 * @category errors
 */
export type TestingError = internal.TestingError

/**
 * A kernel probe (`Watchdog.TcpProbe`) that answers what `sample` says on each
 * read — a row, `"absent"` (the kernel no longer lists the socket) or
 * `undefined` (nothing known) — and counts its reads: drive `sendStall`,
 * `peerGone` and `reaper` under TestClock without real kernel tables.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Watchdog } from "effect-tether"
 * import * as Testing from "effect-tether/Testing"
 *
 * let gone = false
 * const probe = Testing.scriptedProbe(() => (gone ? "absent" : undefined))
 * const withProbe = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.provideService(self, Watchdog.TcpProbe, probe)
 * ```
 *
 * @since 0.1.0
 * @category watchdogs
 */
export const scriptedProbe: (
  sample: () => Watchdog.TcpInfo | "absent" | undefined
) => Watchdog.TcpProbeService = internal.scriptedProbe

/**
 * One turn of the event loop (`setImmediate`). It passes no time, real or
 * virtual: it lets I/O callbacks and continuations already due run — a
 * connection's writer fiber resumes this way.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.zipRight(Testing.macrotask, Effect.log("after one turn"))
 * ```
 *
 * @since 0.1.0
 * @category scheduling
 */
export const macrotask: Effect.Effect<void> = internal.macrotask

/**
 * Lets every ready fiber run, writers included (a few event-loop turns and
 * yields); no virtual time passes. Use it after a send or a `TestClock.adjust`
 * before asserting on what a memory peer received.
 *
 * @example
 * ```ts
 * import { Effect, TestClock } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.gen(function*() {
 *   yield* TestClock.adjust("1 second")
 *   yield* Testing.settle // the fibers woken by the adjust have done their work
 * })
 * ```
 *
 * @since 0.1.0
 * @category scheduling
 */
export const settle: Effect.Effect<void> = internal.settle

/**
 * Lets fibers and I/O run, one event-loop turn at a time, until `condition`
 * holds; fails with a {@link TestingError} after `maxTurns` turns (default
 * 5000) instead of hanging. No virtual time passes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * let done = false
 * const program = Effect.gen(function*() {
 *   yield* Effect.fork(Effect.sync(() => {
 *     done = true
 *   }))
 *   yield* Testing.eventually(() => done, { what: "the worker ran" })
 * })
 * ```
 *
 * @since 0.1.0
 * @category scheduling
 */
export const eventually: (
  condition: () => boolean,
  options?: { readonly what?: string | undefined; readonly maxTurns?: number | undefined }
) => Effect.Effect<void, TestingError> = internal.eventually

/**
 * Waits until some fiber sleeps until `at` (TestClock millis): a fiber forked
 * or woken just now may not have reached its next sleep yet, and adjusting the
 * clock before it has would skip its deadline. Bounded: fails with a
 * {@link TestingError} listing the sleepers after `maxTurns` (default 5000).
 *
 * @example
 * ```ts
 * import { Effect, TestClock } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.gen(function*() {
 *   yield* Effect.fork(Effect.sleep("10 seconds"))
 *   yield* Testing.awaitSleeper(10_000)
 *   yield* TestClock.adjust("10 seconds")
 * })
 * ```
 *
 * @since 0.1.0
 * @category scheduling
 */
export const awaitSleeper: (
  at: number,
  options?: { readonly maxTurns?: number | undefined }
) => Effect.Effect<void, TestingError> = internal.awaitSleeper

/**
 * Moves TestClock to the absolute time `millis` (running every sleeper due on
 * the way).
 *
 * @example
 * ```ts
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Testing.adjustTo(30_000) // TestClock.currentTimeMillis is now 30000
 * ```
 *
 * @since 0.1.0
 * @category scheduling
 */
export const adjustTo: (millis: number) => Effect.Effect<void> = internal.adjustTo

/**
 * Fails with a {@link TestingError} naming `what` if `self` does not complete
 * within `duration`: a bounded wait for an event in a live test (under
 * TestClock it never fires on its own).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Testing.within("2 seconds", "the reply", Effect.never)
 * ```
 *
 * @since 0.1.0
 * @category scheduling
 */
export const within: <A, E, R>(
  duration: Duration.DurationInput,
  what: string,
  self: Effect.Effect<A, E, R>
) => Effect.Effect<A, E | TestingError, R> = internal.within

/**
 * Completes when the dialer's status becomes `status` (not when it already
 * is: it waits for the next change to it, as `statusChanges` reports it).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { Dialer } from "effect-tether"
 * import * as Testing from "effect-tether/Testing"
 *
 * const connected = (dialer: Dialer.Dialer) => Testing.awaitStatus(dialer, "Connected")
 * ```
 *
 * @since 0.1.0
 * @category scheduling
 */
export const awaitStatus: (dialer: Dialer.Dialer, status: Dialer.Status) => Effect.Effect<void> =
  internal.awaitStatus

/**
 * Waits (on events, not time) until a server's session registry satisfies
 * `predicate`, and returns those rows.
 *
 * @example
 * ```ts
 * import type { Listener } from "effect-tether"
 * import * as Testing from "effect-tether/Testing"
 *
 * const twoSessions = (server: Listener.Server) => Testing.awaitSessions(server, (rows) => rows.length === 2)
 * ```
 *
 * @since 0.1.0
 * @category scheduling
 */
export const awaitSessions: (
  server: Listener.Server,
  predicate: (rows: ReadonlyArray<Listener.SessionInfo>) => boolean
) => Effect.Effect<ReadonlyArray<Listener.SessionInfo>> = internal.awaitSessions

// ---------------------------------------------------------------------------
// TCP peers

/**
 * A raw TCP server on loopback standing in for the far end. Every accepted
 * socket is queued in `accepted` (and kept in `sockets`); closing the scope
 * destroys them all and closes the server.
 *
 * @example
 * ```ts
 * import { Effect, Queue } from "effect"
 * import { Connection } from "effect-tether"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const peer = yield* Testing.peer()
 *   const conn = yield* Connection.connectTcp({ port: peer.port })
 *   const socket = yield* Queue.take(peer.accepted)
 *   socket.destroy() // the far end vanishes
 * }))
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export interface Peer {
  /** The loopback address it listens on (`127.0.0.1` unless asked otherwise). */
  readonly host: string
  /** The ephemeral port it listens on. */
  readonly port: number
  /** Accepted sockets, in order. */
  readonly accepted: Queue.Dequeue<Net.Socket>
  /** The first accepted socket (can be awaited any number of times). */
  readonly first: Effect.Effect<Net.Socket>
  /** Every accepted socket so far. */
  readonly sockets: ReadonlyArray<Net.Socket>
  /** Bytes the peer has read, over all its sockets (peers that do not read count 0). */
  readonly bytesReceived: () => number
}

/**
 * Options of {@link peer}.
 *
 * @since 0.1.0
 * @category tcp peers
 */
export interface PeerOptions {
  /** Where to listen (default `127.0.0.1`). */
  readonly host?: string | undefined
  /** Keep our side open after the client's FIN (Node's `allowHalfOpen`). */
  readonly allowHalfOpen?: boolean | undefined
  /** Accepted sockets start paused: nothing is read until resumed (Node's `pauseOnConnect`). */
  readonly pauseOnConnect?: boolean | undefined
  /** Called with every accepted socket: the peer's behaviour. */
  readonly onSocket?: ((socket: Net.Socket) => void) | undefined
}

/**
 * A plain raw peer, scripted by you: `allowHalfOpen` keeps its side open after
 * our FIN, `pauseOnConnect` leaves accepted sockets unread, `onSocket` runs
 * synchronously on every accepted socket. It reads nothing unless you attach a
 * `data` listener or `resume()` the socket.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const echo = Testing.peer({ onSocket: (socket) => socket.pipe(socket) })
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export const peer: (options?: PeerOptions) => Effect.Effect<Peer, never, Scope.Scope> = tcp.peer

/**
 * A stubborn peer: it reads (and discards) everything, never ends its side and
 * never closes — our FIN goes unanswered, so a graceful close can only end by
 * its linger bound.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection } from "effect-tether"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const peer = yield* Testing.stubbornPeer()
 *   const conn = yield* Connection.connectTcp({ port: peer.port, lingerTimeout: "500 millis" })
 *   yield* conn.close() // completes at ~500 ms, destroying the socket
 * }))
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export const stubbornPeer: (options?: { readonly host?: string | undefined }) => Effect.Effect<Peer, never, Scope.Scope> =
  tcp.stubbornPeer

/**
 * A peer whose process is alive but never reads (`pauseOnConnect`): our
 * writes fill its kernel receive buffer, then ours, then the send queue. It
 * does not see our FIN either. `resume` makes it read (and discard) from then
 * on, on every socket, current and future.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const peer = yield* Testing.nonReaderPeer()
 *   // ... connect, send until the watchdog acts ...
 *   yield* peer.resume
 * }))
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export interface NonReaderPeer extends Peer {
  /** Starts reading (and discarding) on every socket, current and future. */
  readonly resume: Effect.Effect<void>
}

/**
 * Makes a {@link NonReaderPeer}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Connection, Watchdog } from "effect-tether"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const peer = yield* Testing.nonReaderPeer()
 *   const conn = yield* Connection.connectTcp({
 *     port: peer.port,
 *     watchdogs: [Watchdog.reaper({ stallTimeout: "2 seconds" })]
 *   })
 * }))
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export const nonReaderPeer: (
  options?: { readonly host?: string | undefined }
) => Effect.Effect<NonReaderPeer, never, Scope.Scope> = tcp.nonReaderPeer

/**
 * A half-open peer: it sends its FIN as soon as it accepts (its write side is
 * done) but keeps its read side open and reads what we send — the connection
 * stays half-open until our side sends its own FIN or the scope closes.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Connection } from "effect-tether"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const peer = yield* Testing.halfOpenPeer()
 *   const conn = yield* Connection.connectTcp({ port: peer.port })
 *   yield* Stream.runDrain(conn.incoming) // ends at once: the peer's EOF
 * }))
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export const halfOpenPeer: (options?: { readonly host?: string | undefined }) => Effect.Effect<Peer, never, Scope.Scope> =
  tcp.halfOpenPeer

/**
 * A peer that resets (RST) each connection `afterMillis` after accepting it
 * and/or once it has read `afterBytes` on it; it reads everything until then.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const midStream = Testing.resetPeer({ afterBytes: 64 * 1024 })
 * const early = Testing.resetPeer({ afterMillis: "50 millis" })
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export const resetPeer: (options: {
  readonly afterMillis?: Duration.DurationInput | undefined
  readonly afterBytes?: number | undefined
  readonly host?: string | undefined
}) => Effect.Effect<Peer, never, Scope.Scope> = tcp.resetPeer

/**
 * A slow but alive peer: it reads about `bytesPerSecond`, in slices every
 * `tick` (default 100 ms), and never closes. A send-stall watchdog must not
 * reap it: it makes progress.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const dialUp = Testing.slowAlivePeer({ bytesPerSecond: 64 * 1024 })
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export const slowAlivePeer: (options: {
  readonly bytesPerSecond: number
  readonly tick?: Duration.DurationInput | undefined
  readonly host?: string | undefined
}) => Effect.Effect<Peer, never, Scope.Scope> = tcp.slowAlivePeer

/**
 * A peer that accepts TCP and never answers the WebSocket upgrade: the HTTP
 * request head each connection sent is queued in `upgradeRequests`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const peer = yield* Testing.silentWebSocketPeer()
 *   const url = `ws://127.0.0.1:${peer.port}/`
 *   // WebSocket.connect(url, { handshakeTimeout: "1 second" }) must fail after 1 s
 * }))
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export interface SilentWebSocketPeer extends Peer {
  /** The HTTP request head (request line and headers) each connection sent. */
  readonly upgradeRequests: Queue.Dequeue<string>
}

/**
 * Makes a {@link SilentWebSocketPeer}.
 *
 * @example
 * ```ts
 * import { Effect, Queue } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const peer = yield* Testing.silentWebSocketPeer()
 *   const head = yield* Queue.take(peer.upgradeRequests) // "GET / HTTP/1.1\r\n..."
 * }))
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export const silentWebSocketPeer: (
  options?: { readonly host?: string | undefined }
) => Effect.Effect<SilentWebSocketPeer, never, Scope.Scope> = tcp.silentWebSocketPeer

/**
 * A loopback port nothing listens on (yet): for "connection refused" and for
 * servers that come up later on a known port.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.map(Testing.freePort(), (port) => `nothing listens on ${port}`)
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export const freePort: (host?: string) => Effect.Effect<number> = tcp.freePort

/**
 * Collects the 4-byte length-prefixed frames a raw socket receives; the
 * returned array fills as data arrives.
 *
 * @example
 * ```ts
 * import { Effect, Queue } from "effect"
 * import * as Testing from "effect-tether/Testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const peer = yield* Testing.peer()
 *   const socket = yield* Queue.take(peer.accepted)
 *   const frames = Testing.collectFrames(socket) // Buffer payloads, in order
 * }))
 * ```
 *
 * @since 0.1.0
 * @category tcp peers
 */
export const collectFrames: (socket: Net.Socket) => ReadonlyArray<Buffer> = tcp.collectFrames
