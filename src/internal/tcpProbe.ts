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
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import type * as Transport from "../Transport.js"

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

/**
 * Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`. Lines that do not
 * parse are skipped.
 * @internal
 */
export const parseProcNetTcp = (text: string): Array<TcpRow> => {
  const rows: Array<TcpRow> = []
  const lines = text.split("\n")
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/)
    if (f.length < 10) continue
    const [lAddr, lPort] = f[1]!.split(":")
    const [rAddr, rPort] = f[2]!.split(":")
    const [tx, rx] = f[4]!.split(":")
    const [tr] = f[5]!.split(":")
    if (lAddr === undefined || lPort === undefined || rAddr === undefined || rPort === undefined) continue
    if (tx === undefined || rx === undefined || tr === undefined) continue
    if ((lAddr.length !== 8 && lAddr.length !== 32) || lAddr.length !== rAddr.length) continue
    const stateNum = parseInt(f[3]!, 16)
    rows.push({
      local: `${hexAddress(lAddr)}|${parseInt(lPort, 16)}`,
      remote: `${hexAddress(rAddr)}|${parseInt(rPort, 16)}`,
      state: tcpStates[stateNum] ?? `UNKNOWN_${stateNum}`,
      txQueue: parseInt(tx, 16),
      rxQueue: parseInt(rx, 16),
      timer: parseInt(tr, 16),
      retransmits: parseInt(f[6]!, 16),
      inode: parseInt(f[9]!, 10)
    })
  }
  return rows
}

/** @internal */
export interface Table {
  /** Clock millis at which the table was read. */
  readonly readAt: number
  /** Rows keyed by `local→remote`. */
  readonly rows: ReadonlyMap<string, TcpRow>
}

/**
 * What a probe learns about one socket: its row, `"absent"` when the kernel
 * tables were read after the socket was connected and list no such socket (the
 * kernel dropped it: a reset, a timeout), or `undefined` when nothing can be
 * said (not Linux, not a socket, no file descriptor, an empty table).
 * @internal
 */
export type Sample = TcpRow | "absent" | undefined

const readProc = (path: string): string => {
  try {
    return Fs.readFileSync(path, "latin1")
  } catch {
    return ""
  }
}

/**
 * Reads both tables into one map keyed by `local→remote`. A live socket is
 * preferred over a TIME_WAIT leftover of the same 4-tuple (inode 0).
 * @internal
 */
export const readTables = (files: ReadonlyArray<string> = ["/proc/net/tcp", "/proc/net/tcp6"]) => {
  const rows = new Map<string, TcpRow>()
  for (const file of files) {
    for (const row of parseProcNetTcp(readProc(file))) {
      const key = `${row.local}→${row.remote}`
      const prev = rows.get(key)
      if (prev === undefined || (prev.inode === 0 && row.inode !== 0)) rows.set(key, row)
    }
  }
  return rows
}

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

/**
 * A sampler over `/proc/net/tcp{,6}` with a table shared by every probe of the
 * same tick. `reads()` counts the table reads (for tests and metrics).
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
  let table: Table | undefined
  let byInode: Map<number, TcpRow> | undefined // built on demand, for the table in `table`
  let reads = 0
  // a table read at or after `notBefore` is reused: every probe of the same tick shares one read,
  // however late its fiber wakes up
  const tableFor = (notBefore: number): Effect.Effect<Table> =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      if (table !== undefined && table.readAt >= notBefore && table.readAt <= now) return table
      reads++
      table = { readAt: now, rows: readTables(files) }
      byInode = undefined
      return table
    })
  const findInode = (t: Table, inode: number): TcpRow | undefined => {
    if (byInode === undefined || t !== table) {
      byInode = new Map()
      for (const row of t.rows.values()) if (row.inode !== 0) byInode.set(row.inode, row)
    }
    return byInode.get(inode)
  }
  const sample = (transport: Transport.Transport, notBefore: number): Effect.Effect<Sample> =>
    Effect.suspend(() => {
      if (!supported && files === undefined) return Effect.succeed(undefined)
      const socket = transport.stats().socket
      const key = socketKey(socket)
      if (key === undefined) return Effect.succeed(undefined)
      return Effect.map(tableFor(notBefore), (t): Sample => {
        const row = t.rows.get(key)
        if (row !== undefined) return row
        if (t.rows.size === 0 || socket!.connecting) return undefined
        const inode = socketInode(socket)
        if (inode === undefined) return undefined
        return findInode(t, inode) ?? "absent"
      })
    })
  return { sample, reads: () => reads }
}
