/**
 * The kernel's view of TCP sockets, read from `/proc/net/tcp` and
 * `/proc/net/tcp6` (Linux). One table read serves every connection probed in
 * the same tick: the table is cached with the Clock time it was read at, and a
 * probe reuses it when it was read at or after the probe's tick boundary (probe
 * loops sleep to tick boundaries, so all connections share one read per tick).
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Deferred from "effect/Deferred"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import type * as Transport from "../Transport.js"
import type * as Watchdog from "../Watchdog.js"

/** @internal */
export interface TcpRow {
  /** Normalized `ip|port` of the local end. */
  readonly local: string
  /** Normalized `ip|port` of the remote end. */
  readonly remote: string
  readonly state: string
  /** Bytes sent but not yet acknowledged by the peer, plus bytes not yet sent (SIOCOUTQ). */
  readonly txQueue: number
  /** Bytes received but not yet read by the application. */
  readonly rxQueue: number
  /** Active kernel timer: 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero-window probe. */
  readonly timer: number
  /** Unrecovered retransmissions (RTO timeouts) of the socket. */
  readonly retransmits: number
  readonly inode: number
  /**
   * The transport's `bytesHandedToKernel` taken before the read of this row started, when known:
   * `handedBefore − txQueue` is then a lower bound of the bytes the peer acknowledged (never ahead
   * of the truth, however the read raced the socket's writes).
   */
  readonly handedBefore?: number | undefined
}

/** @internal */
export const tcpStates: Record<number, string> = {
  1: "ESTABLISHED",
  2: "SYN_SENT",
  3: "SYN_RECV",
  4: "FIN_WAIT1",
  5: "FIN_WAIT2",
  6: "TIME_WAIT",
  7: "CLOSE",
  8: "CLOSE_WAIT",
  9: "LAST_ACK",
  10: "LISTEN",
  11: "CLOSING",
  12: "NEW_SYN_RECV"
}

const littleEndian = Os.endianness() === "LE"

// each 32-bit word of an address is printed with %08X in host byte order
const wordBytes = (hex: string): Array<number> => {
  const b = [
    parseInt(hex.slice(0, 2), 16),
    parseInt(hex.slice(2, 4), 16),
    parseInt(hex.slice(4, 6), 16),
    parseInt(hex.slice(6, 8), 16)
  ]
  return littleEndian ? b.reverse() : b
}

const v4 = (b: ReadonlyArray<number>) => `${b[0]}.${b[1]}.${b[2]}.${b[3]}`

const v6FromBytes = (b: ReadonlyArray<number>): string => {
  let mapped = b[10] === 0xff && b[11] === 0xff
  for (let i = 0; i < 10 && mapped; i++) if (b[i] !== 0) mapped = false
  if (mapped) return v4(b.slice(12))
  const groups: Array<string> = []
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16))
  return groups.join(":")
}

const hexAddress = (hex: string): string => {
  if (hex.length === 8) return v4(wordBytes(hex))
  const bytes: Array<number> = []
  for (let w = 0; w < 4; w++) bytes.push(...wordBytes(hex.slice(w * 8, w * 8 + 8)))
  return v6FromBytes(bytes)
}

/**
 * Normalizes an address as Node reports it (`127.0.0.1`, `::1`,
 * `::ffff:127.0.0.1`, `fe80::1%eth0`) to the form used for table keys:
 * dotted quad for IPv4 and IPv4-mapped IPv6, eight unpadded hex groups otherwise.
 * @internal
 */
