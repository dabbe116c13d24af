/**
 * The Prometheus export example, scraped once: tether's metrics come out through
 * @effect/opentelemetry and the OpenTelemetry Prometheus exporter.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { scrape, serveMetrics, workload } from "../examples/metrics/prometheus.js"

describe("Prometheus export", () => {
  it.scopedLive("a scrape shows connects, disconnects by reason, frames and write latency", () =>
    Effect.gen(function*() {
      const port = yield* serveMetrics({ port: 0 })
      yield* workload(2)
      const text = yield* scrape(port).pipe(Effect.timeout("5 seconds"))
      const line = (name: string) => text.split("\n").find((l) => l.startsWith(name) && l.includes('endpoint="echo"'))
      expect(line("tether_connects_total")).toMatch(/ 2$/)
      expect(line("tether_frames_out_total")).toMatch(/ 20$/)
      expect(line("tether_frames_in_total")).toMatch(/ 20$/)
      expect(text).toMatch(/tether_disconnects_total\{[^}]*reason="LocalClose"[^}]*\} 2/)
      expect(line("tether_write_latency_seconds_count")).toBeDefined()
      expect(text).toContain("# TYPE tether_connects_total counter")
    }))
})
