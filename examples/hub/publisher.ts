/**
 * A tick publisher: a Hub of outbound peers (one reconnecting Dialer each,
 * with a bounded backlog) and a broadcast every `interval`. A peer that is
 * down keeps its ticks in its backlog and gets each of them exactly once, in
 * order, when it is back; what a backlog gives up on (full, too old) is
 * reported, never silently dropped. Every hub event is printed.
 *
 *   npx tsx examples/hub/subscriber.ts --name a --port 7101 &
 *   npx tsx examples/hub/subscriber.ts --name b --port 7102 &
 *   npx tsx examples/hub/publisher.ts --peers a=127.0.0.1:7101,b=127.0.0.1:7102 --ticks 100
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Duration, Effect, Option, Schedule, Stream } from "effect"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { type Backlog, type Dialer, DisconnectReason, Framing, Hub } from "effect-tether"
import { duration } from "../cli.js"
import { parseTick } from "./subscriber.js"

/** One outbound peer. */
export interface Peer {
  readonly key: string
  readonly host: string
  readonly port: number
}

/** Options of {@link publisher}. */
export interface PublisherOptions {
  readonly peers: ReadonlyArray<Peer>
  /** Ticks to broadcast (0: until interrupted). */
  readonly ticks: number
  readonly interval: Duration.DurationInput
  /** Bounds of each peer's backlog (default: 1000 ticks, 30 s, rejectNew). */
  readonly backlog?: Backlog.Options | undefined
  /** Pause between reconnect attempts (default 100 ms). */
  readonly reconnectDelay?: Duration.DurationInput | undefined
  readonly connectTimeout?: Duration.DurationInput | undefined
  readonly lingerTimeout?: Duration.DurationInput | undefined
  /** After the last tick: how long to wait for every peer to be connected with an empty backlog. */
  readonly settleTimeout?: Duration.DurationInput | undefined
  /** Every hub event, in order (lossless). */
  readonly onEvent?: ((event: Hub.Event) => Effect.Effect<void>) | undefined
  /** After each broadcast. */
  readonly onTick?: ((tick: number, result: Hub.BroadcastResult) => Effect.Effect<void>) | undefined
}

/** What the publisher did, per peer. */
export interface PublisherResult {
  readonly ticks: number
  /** Ticks each peer's backlog gave up on or refused (reported, never sent). */
  readonly gaveUp: Readonly<Record<string, ReadonlyArray<number>>>
  /** Whether every peer was connected with an empty backlog before the stop. */
  readonly settled: boolean
}

/** The backlog bounds used when none are given. */
export const defaultBacklog: Backlog.Options = { maxMessages: 1000, maxAge: "30 seconds", policy: "rejectNew" }

/** Describes a hub event in one line. */
export const describeEvent = (e: Hub.Event): string => {
  const ticks = (frames: ReadonlyArray<Uint8Array>) => frames.map((f) => parseTick(f) ?? "?").join(",")
  switch (e._tag) {
    case "Connected":
      return `${e.key}: connected (${e.connectionId})`
    case "Reconnected":
      return `${e.key}: reconnected (${e.connectionId}), backlog replayed`
    case "Disconnected":
      return `${e.key}: disconnected (${DisconnectReason.describe(e.reason)}), ${e.requeued} requeued`
    case "BacklogOverflow":
      return `${e.key}: backlog overflow (${e.policy}, ${e.reason}): ticks ${ticks(e.frames)}`
    case "Expired":
      return `${e.key}: expired in the backlog: ticks ${ticks(e.frames)}`
    case "Discarded":
      return `${e.key}: discarded (${e.reason}): ticks ${ticks(e.frames)}`
    case "Removed":
      return `${e.key}: removed (${e.reason})${e.undelivered.length > 0 ? `, undelivered ticks ${ticks(e.undelivered)}` : ""}`
  }
}

