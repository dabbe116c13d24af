/**
 * Story 5b, the dead client behind a dropped link: the peer sits in its own
 * network namespace behind a veth pair; mid-stream its link goes down — no FIN,
 * no RST, our kernel just retransmits into the void. The send-stall watchdog
 * sees the kernel send queue stuck with no acknowledgement progress and reaps.
 * Needs Linux, root and iproute2; elsewhere the story says why it is skipped.
 */
import { Effect, Option } from "effect"
import { Connection, Watchdog } from "effect-tether"
import * as NetNs from "../netns.js"
import { Timeline, type StoryResult } from "../timeline.js"

const STORY = "5b dropped link"

export const run = (options: { readonly stallMs: number; readonly probeMs: number }) =>
  Effect.gen(function*() {
    const tl = yield* Timeline
    const can = NetNs.availability()
    if (!can.ok) {
      yield* tl.event(STORY, `skipped: ${can.reason}`)
      return Option.none<StoryResult>()
    }
    const ns = yield* NetNs.make
    const port = yield* ns.spawnReader
    yield* tl.event(STORY, `peer in network namespace ${ns.name} at ${ns.peerIp}:${port}, reading everything`)
    const conn = yield* Connection.connectTcp({
      host: ns.peerIp,
      port,
      writeTimeout: "1 minute", // the watchdog, not the write deadline, must catch this one
      watchdogs: [Watchdog.reaper({ stallTimeout: `${options.stallMs} millis`, probeInterval: `${options.probeMs} millis` })]
    })
    const chunk = new Uint8Array(16 * 1024)
    let accepted = 0
    yield* Effect.forkScoped(Effect.forever(Effect.tap(conn.send(chunk), () => Effect.sync(() => accepted++))).pipe(Effect.ignore))
    yield* Effect.sleep("300 millis") // streaming
    yield* ns.linkDown
    const started = performance.now()
    yield* tl.event(STORY, "the peer's link went down: no FIN, no RST")
    const outcome = yield* tl.waiting("waiting for the stall watchdog", conn.outcome)
    const resolvedMs = performance.now() - started
    yield* tl.event(STORY, "reaped", {
      reason: outcome.reason._tag,
      accepted,
      written: outcome.delivered,
      truncated: outcome.truncated === undefined ? 0 : 1, // cut in the middle by the reap: undecodable, resendable
      reportedUndelivered: outcome.undelivered.length
    })
    return Option.some({
      story: STORY,
      peer: "vanishes: link down, no FIN/RST",
      tether: "kernel send queue stuck → reaped",
      resolvedMs,
      delivered: outcome.delivered,
      undelivered: outcome.undelivered.length,
      lost: accepted - outcome.delivered - (outcome.truncated === undefined ? 0 : 1) - outcome.undelivered.length,
      ok: (outcome.reason._tag === "SendStalled" || outcome.reason._tag === "PeerGone") &&
        resolvedMs <= options.stallMs + 4 * options.probeMs + 1000
    } satisfies StoryResult)
  })
