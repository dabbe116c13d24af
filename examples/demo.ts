/**
 * tether demo: the production failure stories, each played live on loopback
 * against a real misbehaving peer, with a timeline and a report.
 *
 *   npm start              # human timeline + report table
 *   npm start -- --json    # the same as JSON lines of events
 */
import { Effect, Logger, LogLevel, Option } from "effect"
import { parseArgs } from "node:util"
import * as DeadClient from "./demo/stories/deadClient.js"
import * as DroppedLink from "./demo/stories/droppedLink.js"
import * as HubStory from "./demo/stories/hub.js"
import * as ShutdownRace from "./demo/stories/shutdownRace.js"
import * as WebSocketStory from "./demo/stories/webSocket.js"
import * as Zombie from "./demo/stories/zombie.js"
import * as Timeline from "./demo/timeline.js"

const { values } = parseArgs({ options: { json: { type: "boolean", default: false } } })

const program = Effect.gen(function*() {
  const tl = yield* Timeline.Timeline
  const results = [
    yield* Effect.scoped(Zombie.run({ lingerMs: 1500 })),
    yield* Effect.scoped(HubStory.run({ ticks: 300, dropAt: 100, maxMessages: 500 })),
    yield* Effect.scoped(ShutdownRace.run({ producers: 8, runMs: 150 })),
    yield* Effect.scoped(WebSocketStory.run({ messages: 2000, pings: 200 })),
    yield* Effect.scoped(DeadClient.run({ stallMs: 1500, probeMs: 250 })),
    ...Option.toArray(yield* Effect.scoped(DroppedLink.run({ stallMs: 1500, probeMs: 250 })))
  ]
  yield* tl.report(results)
  const lost = results.reduce((n, r) => n + r.lost, 0)
  if (!values.json) {
    console.log(
      results.every((r) => r.ok) && lost === 0
        ? "\nevery story resolved within its bounds; no message lost"
        : "\nSOME STORY DID NOT RESOLVE AS EXPECTED"
    )
  }
  if (!results.every((r) => r.ok) || lost !== 0) process.exitCode = 1
})

Effect.runPromise(
  program.pipe(Effect.provide(Timeline.layer(values.json)), Logger.withMinimumLogLevel(LogLevel.None))
).catch((err) => {
  console.error(err)
  process.exitCode = 1
})
