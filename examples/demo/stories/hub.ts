/**
 * Story 2, the duplicated / unbounded backlog: a hub broadcasts while one of
 * its peers drops its session and reconnects. Frames for the disconnected peer
 * go to its bounded backlog exactly once and are replayed in order before any
 * new frame; every peer ends with every tick exactly once.
 */
import { Effect, Stream } from "effect"
import { Framing, Hub } from "effect-tether"
import { frameReader, rawPeer } from "../peers.js"
import { Timeline, type StoryResult } from "../timeline.js"

const STORY = "2 hub backlog"

export const run = (options: { readonly ticks: number; readonly dropAt: number; readonly maxMessages: number }) =>
  Effect.gen(function*() {
    const tl = yield* Timeline
    const names = ["alpha", "bravo", "charlie"]
    const received = new Map<string, Array<number>>(names.map((n) => [n, []]))
    let dropped = false
    // three subscribers; bravo ends its session once, mid-stream (reading everything until our FIN)
    const peers = yield* Effect.forEach(names, (name) =>
      rawPeer({
        onSocket: (socket) =>
          socket.on(
            "data",
            frameReader((frame) => {
              const tick = Number(frame.toString().slice(5))
              received.get(name)!.push(tick)
              if (name === "bravo" && !dropped && tick === options.dropAt) {
                dropped = true
                socket.end() // session over; the hub's dialer will reconnect
              }
            })
          )
      }))
    const hub = yield* Hub.make()
    yield* Effect.forkScoped(Stream.runForEach(hub.events, (e) =>
      e._tag === "Disconnected" || e._tag === "Reconnected"
        ? tl.event(STORY, `hub event: ${e._tag}`, {
          peer: e.key,
          ...(e._tag === "Disconnected" ? { reason: e.reason._tag, requeued: e.requeued } : {})
        })
        : Effect.void))
    const dialers = yield* Effect.forEach(names, (name, i) =>
      hub.addDialer(name, {
        port: peers[i]!.port,
        backlog: { maxMessages: options.maxMessages, maxBytes: 1024 * 1024, maxAge: "10 seconds", policy: "rejectNew" }
      }))
    yield* Effect.forEach(dialers, (d) => Stream.runHead(Stream.filter(d.statusChanges, (s) => s === "Connected")), {
      concurrency: "unbounded"
    })
    yield* tl.event(STORY, `3 subscribers connected; broadcasting ${options.ticks} ticks (encoded once, one shared buffer)`)
    const started = performance.now()
    let maxBacklog = 0
    let accepted = 0
    for (let t = 1; t <= options.ticks; t++) {
      const r = yield* hub.broadcast(Framing.utf8(`tick ${t}`))
      accepted += r.accepted.length
      for (const d of dialers) maxBacklog = Math.max(maxBacklog, d.unsafeStats().backlogMessages)
      if (t % 10 === 0) yield* Effect.sleep("5 millis") // a steady feed, not one burst
    }
    // everything sent: wait until each subscriber has every tick (bounded)
    yield* tl.waiting(
      "waiting for every subscriber to have every tick",
      Effect.repeat(Effect.sleep("10 millis"), {
        until: () => names.every((n) => received.get(n)!.length >= options.ticks)
      }).pipe(Effect.timeout("10 seconds"), Effect.ignore)
    )
    const resolvedMs = performance.now() - started
    let duplicates = 0
    let inOrder = true
    let got = 0
    for (const n of names) {
      const list = received.get(n)!
      got += list.length
      duplicates += list.length - new Set(list).size
      list.forEach((v, i) => {
        if (v !== i + 1) inOrder = false
      })
    }
    const outcomes = yield* Effect.forEach(dialers, (d) => d.stop("demo over"))
    const undelivered = outcomes.reduce((n, o) => n + o.undelivered.length, 0)
    yield* tl.event(STORY, "every subscriber checked", {
      perPeer: names.map((n) => received.get(n)!.length).join("/"),
      duplicates,
      inOrder,
      maxBacklog,
      backlogBound: options.maxMessages
    })
    return {
      story: STORY,
      peer: "bravo drops its session mid-stream",
      tether: `bounded backlog (≤ ${options.maxMessages}), replayed once, in order`,
      resolvedMs,
      delivered: got,
      undelivered,
      lost: accepted - got - undelivered,
      ok: dropped && duplicates === 0 && inOrder && got === accepted && maxBacklog <= options.maxMessages
    } satisfies StoryResult
  })
