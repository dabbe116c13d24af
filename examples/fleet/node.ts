/**
 * One fleet node process (examples/fleet/main.ts starts two, test/fleet/Fleet.proof.test.ts three): a FleetHub
 * over NatsEngine holding "venue" peers, and a TCP listener for inbound clients (the first frame a client sends is
 * its key). It prints one JSON line per fleet event it cares about (the frames an event reports, as text), its
 * held peers on every change, and its inbound port; it runs until killed.
 * Env: NATS_URL, NODE_ID, LEASE_TTL (millis).
 */
import { Effect, Schedule, Stream } from "effect"
import { Engine, FleetHub, Listener } from "effect-tether"
import * as NatsEngine from "effect-tether/NatsEngine"
import { kinds } from "./kinds.js"

const ttl = Number(process.env["LEASE_TTL"] ?? "1500")
const node = process.env["NODE_ID"] ?? "n"
const out = (v: unknown) => Effect.sync(() => process.stdout.write(JSON.stringify(v) + "\n"))
const text = (frames: ReadonlyArray<Uint8Array>) => frames.map((f) => new TextDecoder().decode(f))

const program = Effect.gen(function*() {
  const engine = yield* NatsEngine.make({ servers: [process.env["NATS_URL"]!], node, leaseTtl: ttl, timeoutMillis: 1000 })
  let last = ""
  const fleet = yield* FleetHub.make({
    kinds,
    leaseTtl: ttl,
    onFleetEvent: (e) => {
      switch (e._tag) {
        case "Moved":
          return out({ node, event: e._tag, key: e.key, from: e.from._tag === "Some" ? e.from.value : null })
        case "LeaseLost":
          return out({ node, event: e._tag, key: e.key, reason: e.reason })
        case "Lost":
          return out({ node, event: e._tag, key: e.key, count: e.count })
        case "PossibleDuplicate":
          return out({ node, event: e._tag, key: e.key, count: e.frames.length })
        case "Expired":
        case "Discarded":
          return out({ node, event: e._tag, key: e.key, frames: text(e.frames) })
        case "BacklogOverflow":
          return out({ node, event: e._tag, key: e.key, reason: e.reason, frames: text(e.frames) })
        default:
          return Effect.void
      }
    }
  }).pipe(Effect.provideService(Engine.Engine, engine))
  // inbound clients: the first frame is the client's key
  const server = yield* Listener.serve({ host: "127.0.0.1", port: 0, idPrefix: node }, (conn) =>
    Effect.gen(function*() {
      const first = yield* Stream.runHead(conn.incoming)
      if (first._tag === "None") return
      const key = new TextDecoder().decode(first.value)
      yield* fleet.addInbound(key, conn)
      yield* out({ node, inbound: key })
      yield* conn.closed
    }).pipe(Effect.catchAll((e) => out({ node, inboundError: String(e) }))))
  yield* out({ node, ready: true, inboundPort: server.address.port })
  yield* Effect.flatMap(fleet.held, (held) => {
    const now = held.join(",")
    if (now === last) return Effect.void
    last = now
    return out({ node, held })
  }).pipe(Effect.repeat(Schedule.spaced("100 millis")))
})

Effect.runFork(Effect.scoped(program).pipe(Effect.catchAllCause((c) => out({ node, error: String(c) }))))
