/**
 * A small actor broker: named actors, each with a bounded mailbox, all behind
 * ONE stop-gate.
 *
 * - `send(actor, message)` goes through tether's gated queue: check the gate →
 *   wait for mailbox room → re-check → commit. Once the gate is closed every
 *   send fails with {@link MailboxClosed}, including a producer that was
 *   already waiting for room.
 * - `shutdown(reason)` closes the gate, then lets every actor drain its
 *   mailbox (bounded by `drainTimeout`). Every accepted message is either
 *   handled or handed back in the report (`unhandled`): accepted = handled +
 *   unhandled.
 * - Optional TCP front door ({@link serveTcp}): newline-framed `actor body`
 *   lines, answered `accepted`, `refused <reason>` or `unknown <actor>`.
 */
import { Clock, Data, Deferred, Duration, Effect, Fiber, Option, Stream } from "effect"
import { Framing, Listener, StopGate } from "effect-tether"

/** A send to a mailbox whose broker is shutting down (or has shut down). */
export class MailboxClosed extends Data.TaggedError("MailboxClosed")<{
  readonly actor: string
  readonly reason: string
}> {
  override get message() {
    return `mailbox of ${this.actor} closed: ${this.reason}`
  }
}

/** A send to an actor the broker does not know. */
export class UnknownActor extends Data.TaggedError("UnknownActor")<{ readonly actor: string }> {
  override get message() {
    return `unknown actor: ${this.actor}`
  }
}

/** What an actor receives. */
export interface Envelope {
  readonly from: string
  readonly body: string
}

/** An actor: a name and what it does with each message (one at a time, in order). */
export interface ActorSpec {
  readonly name: string
  readonly handle: (message: Envelope) => Effect.Effect<void>
}

/** What a shutdown did. */
export interface ShutdownReport {
  readonly reason: string
  /** Messages committed to a mailbox. */
  readonly accepted: number
  /** Messages an actor finished handling. */
  readonly handled: number
  /** Sends refused by the closed gate. */
  readonly refused: number
  /** Messages in the mailboxes when the gate closed (what the drain had to do). */
  readonly queuedAtClose: number
  /** Accepted messages not handled before `drainTimeout` (handed back, in order, per actor). */
  readonly unhandled: ReadonlyArray<{ readonly actor: string; readonly message: Envelope }>
  readonly drained: boolean
  readonly millis: number
  readonly perActor: Readonly<Record<string, { readonly accepted: number; readonly handled: number }>>
}

/** Broker options. */
export interface BrokerOptions {
  readonly actors: ReadonlyArray<ActorSpec>
  /** Mailbox capacity, per actor (default 256). */
  readonly mailboxCapacity?: number | undefined
  /** Bound on the drain at shutdown (default 5 s). */
  readonly drainTimeout?: Duration.DurationInput | undefined
}

/** A running broker. */
export interface Broker {
  readonly actors: ReadonlyArray<string>
  /** Queues a message (waits while the mailbox is full); fails once the gate is closed. */
  readonly send: (actor: string, message: Envelope) => Effect.Effect<void, MailboxClosed | UnknownActor>
  /** Closes the gate, drains every mailbox (bounded), reports. Idempotent: later calls get the same report. */
  readonly shutdown: (reason: string) => Effect.Effect<ShutdownReport>
  readonly stats: () => { readonly accepted: number; readonly handled: number; readonly refused: number }
}

interface Actor {
  readonly spec: ActorSpec
  readonly mailbox: StopGate.GatedQueue<Envelope, string>
  accepted: number
  handled: number
  /** The batch taken from the mailbox and how far the actor got in it. */
  batch: Array<Envelope>
  next: number
  fiber?: Fiber.RuntimeFiber<void>
}

