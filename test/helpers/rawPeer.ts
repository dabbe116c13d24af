/**
 * A raw node:net server for tests, as a scoped resource: every accepted socket
 * is handed to the test and destroyed when the scope closes. The server and the
 * frame collector come from tether's test kit (`tether/testing`).
 */
import { Effect } from "effect"
import type * as Net from "node:net"
import * as Testing from "effect-tether/testing"

export type RawServer = Testing.Peer

export const rawServer = Testing.peer

/** Resolves when the socket emits `event`, with the wall-clock time it happened. */
export const awaitEvent = (socket: Net.Socket, event: "end" | "close" | "data") =>
  Effect.async<number>((resume) => {
    const f = () => resume(Effect.sync(() => performance.now()))
    socket.once(event, f)
    return Effect.sync(() => socket.off(event, f))
  })

/** Collects length-prefixed frames from a raw socket. */
export const collectFrames = Testing.collectFrames
