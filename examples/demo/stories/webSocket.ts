/**
 * Story 4, the two writers: a WebSocket server bursts messages while the client
 * pings as fast as it can. Only the connection's writer fiber touches the
 * socket — PONGs go through it too — so no frame is corrupted and every ping
 * gets exactly one pong.
 */
import { Effect, Stream } from "effect"
import { WebSocket } from "effect-tether"
import WS from "ws"
import { Timeline, type StoryResult } from "../timeline.js"

const STORY = "4 two writers"

export const run = (options: { readonly messages: number; readonly pings: number }) =>
  Effect.gen(function*() {
    const tl = yield* Timeline
    const server = yield* WebSocket.serve({ port: 0, writeTimeout: "200 millis" }, (conn) =>
      Effect.gen(function*() {
        // wait for the client's "go", then burst from 4 fibers at once
        yield* Stream.runHead(conn.incoming)
        yield* Effect.forEach(
          [0, 1, 2, 3],
          (f) =>
            Effect.forEach(
              Array.from({ length: options.messages / 4 }, (_, i) => i),
              (i) => conn.send(WebSocket.text(`${f}:${i}`)),
              { discard: true }
            ),
          { concurrency: "unbounded", discard: true }
        )
        yield* conn.closed
      }).pipe(Effect.orDie))
    yield* tl.event(STORY, `tether WebSocket server on port ${server.address.port}; ws client (an independent implementation)`)

    const started = performance.now()
    const result = yield* Effect.async<{ texts: number; inOrder: boolean; pongs: number; errors: number }>((resume) => {
      const client = new WS(`ws://127.0.0.1:${server.address.port}/`)
      const next = [0, 0, 0, 0]
      let texts = 0
      let inOrder = true
      let pongs = 0
      let errors = 0
      const finish = () => {
        client.close(1000)
        resume(Effect.succeed({ texts, inOrder, pongs, errors }))
      }
      client.on("open", () => {
        client.send("go")
        for (let i = 0; i < options.pings; i++) client.ping(Buffer.from(String(i)))
      })
      client.on("pong", () => {
        pongs++
        if (pongs === options.pings && texts === options.messages) finish()
      })
      client.on("message", (data, isBinary) => {
        if (isBinary) return
        const [f, i] = String(data).split(":").map(Number) as [number, number]
        if (next[f] !== i) inOrder = false
        next[f] = i + 1
        texts++
        if (pongs === options.pings && texts === options.messages) finish()
      })
      client.on("error", () => {
        errors++
        finish()
      })
      return Effect.sync(() => client.terminate())
    }).pipe(Effect.timeout("10 seconds"))
    const resolvedMs = performance.now() - started
    yield* tl.event(STORY, "client done", {
      textsInOrder: result.inOrder,
      texts: result.texts,
      pings: options.pings,
      pongs: result.pongs,
      protocolErrors: result.errors
    })
    const report = yield* server.shutdown
    yield* tl.event(STORY, "server shut down", { graceful: report.graceful, aborted: report.aborted })
    return {
      story: STORY,
      peer: `${options.pings} pings during a burst`,
      tether: "one writer fiber: data, PONGs and Close",
      resolvedMs,
      delivered: result.texts,
      undelivered: 0,
      lost: options.messages - result.texts,
      ok: result.inOrder && result.errors === 0 && result.pongs === options.pings && result.texts === options.messages
    } satisfies StoryResult
  })
