/**
 * Story 1, the zombie session: a session ends on a fatal protocol error while the
 * peer never closes its socket. tether sends Logout, drains, sends FIN, waits
 * for the peer's EOF for the linger bound, destroys the socket, and does not
 * reconnect.
 */
import { Effect, Option, Stream } from "effect"
import { Dialer, Framing } from "effect-tether"
import { frameReader, lengthPrefixed, rawPeer } from "../peers.js"
import { Timeline, type StoryResult } from "../timeline.js"

const STORY = "1 zombie session"

export const run = (options: { readonly lingerMs: number }) =>
  Effect.gen(function*() {
    const tl = yield* Timeline
    let peerReceived = 0
    // the acceptor: answers Logon, then sends a message whose sequence number is too low; never closes
    const peer = yield* rawPeer({
      allowHalfOpen: true,
      onSocket: (socket) =>
        socket.on(
          "data",
          frameReader((frame) => {
            peerReceived++
            if (frame.toString().startsWith("Logon")) {
              socket.write(lengthPrefixed("Logon seq=1"))
              socket.write(lengthPrefixed("Heartbeat seq=1")) // seq 1 again: too low, and no PossDup
            }
          })
        )
    })
    yield* tl.event(STORY, "acceptor up: answers Logon, then repeats seq 1 without PossDup; never closes its socket")

    const started = performance.now()
    let fatalReason = ""
    // an initiator: a Dialer whose session decides Stop on a fatal protocol error
    const dialer = yield* Dialer.make({
      port: peer.port,
      connection: { lingerTimeout: `${options.lingerMs} millis` },
      session: (conn) =>
        Effect.gen(function*() {
          yield* tl.event(STORY, "connected; sending Logon", { connection: conn.id })
          yield* conn.send(Framing.utf8("Logon seq=1"))
          let expected = 1
          // the first message with a sequence number lower than expected is fatal
          const fatal = yield* conn.incoming.pipe(
            Stream.map(Framing.text),
            Stream.filterMap((msg): Option.Option<string> => {
              const seq = Number(/seq=(\d+)/.exec(msg)?.[1])
              if (seq < expected) return Option.some(`MsgSeqNum too low: got ${seq}, expected ${expected}`)
              expected = seq + 1
              return Option.none()
            }),
            Stream.runHead
          )
          if (Option.isNone(fatal)) return Dialer.Decision.Reconnect()
          fatalReason = fatal.value
          yield* tl.event(STORY, "fatal protocol error → Logout, decision Stop (no reconnect)", { reason: fatalReason })
          yield* conn.send(Framing.utf8(`Logout text="${fatalReason}"`))
          return Dialer.Decision.Stop({ reason: fatalReason })
        }).pipe(Effect.orDie)
    })
    const stop = yield* tl.waiting(
      `full shutdown: FIN sent, waiting up to ${options.lingerMs} ms for the peer's EOF`,
      dialer.outcome
    )
    const attempts = dialer.unsafeStats().attempts
    const resolvedMs = performance.now() - started
    yield* tl.event(STORY, "dialer stopped; socket destroyed", {
      reason: stop.reason,
      attempts,
      status: dialer.unsafeStats().status,
      peerSawFrames: peerReceived
    })
    const result: StoryResult = {
      story: STORY,
      peer: "fatal seq, never closes",
      tether: `Logout, FIN, linger ${options.lingerMs} ms, destroy, no reconnect`,
      resolvedMs,
      delivered: peerReceived,
      undelivered: stop.undelivered.length,
      lost: 2 - peerReceived - stop.undelivered.length,
      ok: attempts === 1 && stop.reason === fatalReason && peerReceived === 2 &&
        resolvedMs <= options.lingerMs + 500
    }
    return result
  })
