/**
 * A WebSocket relay: providers connect and register, clients send requests,
 * the relay forwards each request to a provider session (round-robin) and
 * routes the response back to the client that asked, by request id.
 *
 * Every socket has exactly one writer — its tether connection's writer fiber
 * — however many client sessions forward to the same provider at once, and
 * heartbeats (PING/PONG through that writer) reap a silent peer.
 *
 * Protocol (JSON text messages):
 *
 *   provider → relay  {"type":"register","name":"p1"}           (first message, within --handshake-timeout)
 *   relay → provider  {"type":"request","id":17,"body":"..."}
 *   provider → relay  {"type":"response","id":17,"body":"..."}  or {"type":"response","id":17,"error":"..."}
 *   client → relay    {"type":"request","id":1,"body":"..."}    (ids chosen by the client)
 *   relay → client    {"type":"response","id":1,"body":"...","provider":"p1"}  or {..., "error":"..."}
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Duration, Effect, Stream } from "effect"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { DisconnectReason, Listener, WebSocket } from "effect-tether"
import { duration } from "../cli.js"

/** A message of the relay protocol. */
export type Message =
  | { readonly type: "register"; readonly name: string }
  | { readonly type: "request"; readonly id: number; readonly body: string }
  | {
    readonly type: "response"
    readonly id: number
    readonly body?: string
    readonly error?: string
    readonly provider?: string
  }

/** Encodes a protocol message as a WebSocket text message. */
export const encode = (m: Message): WebSocket.Message => WebSocket.text(JSON.stringify(m))

/** Decodes a WebSocket message into a protocol message (undefined if it is not one). */
export const decode = (m: WebSocket.Message): Message | undefined => {
  if (m._tag !== "Text") return undefined
  try {
    const v = JSON.parse(m.text) as Message
    return typeof v === "object" && v !== null && typeof v.type === "string" ? v : undefined
  } catch {
    return undefined
  }
}

/** Options of {@link relay}. */
export interface RelayOptions {
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** PING every `interval`; no answer within `timeout` → the peer is aborted (PeerTimeout). */
  readonly heartbeat?: { readonly interval: Duration.DurationInput; readonly timeout?: Duration.DurationInput } | undefined
  /** Time a provider has to register. */
  readonly handshakeTimeout?: Duration.DurationInput | undefined
  readonly maxConnections?: number | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /** Called for each notable event (registrations, disconnects). */
  readonly onEvent?: ((line: string) => Effect.Effect<void>) | undefined
}

interface Provider {
  readonly name: string
  readonly conn: WebSocket.Connection
  /** Relay ids forwarded to this provider and not answered yet. */
  readonly pending: Set<number>
}

interface Pending {
  readonly client: WebSocket.Connection
  readonly clientId: number
  readonly provider: Provider
}

/** Relay counters. */
export interface RelayStats {
  readonly providers: number
  readonly forwarded: number
  readonly answered: number
  /** Requests answered with an error by the relay itself (no provider, provider gone). */
  readonly failed: number
  readonly pending: number
}

/**
 * Starts the relay in the current scope. `/provider` and `/client` are the
 * two upgrade paths; anything else is refused with 404 before the upgrade.
 */
