/**
 * Exactly once through a Dialer (issue 12 §1): against a peer that accepts and
 * never reads, every connection ends by write timeout while a write is in
 * progress, the dialer requeues what its connection handed back (and the frame
 * cut in the middle) and replays it on the next connection; then it is stopped.
 * When the peer finally reads every socket to its end, what it received and
 * what `stop` handed back are every accepted frame, each exactly once.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { Dialer, Transport } from "effect-tether"
import { decodeReceived, duplicates, numbered, seqOf, silentPeer } from "./helpers/exactPeer.js"

const FRAMES = 3000

const run = (tls: boolean) =>
  Effect.scoped(Effect.gen(function*() {
    const peer = yield* silentPeer({ tls })
    const dialer = yield* Dialer.make({
      id: tls ? "exact-tls" : "exact-tcp",
      ...(tls
        ? { connect: Transport.connectTls({ port: peer.port, rejectUnauthorized: false }) }
        : { host: "127.0.0.1", port: peer.port }),
      backoff: Schedule.spaced("20 millis"),
      backlog: { maxMessages: 100_000, maxBytes: 1 << 30, policy: "rejectNew" },
      connection: { writeTimeout: "400 millis", drainTimeout: "300 millis", sendQueueCapacity: 8192 }
    })
    const accepted: Array<number> = []
    for (let seq = 0; seq < FRAMES; seq++) {
      const ok = yield* dialer.send(numbered(seq)).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
      if (ok) accepted.push(seq)
    }
    // at least two connections ended by the write deadline with a write in progress
    yield* peer.awaitSockets(3)
    const outcome = yield* dialer.stop()
    const received: Array<Array<number>> = []
    let cutTails = 0
    for (let i = 0; i < peer.sockets.length; i++) {
      const r = decodeReceived(yield* peer.readToEnd(i))
      received.push(r.seqs)
      if (r.tailBytes > 0) cutTails++
    }
    const undelivered = outcome.undelivered.map(seqOf)
    const dup = duplicates(...received, undelivered)
    expect(dup, "frames received twice or received and handed back").toBe(0)
    expect([...received.flat(), ...undelivered].sort((a, b) => a - b)).toEqual(accepted)
    // each connection carried an ordered run
    for (const r of received) expect(r).toEqual([...r].sort((a, b) => a - b))
    expect(received.filter((r) => r.length > 0).length).toBeGreaterThanOrEqual(2)
    // frames were cut in the middle (an undecodable tail on a socket) and still arrived whole, once
    expect(cutTails).toBeGreaterThan(0)
  }))

describe("Dialer: exactly once at the kernel boundary (loopback)", () => {
  it.live("TCP: write timeouts, requeue, replay, stop: received ∪ undelivered = accepted, 0 duplicates", () => run(false), 30_000)
  it.live("TLS: write timeouts, requeue, replay, stop: received ∪ undelivered = accepted, 0 duplicates", () => run(true), 30_000)
})
