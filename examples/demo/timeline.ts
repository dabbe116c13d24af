/**
 * The demo's timeline: events as they happen (human lines or JSON lines), a
 * progress line while a story waits on a timeout, and the final report table.
 */
import { Context, Effect, Layer, Schedule } from "effect"

export interface StoryResult {
  readonly story: string
  readonly peer: string
  readonly tether: string
  readonly resolvedMs: number
  readonly delivered: number
  readonly undelivered: number
  readonly lost: number
  readonly ok: boolean
}

export class Timeline extends Context.Tag("demo/Timeline")<Timeline, {
  readonly json: boolean
  readonly event: (story: string, what: string, data?: Record<string, unknown>) => Effect.Effect<void>
  /** Shows a progress line (“waiting for …”) while `self` runs. */
  readonly waiting: <A, E, R>(label: string, self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly report: (results: ReadonlyArray<StoryResult>) => Effect.Effect<void>
}>() {}

const t0 = performance.now()
const elapsed = () => performance.now() - t0
const stamp = () => `${(elapsed() / 1000).toFixed(3).padStart(7)} s`

export const layer = (json: boolean) =>
  Layer.succeed(Timeline, {
    json,
    event: (story, what, data) =>
      Effect.sync(() => {
        if (json) console.log(JSON.stringify({ t: Math.round(elapsed()), story, event: what, ...data }))
        else {
          const extra = data && Object.keys(data).length > 0
            ? `  ${Object.entries(data).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")}`
            : ""
          console.log(`${stamp()}  [${story}] ${what}${extra}`)
        }
      }),
    waiting: (label, self) => {
      if (json || !process.stdout.isTTY) return self
      const started = performance.now()
      const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]
      let i = 0
      const tick = Effect.sync(() => {
        const s = ((performance.now() - started) / 1000).toFixed(1)
        process.stdout.write(`\r${" ".repeat(11)}${frames[i++ % frames.length]} ${label} … ${s} s   `)
      })
      const clear = Effect.sync(() => process.stdout.write("\r\x1b[2K"))
      return Effect.scoped(
        Effect.gen(function*() {
          yield* Effect.forkScoped(Effect.repeat(tick, Schedule.spaced("100 millis")))
          return yield* self
        })
      ).pipe(Effect.ensuring(clear))
    },
    report: (results) =>
      Effect.sync(() => {
        if (json) {
          for (const r of results) console.log(JSON.stringify({ event: "result", ...r }))
          return
        }
        const header = ["story", "what the peer did", "what tether did", "resolved in", "delivered", "not delivered (reported)", "lost"]
        const rows = results.map((r) => [
          `${r.ok ? "✔" : "✘"} ${r.story}`,
          r.peer,
          r.tether,
          `${(r.resolvedMs / 1000).toFixed(2)} s`,
          String(r.delivered),
          String(r.undelivered),
          String(r.lost)
        ])
        const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)))
        const line = (cells: ReadonlyArray<string>) => `| ${cells.map((x, c) => x.padEnd(widths[c]!)).join(" | ")} |`
        console.log("")
        console.log(line(header))
        console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`)
        for (const row of rows) console.log(line(row))
        console.log(
          "\ndelivered: counted by the peer where it is ours to read (2, 3, 4); handed to the peer's kernel where the\n" +
            "peer is dead or stubborn (1, 5, 5b). not delivered: accepted frames the connection handed back, never dropped.\n" +
            "lost: accepted − delivered − not delivered."
        )
      })
  })