export const relay = (options: RelayOptions = {}) =>
  Effect.gen(function*() {
    const providers: Array<Provider> = []
    const pending = new Map<number, Pending>()
    let nextId = 0
    let turn = 0
    let forwarded = 0
    let answered = 0
    let failed = 0
    const event = options.onEvent ?? (() => Effect.void)

    // a reply to a client that has gone is dropped: its connection refuses the send
    const reply = (client: WebSocket.Connection, m: Message) => Effect.ignore(client.send(encode(m)))

    const forward = (client: WebSocket.Connection, id: number, body: string) =>
      Effect.suspend(() => {
        if (providers.length === 0) {
          failed++
          return reply(client, { type: "response", id, error: "no provider" })
        }
        const provider = providers[turn++ % providers.length]!
        const rid = ++nextId
        pending.set(rid, { client, clientId: id, provider })
        provider.pending.add(rid)
        forwarded++
        // many client sessions send to the same provider at once: its writer fiber serializes them
        return provider.conn.send(encode({ type: "request", id: rid, body })).pipe(
          Effect.catchTag("ConnectionClosed", () => {
            pending.delete(rid)
            provider.pending.delete(rid)
            failed++
            return reply(client, { type: "response", id, error: `provider ${provider.name} gone` })
          })
        )
      })

    const providerSession = (conn: WebSocket.Connection) =>
      Effect.gen(function*() {
        let self: Provider | undefined
        yield* Stream.runForEach(conn.incoming, (frame) =>
          Effect.gen(function*() {
            const m = decode(frame)
            if (self === undefined) {
              if (m?.type !== "register") return yield* conn.close("expected register")
              self = { name: m.name, conn, pending: new Set() }
              providers.push(self)
              yield* Listener.handshakeDone
              yield* event(`provider ${m.name} registered (${conn.id})`)
              return
            }
            if (m?.type !== "response") return
            const p = pending.get(m.id)
            if (p === undefined) return
            pending.delete(m.id)
            self.pending.delete(m.id)
            answered++
            yield* reply(p.client, {
              type: "response",
              id: p.clientId,
              provider: self.name,
              ...(m.error !== undefined ? { error: m.error } : { body: m.body ?? "" })
            })
          })).pipe(
            Effect.ensuring(Effect.suspend(() => {
              if (self === undefined) return Effect.void
              const me = self
              providers.splice(providers.indexOf(me), 1)
              // every request it still owed is answered with an error
              const owed = Array.from(me.pending)
              me.pending.clear()
              return Effect.zipRight(
                Effect.forEach(owed, (rid) => {
                  const p = pending.get(rid)
                  pending.delete(rid)
                  if (p === undefined) return Effect.void
                  failed++
                  return reply(p.client, { type: "response", id: p.clientId, error: `provider ${me.name} gone` })
                }, { discard: true }),
                Effect.flatMap(conn.closed, (r) =>
                  event(`provider ${me.name} gone (${r._tag}: ${DisconnectReason.describe(r)}), ${owed.length} requests failed`))
              )
            }))
          )
      })

    const clientSession = (conn: WebSocket.Connection) =>
      Effect.gen(function*() {
        yield* Listener.handshakeDone
        yield* Stream.runForEach(conn.incoming, (frame) => {
          const m = decode(frame)
          return m?.type === "request"
            ? forward(conn, m.id, m.body)
            : reply(conn, { type: "response", id: -1, error: "expected a request" })
        })
      }).pipe(
        // answers still owed to a client that left are dropped when they come
        Effect.ensuring(Effect.sync(() => {
          for (const [rid, p] of pending) {
            if (p.client !== conn) continue
            p.provider.pending.delete(rid)
            pending.delete(rid)
          }
        }))
      )

    const server = yield* WebSocket.serve(
      {
        host: options.host ?? "127.0.0.1",
        port: options.port ?? 0,
        maxConnections: options.maxConnections ?? 10_000,
        handshakeTimeout: options.handshakeTimeout ?? "5 seconds",
        shutdownTimeout: options.shutdownTimeout ?? "5 seconds",
        heartbeat: options.heartbeat ?? { interval: "10 seconds", timeout: "5 seconds" },
        upgrade: (r) =>
          r.path === "/provider" || r.path === "/client"
            ? Effect.void
            : Effect.fail(new WebSocket.UpgradeRejected({ status: 404, message: "use /provider or /client" }))
      },
      (conn, request) => (request.path === "/provider" ? providerSession(conn) : clientSession(conn))
    )
    const stats = (): RelayStats => ({ providers: providers.length, forwarded, answered, failed, pending: pending.size })
    return { server, stats }
  })

// ---- command line ----

const usage = `WebSocket relay: providers register on /provider, clients send requests on /client,
each request is forwarded to a provider and the response routed back by id

usage: npx tsx examples/relay/relay.ts [options]

  --host <addr>                interface (default 127.0.0.1)
  --port <n>                   port (default 8080)
  --heartbeat <dur>            PING interval (default 10s)
  --heartbeat-timeout <dur>    no PONG within this → peer aborted (default 5s)
  --handshake-timeout <dur>    time a provider has to register (default 5s)
  --shutdown-timeout <dur>     bound on the graceful shutdown (default 5s)
  -h, --help

durations: 500ms, 2s, 1m
then: npx tsx examples/relay/provider.ts --name p1 ; npx tsx examples/relay/client.ts hello world`

const main = () => {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8080" },
      heartbeat: { type: "string", default: "10s" },
      "heartbeat-timeout": { type: "string", default: "5s" },
      "handshake-timeout": { type: "string", default: "5s" },
      "shutdown-timeout": { type: "string", default: "5s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help) return console.log(usage)
  const program = Effect.gen(function*() {
    const { server, stats } = yield* relay({
      host: values.host,
      port: Number(values.port),
      heartbeat: {
        interval: duration("--heartbeat", values.heartbeat),
        timeout: duration("--heartbeat-timeout", values["heartbeat-timeout"])
      },
      handshakeTimeout: duration("--handshake-timeout", values["handshake-timeout"]),
      shutdownTimeout: duration("--shutdown-timeout", values["shutdown-timeout"]),
      onEvent: (line) => Console.log(line)
    })
    yield* Console.log(`relay on ws://${server.address.host}:${server.address.port} (/provider, /client; Ctrl-C to stop)`)
    yield* Effect.never.pipe(
      Effect.onInterrupt(() =>
        Effect.flatMap(server.shutdown, (r) => {
          const s = stats()
          return Console.log(
            `relay shut down: ${r.sessions} sessions (${r.graceful} graceful, ${r.aborted} aborted); ` +
              `${s.forwarded} forwarded, ${s.answered} answered, ${s.failed} failed`
          )
        })
      )
    )
  })
  NodeRuntime.runMain(Effect.scoped(program))
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
