/**
 * The FIX initiator as a program:
 *
 *   npx tsx examples/fix/initiator.ts --help
 *
 * Connects to a FIX 4.4 acceptor (the bundled one: examples/fix/acceptor.ts,
 * or QuickFIX), logs on, keeps the session alive with heartbeats, reconnects
 * by policy, honours a daily session window and logs out on Ctrl-C. Exits 0
 * after an orderly stop, 2 when the session decided `Stop` on a protocol error.
 *
 * @since 0.1.0
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { DisconnectReason, SessionSchedule } from "effect-tether"
import { parseArgs } from "node:util"
import { makeInitiator } from "./client.js"
import { formatEvent, parseDuration, parseIntFlag } from "./cli.js"

const usage = `Usage: npx tsx examples/fix/initiator.ts [options]

A FIX 4.4 initiator built on tether (Dialer + Watchdog.heartbeat + SessionSchedule).

Options:
  --host <host>             acceptor host (default 127.0.0.1)
  --port <port>             acceptor port (default 9878)
  --sender <id>             SenderCompID (default TETHER)
  --target <id>             TargetCompID (default ACCEPTOR; QFIX for test/quickfix/acceptor.cfg)
  --heartbeat <seconds>     HeartBtInt (default 30)
  --logon-timeout <dur>     how long the Logon may stay unanswered (default 10s)
  --logout-timeout <dur>    how long our Logout waits for the answer (default 2s)
  --linger <dur>            how long a disconnect waits for the peer's FIN (default 2s)
  --connect-timeout <dur>   bound on each TCP connect (default 10s)
  --reconnect <dur>         delay between connection attempts (default 5s)
  --start <HH:MM>           daily session window start (with --end; default: non-stop)
  --end <HH:MM>             daily session window end (exclusive; equal to --start: 24 h, new period daily)
  --tz <zone>               IANA time zone of the window (default UTC)
  --duration <dur>          log out and exit after this long (default: run until Ctrl-C)
  --quiet                   do not print every message
  -h, --help                show this help

Durations: 500ms, 2s, 1.5s, 3m.`

const main = Effect.gen(function*() {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "9878" },
      sender: { type: "string", default: "TETHER" },
      target: { type: "string", default: "ACCEPTOR" },
      heartbeat: { type: "string", default: "30" },
      "logon-timeout": { type: "string", default: "10s" },
      "logout-timeout": { type: "string", default: "2s" },
      linger: { type: "string", default: "2s" },
      "connect-timeout": { type: "string", default: "10s" },
      reconnect: { type: "string", default: "5s" },
      start: { type: "string" },
      end: { type: "string" },
      tz: { type: "string", default: "UTC" },
      duration: { type: "string" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false }
    },
    strict: true
  })
  if (values.help) {
    console.log(usage)
    return
  }
  if ((values.start === undefined) !== (values.end === undefined)) throw new Error("--start and --end go together")
  const schedule = values.start !== undefined && values.end !== undefined
    ? SessionSchedule.daily({ start: values.start, end: values.end, timeZone: values.tz })
    : SessionSchedule.nonStop
  const print = (line: string) => console.log(line)

  yield* Effect.scoped(Effect.gen(function*() {
    const initiator = yield* makeInitiator({
      host: values.host,
      port: parseIntFlag("--port", values.port),
      schedule,
      reconnectInterval: parseDuration("--reconnect", values.reconnect),
      connectTimeout: parseDuration("--connect-timeout", values["connect-timeout"]),
      lingerTimeout: parseDuration("--linger", values.linger),
      session: {
        senderCompId: values.sender,
        targetCompId: values.target,
        heartBtInt: parseIntFlag("--heartbeat", values.heartbeat),
        logonTimeout: parseDuration("--logon-timeout", values["logon-timeout"]),
        logoutTimeout: parseDuration("--logout-timeout", values["logout-timeout"]),
        observe: (e) => {
          if (!values.quiet || (e._tag !== "Sent" && e._tag !== "Received")) print(formatEvent(e))
        }
      },
      onDialerEvent: (e) =>
        Effect.sync(() => {
          switch (e._tag) {
            case "WaitingForWindow":
              return print(`waiting for the session window (opens ${new Date(e.opensAt).toISOString()})`)
            case "NewPeriod":
              return print(`session period ${e.current}: sequence numbers start at 1`)
            case "Connecting":
              return print(`connecting to ${values.host}:${values.port} (attempt ${e.attempt})`)
            case "ConnectFailed":
              return print(`connect failed: ${e.error.message}`)
            case "Disconnected":
              return print(`disconnected: ${DisconnectReason.describe(e.reason)}`)
            default:
              return
          }
        })
    })
    // Ctrl-C (or the end of --duration) logs out before the dialer stops
    let requested = false
    const stop = (text: string) => Effect.suspend(() => {
      requested = true
      return initiator.stop(text)
    })
    yield* Effect.addFinalizer(() => Effect.asVoid(stop("initiator shutting down")))
    const stopAfter = values.duration === undefined
      ? Effect.never
      : Effect.zipRight(Effect.sleep(parseDuration("--duration", values.duration)), stop("done"))
    const outcome = yield* Effect.raceFirst(initiator.dialer.outcome, stopAfter)
    print(`stopped: ${outcome.reason}`)
    // the session itself decided Stop (a protocol error), nobody asked for it
    if (!requested && initiator.ends().at(-1)?.decision === "Stop") process.exitCode = 2
  }))
})

NodeRuntime.runMain(
  main.pipe(
    Effect.catchAllDefect((e) =>
      Effect.sync(() => {
        console.error(e instanceof Error ? e.message : String(e))
        process.exitCode = 1
      })
    )
  ),
  { disableErrorReporting: false }
)
