/**
 * A real half-open link: the peer lives in its own network namespace behind a
 * veth pair; taking its link down makes it vanish without FIN or RST. Our
 * kernel keeps the data unacknowledged and retransmits; the send-stall reaper
 * must end the connection. Needs Linux + root (CI runs as root); elsewhere the
 * test is skipped with the reason in its name.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, HashMap, Logger, Schedule } from "effect"
import { Connection, Watchdog } from "effect-tether"
import * as Testing from "effect-tether/testing"
import * as NetNs from "../examples/demo/netns.js"

const within = <A, E, R>(ms: number, what: string, self: Effect.Effect<A, E, R>) => Testing.within(ms, what, self)

const available = NetNs.availability()
const title = "a peer that vanishes without FIN or RST (veth link down in its namespace) is reaped with SendStalled"

describe("Watchdog (half-open link in a network namespace)", () => {
  if (!available.ok) {
    console.warn(`skipping the half-open link test: ${available.reason}`)
    it.skip(`${title} — skipped: ${available.reason}`, () => {})
    return
  }

  it.scopedLive(title, () => {
    const warnings: Array<Record<string, unknown>> = []
    const logger = Logger.make<unknown, void>(({ annotations, logLevel }) => {
      if (logLevel.label === "WARN") warnings.push(Object.fromEntries(HashMap.toEntries(annotations)))
    })
    return Effect.gen(function*() {
      const ns = yield* NetNs.make
      const port = yield* ns.spawnReader
      const stallTimeout = 1500
      const probeInterval = 250
      const conn = yield* Connection.connectTcp({
        host: ns.peerIp,
        port,
        id: "half-open",
        connectTimeout: "3 seconds",
        writeTimeout: "1 minute", // the reaper must end this, not the write deadline
        watchdogs: [Watchdog.reaper({ stallTimeout: `${stallTimeout} millis`, probeInterval: `${probeInterval} millis` })]
      })
      const sender = yield* Effect.fork(Effect.flip(Effect.forever(conn.send(new Uint8Array(64 * 1024)))))
      // the peer is alive and reading: data flows
      yield* within(
        5000,
        "1 MB to reach the peer",
        Effect.repeat(Effect.sync(() => conn.unsafeStats().bytesOut), {
          until: (n) => n > 1024 * 1024,
          schedule: Schedule.spaced("20 millis")
        })
      )
      expect(conn.unsafeStats().state).toBe("Active")
      yield* ns.linkDown
      const downAt = performance.now()
      const reason = yield* within(stallTimeout + 2 * probeInterval + 3000, "the reap", conn.closed)
      const latency = performance.now() - downAt
      const reap = warnings.find((w) => w["watchdog"] !== undefined)
      console.log(
        `half-open link: reaped ${Math.round(latency)} ms after the link went down ` +
          `(stallTimeout ${stallTimeout} ms, probe ${probeInterval} ms); figures: ${JSON.stringify(reap)}`
      )
      expect(reason._tag).toBe("SendStalled")
      // progress can stop up to one RTT after the link goes down; the reap follows within the bound
      expect(latency).toBeLessThanOrEqual(stallTimeout + 2 * probeInterval + 300)
      expect(reap).toMatchObject({ connection: "half-open", reason: "SendStalled", source: "proc-net-tcp", tcpState: "ESTABLISHED" })
      expect(reap?.["kernelQueuedBytes"]).toBeGreaterThan(0)
      const err = yield* within(1000, "the sender to fail", Fiber.join(sender))
      expect(err).toMatchObject({ _tag: "ConnectionClosed", reason: { _tag: "SendStalled" } })
      expect(conn.unsafeStats().transport.socket?.destroyed).toBe(true)
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  }, 15_000)
})
