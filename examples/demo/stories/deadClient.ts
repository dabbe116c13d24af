/**
 * Story 5, the dead client: a server with one seat streams to a client that
 * stops reading. The send-stall watchdog sees bytes queued and none
 * acknowledged (kernel send queue, from outside the write path), reaps the
 * session, frees the seat, and the next client is served. A second client that
 * arrives while the seat is taken is refused at once.
 */
import { Effect, Option, Queue } from "effect"
import * as Net from "node:net"
import { type Connection, Listener, Watchdog } from "effect-tether"
import { frameReader } from "../peers.js"
import { Timeline, type StoryResult } from "../timeline.js"

const STORY = "5 dead client"

const connectRaw = (port: number) =>
  Effect.async<Net.Socket>((resume) => {
    const socket = Net.connect({ port, host: "127.0.0.1" }, () => resume(Effect.succeed(socket)))
    socket.on("error", () => {})
  })

export const run = (options: { readonly stallMs: number; readonly probeMs: number }) =>
  Effect.gen(function*() {
    const tl = yield* Timeline
    const outcomes = yield* Queue.bounded<Connection.CloseOutcome & { accepted: number }>(8)
    const chunk = new Uint8Array(16 * 1024)
    const server = yield* Listener.serve(
      {
        port: 0,
        maxConnections: 1,
        writeTimeout: "1 minute", // the watchdog, not the write deadline, must catch this one
        watchdogs: [Watchdog.reaper({ stallTimeout: `${options.stallMs} millis`, probeInterval: `${options.probeMs} millis` })]
      },
      (conn) =>
        Effect.gen(function*() {
          let accepted = 0
          // stream until the connection ends
          yield* Effect.forever(Effect.tap(conn.send(chunk), () => Effect.sync(() => accepted++))).pipe(Effect.ignore)
          const outcome = yield* conn.outcome
          yield* Queue.offer(outcomes, { ...outcome, accepted })
        })
    )
    yield* tl.event(STORY, `streaming server with 1 seat; send-stall reaper ${options.stallMs} ms, probe ${options.probeMs} ms`)

    const dead = yield* connectRaw(server.address.port)
    dead.pause() // alive at the TCP level, never reads again
    yield* tl.event(STORY, "client A connected and stopped reading")
    yield* Effect.repeat(server.stats, { until: (s) => s.active === 1 })

    const refusedBefore = server.unsafeStats().refused
    const second = yield* connectRaw(server.address.port)
    const secondClosed = yield* Effect.async<void>((resume) => {
      if (second.destroyed) return resume(Effect.void)
      second.once("close", () => resume(Effect.void))
    }).pipe(Effect.timeout("2 seconds"), Effect.option)
    yield* tl.event(STORY, "client B refused while the seat is taken", {
      refused: server.unsafeStats().refused - refusedBefore,
      closedByServer: Option.isSome(secondClosed)
    })

    const started = performance.now()
    const outcome = yield* tl.waiting("waiting for the stall watchdog", Queue.take(outcomes))
    const reapedMs = performance.now() - started
    yield* tl.event(STORY, "client A reaped, seat freed", {
      reason: outcome.reason._tag,
      accepted: outcome.accepted,
      written: outcome.delivered,
      truncated: outcome.truncated === undefined ? 0 : 1, // cut in the middle by the reap: undecodable, resendable
      reportedUndelivered: outcome.undelivered.length
    })
    dead.destroy()
    second.destroy()

    // a new client is served
    const fresh = yield* connectRaw(server.address.port)
    const got = yield* Effect.async<number>((resume) => {
      let frames = 0
      fresh.on(
        "data",
        frameReader(() => {
          if (++frames === 10) resume(Effect.succeed(frames))
        })
      )
    }).pipe(Effect.timeout("3 seconds"))
    yield* tl.event(STORY, "client C served", { framesReceived: got })
    fresh.destroy()
    return {
      story: STORY,
      peer: "stops reading mid-stream",
      tether: "stall reaped from outside the write path; seat freed",
      resolvedMs: reapedMs,
      delivered: outcome.delivered,
      undelivered: outcome.undelivered.length,
      lost: outcome.accepted - outcome.delivered - (outcome.truncated === undefined ? 0 : 1) - outcome.undelivered.length,
      ok: outcome.reason._tag === "SendStalled" && Option.isSome(secondClosed) && got === 10
    } satisfies StoryResult
  })
