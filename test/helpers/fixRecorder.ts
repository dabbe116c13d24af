/**
 * Records FIX session events and lets a test wait (bounded) for one.
 */
import { Deferred, Duration, Effect, FiberId } from "effect"
import { get, type Message, show, Tag } from "../../examples/fix/codec.js"
import type { SessionEvent } from "../../examples/fix/session.js"

export interface Recorder {
  readonly observe: (event: SessionEvent) => void
  readonly events: ReadonlyArray<SessionEvent>
  readonly received: (type?: string) => ReadonlyArray<Message>
  readonly sent: (type?: string) => ReadonlyArray<Message>
  readonly waitFor: (
    what: string,
    predicate: (event: SessionEvent) => boolean,
    timeout?: Duration.DurationInput
  ) => Effect.Effect<SessionEvent, Error>
  readonly transcript: () => string
}

export const describeEvent = (e: SessionEvent): string => {
  switch (e._tag) {
    case "Sent":
      return `${e.at} > ${show(e.message)}`
    case "Received":
      return `${e.at} < ${show(e.message)}`
    case "LoggedOn":
      return `${e.at} logged on (HeartBtInt ${e.heartBtInt})`
    case "Gap":
      return `${e.at} gap: expected ${e.expected}, received ${e.received}`
    case "Ended":
      return `${e.at} ended: ${e.end.decision} ${e.end.text} (${e.end.reason._tag})`
  }
}

export const makeRecorder = (): Recorder => {
  const events: Array<SessionEvent> = []
  const waiters: Array<{ predicate: (e: SessionEvent) => boolean; done: Deferred.Deferred<SessionEvent> }> = []
  const transcript = () => events.map(describeEvent).join("\n")
  return {
    events,
    observe: (e) => {
      events.push(e)
      for (const w of waiters) if (w.predicate(e)) Deferred.unsafeDone(w.done, Effect.succeed(e))
    },
    received: (type) =>
      events.flatMap((e) => (e._tag === "Received" && (type === undefined || e.message.type === type) ? [e.message] : [])),
    sent: (type) =>
      events.flatMap((e) => (e._tag === "Sent" && (type === undefined || e.message.type === type) ? [e.message] : [])),
    transcript,
    waitFor: (what, predicate, timeout = "5 seconds") =>
      Effect.suspend(() => {
        const seen = events.find(predicate)
        if (seen !== undefined) return Effect.succeed(seen)
        const done = Deferred.unsafeMake<SessionEvent>(FiberId.none)
        waiters.push({ predicate, done })
        return Deferred.await(done).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new Error(`no ${what} within ${Duration.format(Duration.decode(timeout))}\n${transcript()}`)
          })
        )
      })
  }
}

export const isReceived = (type: string, test?: (m: Message) => boolean) => (e: SessionEvent) =>
  e._tag === "Received" && e.message.type === type && (test === undefined || test(e.message))

export const isSent = (type: string, test?: (m: Message) => boolean) => (e: SessionEvent) =>
  e._tag === "Sent" && e.message.type === type && (test === undefined || test(e.message))

export const hasField = (tag: number, value: string) => (m: Message) => get(m, tag) === value

export { Tag }