export const normalizeIp = (address: string): string => {
  const ip = address.includes("%") ? address.slice(0, address.indexOf("%")) : address
  if (Net.isIPv4(ip)) return ip
  if (!Net.isIPv6(ip)) return ip
  let head = ip
  let tailV4: Array<string> = []
  const lastColon = ip.lastIndexOf(":")
  const last = ip.slice(lastColon + 1)
  if (last.includes(".")) {
    const [a, b, c, d] = last.split(".").map((n) => parseInt(n, 10))
    tailV4 = [((a! << 8) | b!).toString(16), ((c! << 8) | d!).toString(16)]
    head = ip.slice(0, lastColon + 1) + "0:0" // two placeholder groups, replaced below
  }
  const [left, right] = head.includes("::") ? head.split("::") as [string, string] : [head, undefined]
  const l = left === "" ? [] : left.split(":")
  const r = right === undefined ? [] : right === "" ? [] : right.split(":")
  let groups = right === undefined ? l : [...l, ...Array<string>(8 - l.length - r.length).fill("0"), ...r]
  if (tailV4.length > 0) groups = [...groups.slice(0, groups.length - 2), ...tailV4]
  const words = groups.map((g) => parseInt(g, 16))
  const bytes: Array<number> = []
  for (const w of words) bytes.push((w >> 8) & 0xff, w & 0xff)
  return v6FromBytes(bytes)
}

/** @internal */
export const endpointKey = (ip: string, port: number) => `${normalizeIp(ip)}|${port}`

/** The row of one table line split on whitespace, or undefined when it does not parse. */
const rowOfFields = (f: ReadonlyArray<string>): TcpRow | undefined => {
  if (f.length < 10) return undefined
  const [lAddr, lPort] = f[1]!.split(":")
  const [rAddr, rPort] = f[2]!.split(":")
  const [tx, rx] = f[4]!.split(":")
  const [tr] = f[5]!.split(":")
  if (lAddr === undefined || lPort === undefined || rAddr === undefined || rPort === undefined) return undefined
  if (tx === undefined || rx === undefined || tr === undefined) return undefined
  if ((lAddr.length !== 8 && lAddr.length !== 32) || lAddr.length !== rAddr.length) return undefined
  const stateNum = parseInt(f[3]!, 16)
  return {
    local: `${hexAddress(lAddr)}|${parseInt(lPort, 16)}`,
    remote: `${hexAddress(rAddr)}|${parseInt(rPort, 16)}`,
    state: tcpStates[stateNum] ?? `UNKNOWN_${stateNum}`,
    txQueue: parseInt(tx, 16),
    rxQueue: parseInt(rx, 16),
    timer: parseInt(tr, 16),
    retransmits: parseInt(f[6]!, 16),
    inode: parseInt(f[9]!, 10)
  }
}

const splitLine = (line: string): Array<string> => line.trim().split(/\s+/)

/**
 * Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`. Lines that do not
 * parse are skipped.
 * @internal
 */
export const parseProcNetTcp = (text: string): Array<TcpRow> => {
  const rows: Array<TcpRow> = []
  const lines = text.split("\n")
  for (let i = 1; i < lines.length; i++) {
    const row = rowOfFields(splitLine(lines[i]!))
    if (row !== undefined) rows.push(row)
  }
  return rows
}

/**
 * What a probe learns about one socket: its row, `"absent"` when the kernel
 * tables were read after the socket was connected and list no such socket (the
 * kernel dropped it: a reset, a timeout), `"skipped"` when the socket needs no
 * kernel figures this tick (see {@link makeProcNetSampler}), or `undefined`
 * when nothing can be said (not Linux, not a socket, no file descriptor, an
 * empty table).
 * @internal
 */
export type Sample = TcpRow | "absent" | "skipped" | undefined

/**
 * An index of one read of the tables: the split lines of live sockets by inode,
 * and every line by its hex `localPort:remotePort` (the fallback for a socket
 * whose inode cannot be read). Rows are parsed only when looked up.
 * @internal
 */
export interface Table {
  /** Clock millis at which the read started. */
  readonly readAt: number
  /** The sampler's read number (1, 2, ...): a read with a higher number started later. */
  readonly seq: number
  /** Lines that split into a row's fields. */
  readonly size: number
  /** Lines of live sockets (inode > 0) by inode. */
  readonly byInode: ReadonlyMap<number, string>
  /** Every line by `localPort:remotePort` in hex as printed. */
  readonly byPorts: ReadonlyMap<string, ReadonlyArray<string>>
}

/** Lines indexed per synchronous slice: well under a microsecond each, so a slice stays well under a few milliseconds. */
const linesPerSlice = 250