/** Runs the publisher: dial every peer, broadcast the ticks, settle, stop. */
export const publisher = (options: PublisherOptions) =>
  Effect.suspend(() => {
    // (under rejectNew a refused tick is both a failed broadcast and a BacklogOverflow event: a set counts it once)
    const gaveUp: Record<string, Set<number>> = {}
    for (const p of options.peers) gaveUp[p.key] = new Set()
    const lost = (key: string, frames: ReadonlyArray<Uint8Array>) => {
      for (const f of frames) {
        const t = parseTick(f)
        if (t !== undefined) gaveUp[key]?.add(t)
      }
    }
    return Effect.scoped(Effect.gen(function*() {
      const hub = yield* Hub.make({
        onEvent: (e) =>
          Effect.suspend(() => {
            if (e._tag === "BacklogOverflow" || e._tag === "Expired" || e._tag === "Discarded") lost(e.key, e.frames)
            if (e._tag === "Removed") lost(e.key, e.undelivered)
            return options.onEvent ? options.onEvent(e) : Effect.void
          })
      })
      const dialers: Array<Dialer.Dialer> = []
      for (const p of options.peers) {
        dialers.push(
          yield* hub.addDialer(p.key, {
            host: p.host,
            port: p.port,
            connectTimeout: options.connectTimeout ?? "2 seconds",
            backoff: Schedule.spaced(options.reconnectDelay ?? "100 millis"),
            connection: { lingerTimeout: options.lingerTimeout ?? "2 seconds" },
            backlog: options.backlog ?? defaultBacklog
          })
        )
      }

      let tick = 0
      yield* Effect.repeat(
        Effect.gen(function*() {
          tick++
          // encoded once, the same buffer for every peer: to its live connection, or into its backlog
          const result = yield* hub.broadcast(Framing.utf8(`tick ${tick}`))
          for (const f of result.failed) gaveUp[f.key]?.add(tick) // e.g. BacklogFull under rejectNew
          if (options.onTick) yield* options.onTick(tick, result)
        }),
        options.ticks > 0
          ? Schedule.asVoid(Schedule.intersect(Schedule.spaced(options.interval), Schedule.recurs(options.ticks - 1)))
          : Schedule.asVoid(Schedule.spaced(options.interval))
      )

      // settle: every peer connected (its backlog replayed) before the graceful stop
      const settled = yield* Effect.forEach(dialers, (d) =>
        Stream.runHead(Stream.filter(d.statusChanges, (s) => s === "Connected")), { concurrency: "unbounded" }).pipe(
          Effect.timeout(options.settleTimeout ?? "5 seconds"),
          Effect.option,
          Effect.map(Option.isSome)
        )
      // closing the scope stops every dialer: each live connection drains, FINs and waits for the peer's FIN
      return { tick, settled }
    })).pipe(
      // after the scope closed: the hub's Removed events (frames a stopped dialer handed back) are in
      Effect.map(({ settled, tick }): PublisherResult => ({
        ticks: tick,
        settled,
        gaveUp: Object.fromEntries(Object.entries(gaveUp).map(([k, t]) => [k, Array.from(t).sort((a, b) => a - b)]))
      }))
    )
  })

// ---- command line ----

const usage = `tick publisher: broadcasts ticks to a hub of reconnecting outbound peers with bounded backlogs

usage: npx tsx examples/hub/publisher.ts --peers a=127.0.0.1:7101,b=127.0.0.1:7102 [options]

  --peers <list>             key=host:port,... (required)
  --ticks <n>                ticks to broadcast (default 100; 0 = until Ctrl-C)
  --interval <dur>           between ticks (default 100ms)
  --backlog-max <n>          ticks a down peer's backlog holds (default 1000)
  --backlog-max-age <dur>    a tick older than this is expired from a backlog (default 30s)
  --backlog-policy <p>       rejectNew | dropOldest (default rejectNew)
  --reconnect-delay <dur>    between reconnect attempts (default 100ms)
  --connect-timeout <dur>    bound on each connect (default 2s)
  --linger-timeout <dur>     wait for a peer's FIN on close (default 2s)
  --settle-timeout <dur>     after the last tick, wait this long for every peer to be connected (default 5s)
  -h, --help`

/** Parses `a=127.0.0.1:7101,b=127.0.0.1:7102`. */
export const parsePeers = (text: string): Array<Peer> =>
  text.split(",").filter((s) => s !== "").map((spec) => {
    const m = /^([^=]+)=(.+):(\d+)$/.exec(spec.trim())
    if (m === null) throw new Error(`--peers: expected key=host:port, got '${spec}'`)
    return { key: m[1]!, host: m[2]!, port: Number(m[3]) }
  })

const main = () => {
  const { values } = parseArgs({
    options: {
      peers: { type: "string" },
      ticks: { type: "string", default: "100" },
      interval: { type: "string", default: "100ms" },
      "backlog-max": { type: "string", default: "1000" },
      "backlog-max-age": { type: "string", default: "30s" },
      "backlog-policy": { type: "string", default: "rejectNew" },
      "reconnect-delay": { type: "string", default: "100ms" },
      "connect-timeout": { type: "string", default: "2s" },
      "linger-timeout": { type: "string", default: "2s" },
      "settle-timeout": { type: "string", default: "5s" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
  if (values.help || values.peers === undefined) return console.log(usage)
  const policy = values["backlog-policy"] === "dropOldest" ? "dropOldest" : "rejectNew"
  const backlog: Backlog.Options = {
    maxMessages: Number(values["backlog-max"]),
    maxAge: duration("--backlog-max-age", values["backlog-max-age"]),
    policy
  }
  const program = Effect.gen(function*() {
    yield* Console.log(
      `backlog per peer: at most ${backlog.maxMessages} ticks, ${values["backlog-max-age"]} old, ${policy} when full`
    )
    const r = yield* publisher({
      peers: parsePeers(values.peers!),
      ticks: Number(values.ticks),
      interval: duration("--interval", values.interval),
      backlog,
      reconnectDelay: duration("--reconnect-delay", values["reconnect-delay"]),
      connectTimeout: duration("--connect-timeout", values["connect-timeout"]),
      lingerTimeout: duration("--linger-timeout", values["linger-timeout"]),
      settleTimeout: duration("--settle-timeout", values["settle-timeout"]),
      onEvent: (e) => Console.log(describeEvent(e)),
      onTick: (tick, result) =>
        result.failed.length === 0
          ? Effect.void
          : Console.log(`tick ${tick}: not accepted by ${result.failed.map((f) => `${f.key} (${f.error._tag})`).join(", ")}`)
    })
    yield* Console.log(
      `${r.ticks} ticks broadcast; ${r.settled ? "every peer connected at the end" : "NOT every peer connected at the end"}; ` +
        Object.entries(r.gaveUp).map(([k, t]) => `${k}: ${t.length} given up`).join(", ")
    )
  })
  NodeRuntime.runMain(program)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main()
