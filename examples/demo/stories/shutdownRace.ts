/**
 * Story 3, the shutdown race: producers keep sending while the runtime shuts
 * down. The stop-gate decides every send at one point in time: accepted sends
 * are all delivered (or reported), later ones are refused — no sleeps.
 */
import { Effect, Fiber } from "effect"
import { Connection, Framing } from "effect-tether"
import { frameReader, rawPeer } from "../peers.js"
import { Timeline, type StoryResult } from "../timeline.js"

const STORY = "3 shutdown race"

export const run = (options: { readonly producers: number; readonly runMs: number }) =>
  Effect.gen(function*() {
    const tl = yield* Timeline
    const received = new Map<number, Array<number>>()
    const peer = yield* rawPeer({
      onSocket: (socket) =>
        socket.on(
          "data",
          frameReader((frame) => {
            const [p, i] = frame.toString().split(":").map(Number) as [number, number]
            const list = received.get(p) ?? []
            list.push(i)
            received.set(p, list)
          })
        )
    })
    const conn = yield* Connection.connectTcp({ port: peer.port, sendQueueCapacity: 256 })
    yield* tl.event(STORY, `${options.producers} producers sending as fast as they can`)
    const accepted = Array.from({ length: options.producers }, () => 0)
    const refused = Array.from({ length: options.producers }, () => 0)
    const producer = (p: number) =>
      Effect.gen(function*() {
        for (let i = 0;; i++) {
          const ok = yield* conn.send(Framing.utf8(`${p}:${i}`)).pipe(Effect.as(true), Effect.catchAll(() => Effect.succeed(false)))
          if (!ok) {
            refused[p]!++
            return
          }
          accepted[p]!++
        }
      })
    const fibers = yield* Effect.forEach(Array.from({ length: options.producers }, (_, p) => p), (p) => Effect.fork(producer(p)))
    yield* Effect.sleep(`${options.runMs} millis`)
    const started = performance.now()
    yield* tl.event(STORY, "shutdown: close the stop-gate, drain what was accepted, FIN, EOF")
    const outcome = yield* conn.close("runtime shutdown")
    yield* Effect.forEach(fibers, Fiber.join, { discard: true })
    const resolvedMs = performance.now() - started
    const totalAccepted = accepted.reduce((a, b) => a + b, 0)
    let inOrder = true
    let received_ = 0
    for (const [p, list] of received) {
      received_ += list.length
      list.forEach((v, i) => {
        if (v !== i) inOrder = false
      })
      if (list.length > accepted[p]!) inOrder = false
    }
    yield* tl.event(STORY, "every producer got a definite answer", {
      accepted: totalAccepted,
      refusedAfterGate: refused.reduce((a, b) => a + b, 0),
      peerReceived: received_,
      reportedUndelivered: outcome.undelivered.length
    })
    const result: StoryResult = {
      story: STORY,
      peer: "reads normally",
      tether: "gate closed, drained, every later send refused",
      resolvedMs,
      delivered: received_,
      undelivered: outcome.undelivered.length,
      lost: totalAccepted - received_ - outcome.undelivered.length,
      ok: inOrder && totalAccepted === received_ + outcome.undelivered.length && outcome.delivered === received_
    }
    return result
  })
