/**
 * One fleet node process (examples/fleet/main.ts starts two, and so does test/fleet/Fleet.proof.test.ts): a FleetHub over NatsEngine holding "venue" peers. It prints one
 * JSON line per fleet event it cares about and its held peers on every change; it runs until killed.
 * Env: NATS_URL, NODE_ID, LEASE_TTL (millis).
 */
import { Effect, Schedule, Schema } from "effect"
import { Engine, FleetHub, Framing, PeerKind } from "effect-tether"
import * as NatsEngine from "effect-tether/NatsEngine"

const ttl = Number(process.env["LEASE_TTL"] ?? "1500")
const node = process.env["NODE_ID"] ?? "n"
const out = (v: unknown) => Effect.sync(() => process.stdout.write(JSON.stringify(v) + "\n"))

export const Venue = PeerKind.make("venue", {
  spec: Schema.Struct({ port: Schema.Number }),
  dialer: (_key, spec) => ({ host: "127.0.0.1", port: spec.port, backoff: Schedule.spaced("100 millis") }),
  markDuplicate: (frame) => Framing.utf8(`!${new TextDecoder().decode(frame)}`)
})

const program = Effect.gen(function*() {
  const engine = yield* NatsEngine.make({ servers: [process.env["NATS_URL"]!], node, leaseTtl: ttl })
  let last = ""
  const fleet = yield* FleetHub.make({
    kinds: [Venue],
    leaseTtl: ttl,
    onFleetEvent: (e) =>
      e._tag === "Moved" || e._tag === "LeaseLost" || e._tag === "Lost"
        ? out({ node, event: e._tag, key: e.key, ...(e._tag === "LeaseLost" ? { reason: e.reason } : {}) })
        : e._tag === "PossibleDuplicate"
        ? out({ node, event: e._tag, key: e.key, count: e.frames.length })
        : Effect.void
  }).pipe(Effect.provideService(Engine.Engine, engine))
  yield* out({ node, ready: true })
  yield* Effect.flatMap(fleet.held, (held) => {
    const now = held.join(",")
    if (now === last) return Effect.void
    last = now
    return out({ node, held })
  }).pipe(Effect.repeat(Schedule.spaced("100 millis")))
})

Effect.runFork(Effect.scoped(program).pipe(Effect.catchAllCause((c) => out({ node, error: String(c) }))))
