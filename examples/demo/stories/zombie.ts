/**
 * Story 1, the zombie session: a session ends on a fatal protocol error while the
 * peer never closes its socket. tether sends Logout, drains, sends FIN, waits
 * for the peer's EOF for the linger bound, destroys the socket, and does not
 * reconnect.
 */
import { Effect, Option, Stream } from "effect"
import { Connection, DisconnectReason, Framing } from "tether"
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
    let connects = 0
    const outcome = yield* Effect.scoped(
      Effect.gen(function*() {
        const conn = yield* Connection.connectTcp({ port: peer.port, lingerTimeout: `${options.lingerMs} millis` })
        connects++
        yield* tl.event(STORY, "connected; sending Logon", { connection: conn.id })
        yield* conn.send(Framing.utf8("Logon seq=1"))
        let expected = 1
        // the session: the first message with a sequence number lower than expected is fatal → Stop
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
        const reason = Option.getOrElse(fatal, () => "peer closed")
        yield* tl.event(STORY, "fatal protocol error → Logout, decision Stop (no reconnect)", { reason })
        yield* conn.send(Framing.utf8(`Logout text="${reason}"`))
        return yield* tl.waiting(
          `full shutdown: FIN sent, waiting up to ${options.lingerMs} ms for the peer's EOF`,
          conn.close(DisconnectReason.LocalClose({ message: reason }))
        )
      })
    )
    const resolvedMs = performance.now() - started
    yield* tl.event(STORY, "socket destroyed", {
      finSent: outcome.finSent,
      lingerExpired: outcome.lingerExpired,
      closeMs: outcome.closeMillis,
      reconnects: connects - 1
    })
    const delivered = outcome.delivered
    const result: StoryResult = {
      story: STORY,
      peer: "fatal seq, never closes",
      tether: `Logout, FIN, linger ${options.lingerMs} ms, destroy, no reconnect`,
      resolvedMs,
      delivered,
      undelivered: outcome.undelivered.length,
      lost: 2 - delivered - outcome.undelivered.length,
      ok: outcome.finSent && connects === 1 && peerReceived === delivered &&
        outcome.closeMillis <= options.lingerMs + 200
    }
    return result
  })