/** Starts a broker in the current scope (closing the scope shuts it down). */
export const broker = (options: BrokerOptions) =>
  Effect.gen(function*() {
    const gate = yield* StopGate.make<string>()
    const capacity = options.mailboxCapacity ?? 256
    const drainTimeout = options.drainTimeout ?? "5 seconds"
    const actors = new Map<string, Actor>()
    let refused = 0
    let handled = 0
    let accepted = 0

    // one fiber per actor: take what is queued, handle it in order; `awaitItems` is false once
    // the gate is closed and the mailbox is empty, so the loop ends exactly when the drain is done
    const loop = (actor: Actor): Effect.Effect<void> =>
      Effect.flatMap(actor.mailbox.awaitItems, (more) => {
        if (!more) return Effect.void
        actor.batch = actor.mailbox.unsafeTakeUpTo(64)
        actor.next = 0
        return Effect.zipRight(
          Effect.whileLoop({
            while: () => actor.next < actor.batch.length,
            body: () => actor.spec.handle(actor.batch[actor.next]!),
            step: () => {
              actor.next++
              actor.handled++
              handled++
            }
          }),
          Effect.suspend(() => loop(actor))
        )
      })

    for (const spec of options.actors) {
      const actor: Actor = {
        spec,
        mailbox: StopGate.unsafeMakeQueue<Envelope, string>(gate, { capacity }),
        accepted: 0,
        handled: 0,
        batch: [],
        next: 0
      }
      actors.set(spec.name, actor)
      actor.fiber = yield* Effect.forkScoped(loop(actor))
    }

    const send = (name: string, message: Envelope): Effect.Effect<void, MailboxClosed | UnknownActor> =>
      Effect.suspend((): Effect.Effect<void, MailboxClosed | UnknownActor> => {
        const actor = actors.get(name)
        if (actor === undefined) return Effect.fail(new UnknownActor({ actor: name }))
        return actor.mailbox.offer(message).pipe(
          Effect.matchEffect({
            onSuccess: () =>
              Effect.sync(() => {
                actor.accepted++
                accepted++
              }),
            onFailure: (e) => {
              refused++
              return Effect.fail(new MailboxClosed({ actor: name, reason: e.reason }))
            }
          })
        )
      })

    const done = yield* Deferred.make<ShutdownReport>()
    const shutdown = (reason: string): Effect.Effect<ShutdownReport> =>
      Effect.uninterruptible(Effect.suspend(() => {
        if (!gate.unsafeClose(reason)) return Deferred.await(done)
        return Effect.gen(function*() {
          const started = yield* Clock.currentTimeMillis
          let queuedAtClose = 0
          for (const a of actors.values()) queuedAtClose += a.mailbox.size()
          const fibers = Array.from(actors.values(), (a) => a.fiber!)
          // (the wait must be interruptible, or the timeout could not cut it short inside this uninterruptible shutdown)
          const drained = Option.isSome(
            yield* Effect.interruptible(Fiber.joinAll(fibers)).pipe(Effect.timeout(drainTimeout), Effect.option)
          )
          // past the bound: stop the actors and hand back what they never got to
          if (!drained) yield* Fiber.interruptAll(fibers)
          const unhandled: Array<{ actor: string; message: Envelope }> = []
          const perActor: Record<string, { accepted: number; handled: number }> = {}
          for (const [name, a] of actors) {
            // the rest of the batch an interrupted actor was in, then its mailbox, in order
            const left = drained ? [] : a.batch.slice(a.next)
            for (const message of [...left, ...a.mailbox.unsafeTakeAll()]) unhandled.push({ actor: name, message })
            perActor[name] = { accepted: a.accepted, handled: a.handled }
          }
          const report: ShutdownReport = {
            reason,
            accepted,
            handled,
            refused,
            queuedAtClose,
            unhandled,
            drained,
            millis: (yield* Clock.currentTimeMillis) - started,
            perActor
          }
          yield* Deferred.succeed(done, report)
          return report
        })
      }))
    yield* Effect.addFinalizer(() => shutdown("scope closed"))

    const b: Broker = {
      actors: Array.from(actors.keys()),
      send,
      shutdown,
      stats: () => ({ accepted, handled, refused })
    }
    return b
  })

/**
 * A TCP front door to a broker, in the current scope: each newline-framed
 * `actor body` line is sent to that actor and answered `accepted`,
 * `refused <reason>` or `unknown <actor>`.
 */
export const serveTcp = (b: Broker, options: { readonly host?: string | undefined; readonly port?: number | undefined }) =>
  Listener.serve(
    {
      host: options.host ?? "127.0.0.1",
      port: options.port ?? 0,
      codec: Framing.newline({ maxFrameBytes: 64 * 1024 }),
      lingerTimeout: "1 second",
      shutdownTimeout: "2 seconds"
    },
    (conn) =>
      Stream.runForEach(conn.incoming, (frame) => {
        const line = Framing.text(frame).trim()
        const space = line.indexOf(" ")
        const actor = space < 0 ? line : line.slice(0, space)
        const body = space < 0 ? "" : line.slice(space + 1)
        return b.send(actor, { from: conn.id, body }).pipe(
          Effect.as("accepted"),
          Effect.catchTags({
            MailboxClosed: (e) => Effect.succeed(`refused ${e.reason}`),
            UnknownActor: (e) => Effect.succeed(`unknown ${e.actor}`)
          }),
          Effect.flatMap((answer) => conn.send(Framing.utf8(answer)))
        )
      }).pipe(Effect.catchTag("ConnectionClosed", () => Effect.void))
  )
