/**
 * The peer kinds of the fleet example, registered on every node (examples/fleet/node.ts) and on the driver
 * (examples/fleet/main.ts, test/fleet/Fleet.proof.test.ts): a venue is a TCP server reached at `127.0.0.1:<port>`;
 * a frame replayed after a move is prefixed with "!" (the example's PossDupFlag). `SmallVenue` is the same with
 * tight bounds (40 frames, 2 s), to show what is refused and what expires while a venue stays down.
 */
import { Schedule, Schema } from "effect"
import { Framing, PeerKind } from "effect-tether"

const dialer = (_key: string, spec: { readonly port: number }) => ({
  host: "127.0.0.1",
  port: spec.port,
  backoff: Schedule.spaced("100 millis")
})
const markDuplicate = (frame: Uint8Array) => Framing.utf8(`!${new TextDecoder().decode(frame)}`)

export const Venue = PeerKind.make("venue", { spec: Schema.Struct({ port: Schema.Number }), dialer, markDuplicate })

export const SmallVenue = PeerKind.make("small-venue", {
  spec: Schema.Struct({ port: Schema.Number }),
  dialer,
  markDuplicate,
  backlog: { maxMessages: 40, maxAge: "2 seconds", policy: "rejectNew" }
})

export const kinds = [Venue, SmallVenue]
