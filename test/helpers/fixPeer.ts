/**
 * Scripted FIX counterparties for tests: the far end of an in-memory
 * transport (TestClock tests) or a raw loopback socket. They speak wire bytes
 * built with the example's codec helpers and decode what the session sent.
 */
import { Clock, Effect } from "effect"
import type * as Net from "node:net"
import type { Transport } from "effect-tether"
import * as Testing from "effect-tether/testing"
import { encodeBody, type Field, fixCodec, type Message, parseBody, utcTimestamp, wire } from "../../examples/fix/codec.js"

const macrotask = Testing.macrotask

/** Every whole FIX message in `bytes`, decoded. */
export const decodeAll = (bytes: Uint8Array): Array<Message> => {
  const out: Array<Uint8Array> = []
  const err = fixCodec().makeDecoder().decode(bytes, out)
  if (err !== undefined) throw err
  return out.map((b) => parseBody(b))
}

/** A message from the counterparty ("QFIX" → "TETHER" unless told otherwise). */
export const peerMessage = (
  type: string,
  seq: number,
  fields: ReadonlyArray<Field> = [],
  options?: { readonly sender?: string; readonly target?: string; readonly at?: number }
): Uint8Array =>
  wire([
    [35, type],
    [49, options?.sender ?? "QFIX"],
    [56, options?.target ?? "TETHER"],
    [34, String(seq)],
    [52, utcTimestamp(options?.at ?? 0)],
    ...fields
  ])

export { encodeBody }

/** The far end of a memory transport as a FIX counterparty. */
export interface MemoryFixPeer {
  readonly peer: Transport.MemoryPeer
  /** What the session has sent so far. */
  readonly inbound: () => Array<Message>
  readonly send: (type: string, seq: number, fields?: ReadonlyArray<Field>) => Effect.Effect<void>
  /**
   * Lets the session's fibers run (no virtual time passes) until `done` holds, or fails.
   * Yields a real macrotask each round: the connection's writer runs on a macrotask scheduler.
   */
  readonly until: (what: string, done: (inbound: Array<Message>) => boolean) => Effect.Effect<void, Error>
  /** Lets the session's fibers run for a while (no virtual time passes), before asserting that nothing happened. */
  readonly settle: Effect.Effect<void>
}

export const memoryFixPeer = (peer: Transport.MemoryPeer): MemoryFixPeer => {
  const inbound = () => decodeAll(peer.received())
  return {
    peer,
    inbound,
    send: (type, seq, fields) =>
      Effect.flatMap(Clock.currentTimeMillis, (at) => peer.write(peerMessage(type, seq, fields, { at }))),
    settle: Effect.repeatN(macrotask, 50),
    until: (what, done) =>
      Effect.gen(function*() {
        for (let i = 0; i < 2000; i++) {
          if (done(inbound())) return
          yield* macrotask
        }
        return yield* Effect.fail(
          new Error(`scripted peer: never saw ${what}; got:\n${inbound().map((m) => m.fields.map(([t, v]) => `${t}=${v}`).join("|")).join("\n")}`)
        )
      })
  }
}

/** Incremental decoding of what a raw socket receives. */
export const socketMessages = (socket: Net.Socket, onMessage: (m: Message) => void): void => {
  const decoder = fixCodec().makeDecoder()
  socket.on("data", (chunk: Buffer) => {
    const out: Array<Uint8Array> = []
    decoder.decode(new Uint8Array(chunk), out)
    for (const b of out) onMessage(parseBody(b))
  })
}