/** One turn of the event loop (timers and I/O run): not a delay, so not a Clock matter. @internal */
export const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

const readProc = (path: string): Effect.Effect<string> =>
  Effect.orElseSucceed(Effect.tryPromise(() => FsP.readFile(path, "latin1")), () => "")

const hexPort = (port: number) => port.toString(16).toUpperCase().padStart(4, "0")

/**
 * The fields a table line is indexed by — local and remote port (hex, as
 * printed) and inode — found by scanning for spaces, without splitting the
 * line. Undefined when the line has fewer than 10 fields.
 */
const scanLine = (text: string, start: number, end: number): { ports: string; inode: number } | undefined => {
  let i = start
  let local = ""
  let inode = -1
  for (let field = 0; field < 10; field++) {
    while (i < end && text.charCodeAt(i) === 32) i++
    if (i >= end) return undefined
    const from = i
    while (i < end && text.charCodeAt(i) !== 32) i++
    if (field === 1) local = text.slice(text.indexOf(":", from) + 1, i)
    else if (field === 2) local = `${local}:${text.slice(text.indexOf(":", from) + 1, i)}`
    else if (field === 9) inode = parseInt(text.slice(from, i), 10)
  }
  return Number.isNaN(inode) ? undefined : { ports: local, inode }
}

/**
 * Reads the tables asynchronously and indexes them in slices of
 * {@link linesPerSlice} lines with a turn of the event loop between slices, so
 * no synchronous slice grows with the table. Lines are split into fields only
 * when looked up.
 * @internal
 */
export const readIndex = (files: ReadonlyArray<string>, readAt: number, seq = 0): Effect.Effect<Table> =>
  Effect.gen(function*() {
    const byInode = new Map<number, string>()
    const byPorts = new Map<string, Array<string>>()
    let size = 0
    for (const file of files) {
      const text = yield* readProc(file)
      let pos = text.indexOf("\n") + 1 // skip the header line
      if (pos === 0) continue
      while (pos < text.length) {
        for (let n = 0; n < linesPerSlice && pos < text.length; n++) {
          let end = text.indexOf("\n", pos)
          if (end < 0) end = text.length
          const found = scanLine(text, pos, end)
          if (found !== undefined) {
            const l = text.slice(pos, end)
            size++
            if (found.inode > 0) byInode.set(found.inode, l)
            const same = byPorts.get(found.ports)
            if (same === undefined) byPorts.set(found.ports, [l])
            else same.push(l)
          }
          pos = end + 1
        }
        if (pos < text.length) yield* yieldToEventLoop
      }
    }
    return { readAt, seq, size, byInode, byPorts }
  })

const defaultFiles: ReadonlyArray<string> = ["/proc/net/tcp", "/proc/net/tcp6"]

/** @internal */
export const supported = process.platform === "linux" && Fs.existsSync("/proc/net/tcp")

/** The key of a socket's row, or undefined when it is not (or no longer) connected. */
const socketKey = (socket: Transport.TransportStats["socket"]): string | undefined => {
  if (socket === undefined) return undefined
  const { localAddress, localPort, remoteAddress, remotePort } = socket
  if (localAddress === undefined || localPort === undefined) return undefined
  if (remoteAddress === undefined || remotePort === undefined) return undefined
  return `${endpointKey(localAddress, localPort)}→${endpointKey(remoteAddress, remotePort)}`
}

/**
 * The inode of the socket behind a live Node socket's file descriptor
 * (`/proc/self/fd/N` → `socket:[inode]`), or undefined when there is none to
 * read (destroyed, no handle, not Linux). Only called on a socket that is not
 * destroyed, so the descriptor cannot have been closed and reused.
 */
const socketInode = (socket: Transport.TransportStats["socket"]): number | undefined => {
  if (socket === undefined || socket.destroyed) return undefined
  const fd = (socket as { _handle?: { fd?: unknown } | null })._handle?.fd
  if (typeof fd !== "number" || fd < 0) return undefined
  try {
    const m = /^socket:\[(\d+)\]$/.exec(Fs.readlinkSync(`/proc/self/fd/${fd}`))
    return m === null ? undefined : parseInt(m[1]!, 10)
  } catch {
    return undefined
  }
}

