/**
 * Exposes tether's metrics to Prometheus through @effect/opentelemetry and the
 * OpenTelemetry Prometheus exporter (no hand-written exposition format).
 *
 *   npx tsx examples/metrics/prometheus.ts [--port 9464] [--connections 3] [--seconds 0]
 *
 * It opens a few connections to a loopback echo peer, exchanges frames, closes
 * them, prints one scrape of /metrics and (with --seconds N > 0) keeps serving for N seconds.
 */
import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as OtelResource from "@effect/opentelemetry/Resource"
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus"
import { Effect, Layer, Stream } from "effect"
import * as Http from "node:http"
import * as Net from "node:net"
import { parseArgs } from "node:util"
import { Connection, Framing } from "effect-tether"

/**
 * A scoped HTTP server answering `GET /metrics` with the Prometheus exposition
 * of every Effect metric, tether's included. Returns the port it listens on.
 */
export const serveMetrics = (options: { readonly port: number; readonly host?: string }) =>
  Effect.gen(function*() {
    const exporter = new PrometheusExporter({ preventServerStart: true })
    yield* Layer.buildWithScope(
      OtelMetrics.layer(() => exporter).pipe(Layer.provide(OtelResource.layer({ serviceName: "tether" }))),
      yield* Effect.scope
    )
    const server = Http.createServer((req, res) => {
      if (req.url?.startsWith("/metrics")) exporter.getMetricsRequestHandler(req, res)
      else res.writeHead(404).end()
    })
    return yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(options.port, options.host ?? "127.0.0.1", () =>
          resume(Effect.succeed((server.address() as Net.AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
        })
    )
  })

/** One GET of /metrics. */
export const scrape = (port: number) =>
  Effect.tryPromise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))

const echoPeer = Effect.acquireRelease(
  Effect.async<{ server: Net.Server; port: number }>((resume) => {
    const server = Net.createServer((s) => {
      s.on("error", () => {})
      s.pipe(s)
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, port: (server.address() as Net.AddressInfo).port })))
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
)

/** A small workload: `n` connections, ten echoed frames each, closed gracefully. */
export const workload = (n: number) =>
  Effect.gen(function*() {
    const peer = yield* echoPeer
    yield* Effect.forEach(
      Array.from({ length: n }, (_, i) => i),
      () =>
        Effect.scoped(Effect.gen(function*() {
          const conn = yield* Connection.connectTcp({ port: peer.port, labels: { role: "client", endpoint: "echo" } })
          yield* conn.sendAll(Array.from({ length: 10 }, (_, j) => Framing.utf8(`frame ${j}`)))
          yield* Stream.runDrain(Stream.take(conn.incoming, 10))
          yield* conn.close()
        })),
      { concurrency: "unbounded", discard: true }
    )
  })

const main = Effect.gen(function*() {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "9464" },
      connections: { type: "string", default: "3" },
      seconds: { type: "string", default: "0" }
    }
  })
  const port = yield* serveMetrics({ port: Number(values.port) })
  yield* workload(Number(values.connections))
  const text = yield* scrape(port)
  console.log(text.split("\n").filter((l) => l.startsWith("tether_")).join("\n"))
  const seconds = Number(values.seconds)
  if (seconds > 0) {
    console.log(`\nserving http://127.0.0.1:${port}/metrics for ${seconds} s`)
    yield* Effect.sleep(`${seconds} seconds`)
  }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(Effect.scoped(main)).catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
}