const skipped: Effect.Effect<Sample> = Effect.succeed("skipped")

/** What the sampler remembers of a socket between ticks, for the skip rule. */
interface Memo {
  /** `bytesHandedToKernel` at the previous sample, and how many reads had started then. */
  handed: number
  handedSeq: number
  /** `bytesHandedToKernel` the kernel is known to have had acknowledged (txQueue 0 in a table read after it). */
  acked: number
  /** The state of the last row the kernel gave. */
  state: string | undefined
  /** The socket's inode, read once per file descriptor. */
  fd: number | undefined
  inode: number | undefined
}

/**
 * Whether a socket can do without kernel figures this tick: Node's view says
 * everything a probe could learn. Precisely, all of:
 * - the transport is `open` (not half-closed, not closed) and not connecting;
 * - its reader is flowing (`readableFlowing === true`): a peer's FIN or RST
 *   reaches Node by itself, so peer-gone needs no row (a reader paused by
 *   backpressure — the early-reset case — is always probed);
 * - nothing is queued in user space (`queuedBytes === 0`);
 * - nothing handed to the kernel is unacknowledged: `bytesHandedToKernel` is
 *   the figure a table read after it confirmed acknowledged (txQueue 0), so
 *   send-stall has nothing to time;
 * - the kernel's last row for it said `ESTABLISHED`.
 * A new socket is therefore probed until one table confirms it; one write makes
 * it probed again until its bytes are acknowledged.
 * @internal
 */
export const canSkip = (stats: Transport.TransportStats, memo: Memo | undefined): boolean => {
  const socket = stats.socket
  return memo !== undefined && socket !== undefined && stats.state === "open" && !socket.connecting &&
    socket.readableFlowing === true && stats.queuedBytes === 0 && stats.bytesHandedToKernel === memo.acked &&
    memo.state === "ESTABLISHED"
}

/**
 * A sampler over `/proc/net/tcp{,6}` with a table shared by every probe of the
 * same tick. `reads()` counts the table reads (for tests and metrics).
 *
 * The tables are read asynchronously and indexed in slices (see
 * {@link readIndex}); rows are parsed only for the sockets probed. A socket
 * that needs no kernel figures ({@link canSkip}) is answered `"skipped"`
 * without a read, so a tick where no socket needs figures reads nothing.
 *
 * A connected socket missing from a table read after it connected is reported
 * `"absent"` only once its own inode is confirmed missing too: the kernel
 * unhashes a reset or timed-out socket at once, while a key that merely failed
 * to match (an address form the normalization does not know) still finds the
 * socket by inode, and that row is returned. An empty table (a sandbox that
 * hides it) says nothing.
 * @internal
 */
export const makeProcNetSampler = (files?: ReadonlyArray<string>) => {
  const paths = files ?? defaultFiles
  let table: Table | undefined
  let pending: { readonly readAt: number; readonly seq: number; readonly done: Deferred.Deferred<Table> } | undefined
  let reads = 0
  const memos = new WeakMap<Watchdog.ProbeTarget, Memo>()
  // a table read at or after `notBefore` is reused: every probe of the same tick shares one read,
  // however late its fiber wakes up; a read under way for this tick is awaited, not repeated
  const tableFor = (notBefore: number): Effect.Effect<Table> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      if (table !== undefined && table.readAt >= notBefore && table.readAt <= now) return Effect.succeed(table)
      if (pending !== undefined && pending.readAt >= notBefore) return Deferred.await(pending.done)
      reads++
      const done = Deferred.unsafeMake<Table>(FiberId.none)
      const mine = { readAt: now, seq: reads, done }
      pending = mine
      return readIndex(paths, now, reads).pipe(
        Effect.onExit((exit) => {
          // an interrupted read leaves an empty table for its waiters: it says nothing
          const t: Table = Exit.isSuccess(exit) ? exit.value : { readAt: now, seq: mine.seq, size: 0, byInode: new Map(), byPorts: new Map() }
          if (pending === mine) pending = undefined
          if (table === undefined || table.readAt <= t.readAt) table = t
          return Deferred.succeed(done, t)
        })
      )
    })
  const inodeOf = (socket: Net.Socket, memo: Memo): number | undefined => {
    const fd = (socket as { _handle?: { fd?: unknown } | null })._handle?.fd
    if (typeof fd !== "number" || fd < 0 || socket.destroyed) return undefined
    if (memo.fd !== fd || memo.inode === undefined) {
      memo.fd = fd
      memo.inode = socketInode(socket)
    }
    return memo.inode
  }
  const byKey = (t: Table, socket: Net.Socket, key: string): TcpRow | undefined => {
    const candidates = t.byPorts.get(`${hexPort(socket.localPort!)}:${hexPort(socket.remotePort!)}`)
    if (candidates === undefined) return undefined
    let found: TcpRow | undefined
    for (const l of candidates) {
      const row = rowOfFields(splitLine(l))
      if (row === undefined || `${row.local}→${row.remote}` !== key) continue
      if (found === undefined || (found.inode === 0 && row.inode !== 0)) found = row
    }
    return found
  }
  const sample = (transport: Watchdog.ProbeTarget, notBefore: number): Effect.Effect<Sample> =>
    Effect.suspend(() => {
      if (!supported && files === undefined) return Effect.succeed(undefined)
      const stats = transport.stats()
      let memo = memos.get(transport)
      if (canSkip(stats, memo)) return skipped // before the key: an idle socket costs no string work
      const socket = stats.socket
      const key = socketKey(socket)
      if (key === undefined) return Effect.succeed(undefined)
      if (memo === undefined) {
        memo = { handed: -1, handedSeq: 0, acked: -1, state: undefined, fd: undefined, inode: undefined }
        memos.set(transport, memo)
      }
      const m = memo
      // a txQueue of 0 acknowledges what was handed before the table's read started: the figure taken at
      // this call when the read started after it, else the one of the previous call when it started after that
      const prev = { handed: m.handed, seq: m.handedSeq }
      const handedNow = stats.bytesHandedToKernel
      const seqNow = reads
      m.handed = handedNow
      m.handedSeq = seqNow
      return Effect.map(tableFor(notBefore), (t): Sample => {
        const inode = t.size === 0 ? undefined : inodeOf(socket!, m)
        const l = inode === undefined ? undefined : t.byInode.get(inode)
        const row = (l === undefined ? undefined : rowOfFields(splitLine(l))) ?? byKey(t, socket!, key)
        m.state = row?.state
        if (row !== undefined) {
          // a figure taken before this read started (-1: none is known): the read is asynchronous, and
          // the socket's writes during it move `bytesHandedToKernel` but not this row's txQueue
          const covered = t.seq > seqNow ? handedNow : t.seq > prev.seq ? prev.handed : -1
          if (row.txQueue === 0 && covered > m.acked) m.acked = covered
          return covered < 0 ? row : { ...row, handedBefore: covered }
        }
        if (t.size === 0 || socket!.connecting) return undefined
        if (inode === undefined) return undefined
        return "absent"
      })
    })
  // the same rule as the first line of `sample`, without an effect: a driver answers these itself.
  // A socket that cannot skip is sampled this tick: what it has handed to the kernel is noted now,
  // before the tick's read starts (a driver asks every socket before sampling any), so a txQueue of 0
  // in that read confirms it even for the sockets sampled after the read started
  const unsafeCanSkip = (transport: Watchdog.ProbeTarget): boolean => {
    if (!supported && files === undefined) return true
    const stats = transport.stats()
    const memo = memos.get(transport)
    if (canSkip(stats, memo)) return true
    if (memo !== undefined) {
      memo.handed = stats.bytesHandedToKernel
      memo.handedSeq = reads
    } else if (socketKey(stats.socket) !== undefined) {
      memos.set(transport, {
        handed: stats.bytesHandedToKernel,
        handedSeq: reads,
        acked: -1,
        state: undefined,
        fd: undefined,
        inode: undefined
      })
    }
    return false
  }
  return { sample, unsafeCanSkip, reads: () => reads }
}
