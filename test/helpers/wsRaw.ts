/**
 * A raw WebSocket client for tests: it does the opening handshake by hand and
 * parses every byte the server writes itself, strictly (a library client would
 * hide a corrupted stream). Promise-based; wrap with Effect.promise.
 */
import * as Crypto from "node:crypto"
import * as Net from "node:net"

export interface Frame {
  readonly fin: boolean
  readonly opcode: number
  readonly payload: Buffer
}

export const OP_TEXT = 1
export const OP_BINARY = 2
export const OP_CLOSE = 8
export const OP_PING = 9
export const OP_PONG = 10

/** Encodes a client frame (masked, as RFC 6455 requires of clients). */
export const encodeFrame = (opcode: number, payload: Buffer | string, options?: { fin?: boolean; mask?: boolean }) => {
  const data = typeof payload === "string" ? Buffer.from(payload) : payload
  const mask = options?.mask ?? true
  const len = data.length
  const header: Array<number> = [((options?.fin ?? true) ? 0x80 : 0) | opcode]
  const m = mask ? 0x80 : 0
  if (len < 126) header.push(m | len)
  else if (len < 65536) header.push(m | 126, len >> 8, len & 0xff)
  else {
    header.push(m | 127, 0, 0, 0, 0)
    header.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff)
  }
  if (!mask) return Buffer.concat([Buffer.from(header), data])
  const key = Crypto.randomBytes(4)
  const body = Buffer.allocUnsafe(len)
  for (let i = 0; i < len; i++) body[i] = data[i]! ^ key[i & 3]!
  return Buffer.concat([Buffer.from(header), key, body])
}

export const closePayload = (code: number, reason = "") => {
  const r = Buffer.from(reason)
  const out = Buffer.allocUnsafe(2 + r.length)
  out.writeUInt16BE(code, 0)
  r.copy(out, 2)
  return out
}

export class RawWs {
  readonly frames: Array<Frame> = []
  /** Set when the server's bytes do not parse as RFC 6455 server frames. */
  parseError: string | undefined
  ended = false
  closed = false
  private buf: Buffer = Buffer.alloc(0)
  private waiters: Array<() => void> = []

  constructor(readonly socket: Net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d])
      this.parse()
      this.notify()
    })
    socket.on("end", () => {
      this.ended = true
      this.notify()
    })
    socket.on("close", () => {
      this.closed = true
      this.notify()
    })
    socket.on("error", () => {})
  }

  private notify() {
    const ws = this.waiters
    this.waiters = []
    for (const w of ws) w()
  }

  private parse() {
    while (this.parseError === undefined && this.buf.length >= 2) {
      const b0 = this.buf[0]!
      const b1 = this.buf[1]!
      const fin = (b0 & 0x80) !== 0
      const rsv = b0 & 0x70
      const opcode = b0 & 0x0f
      if (rsv !== 0) this.parseError = `reserved bits set: ${rsv}`
      else if (![0, 1, 2, 8, 9, 10].includes(opcode)) this.parseError = `bad opcode ${opcode}`
      else if ((b1 & 0x80) !== 0) this.parseError = "server frame is masked"
      if (this.parseError !== undefined) return
      let len = b1 & 0x7f
      let off = 2
      if (len === 126) {
        if (this.buf.length < 4) return
        len = this.buf.readUInt16BE(2)
        off = 4
      } else if (len === 127) {
        if (this.buf.length < 10) return
        const hi = this.buf.readUInt32BE(2)
        if (hi !== 0) {
          this.parseError = "absurd 64-bit length"
          return
        }
        len = this.buf.readUInt32BE(6)
        off = 10
      }
      if (opcode >= 8 && (len > 125 || !fin)) {
        this.parseError = `bad control frame (len ${len}, fin ${fin})`
        return
      }
      if (this.buf.length < off + len) return
      this.frames.push({ fin, opcode, payload: Buffer.from(this.buf.subarray(off, off + len)) })
      this.buf = this.buf.subarray(off + len)
    }
  }

  /** Bytes received that are not (yet) a whole frame. */
  get leftover() {
    return this.buf.length
  }

  /** Resolves once `pred` holds (checked on every event). */
  until(pred: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (pred()) resolve()
        else this.waiters.push(check)
      }
      check()
    })
  }

  send(opcode: number, payload: Buffer | string, options?: { fin?: boolean; mask?: boolean }) {
    this.socket.write(encodeFrame(opcode, payload, options))
  }

  sendText(s: string) {
    this.send(OP_TEXT, s)
  }

  ping(payload: string) {
    this.send(OP_PING, payload)
  }

  close(code = 1000, reason = "") {
    this.send(OP_CLOSE, closePayload(code, reason))
  }

  closeFrame(): { code: number; reason: string } | undefined {
    const f = this.frames.find((f) => f.opcode === OP_CLOSE)
    if (f === undefined) return undefined
    return f.payload.length >= 2
      ? { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() }
      : { code: 1005, reason: "" }
  }
}

/** The HTTP response status of an upgrade attempt, and the socket when it was 101. */
export const connectRaw = (
  port: number,
  options?: { path?: string; headers?: Record<string, string> }
): Promise<{ status: number; head: string; ws: RawWs | undefined }> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host: "127.0.0.1", port, allowHalfOpen: true })
    const key = Crypto.randomBytes(16).toString("base64")
    let acc = Buffer.alloc(0)
    const onData = (d: Buffer) => {
      acc = Buffer.concat([acc, d])
      const idx = acc.indexOf("\r\n\r\n")
      if (idx < 0) return
      socket.off("data", onData)
      socket.off("error", onError)
      socket.off("close", onClose)
      const head = acc.subarray(0, idx).toString()
      const status = Number(head.split(" ")[1])
      const rest = acc.subarray(idx + 4)
      if (status !== 101) {
        socket.destroy()
        return resolve({ status, head, ws: undefined })
      }
      const accept = Crypto.createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64")
      if (!head.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) {
        socket.destroy()
        return reject(new Error(`bad Sec-WebSocket-Accept in ${head}`))
      }
      const ws = new RawWs(socket)
      if (rest.length > 0) socket.emit("data", rest)
      resolve({ status, head, ws })
    }
    const onError = (e: Error) => reject(e)
    const onClose = () => resolve({ status: 0, head: "", ws: undefined })
    socket.on("data", onData)
    socket.once("error", onError)
    socket.once("close", onClose)
    socket.once("connect", () => {
      const extra = Object.entries(options?.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join("")
      socket.write(
        `GET ${options?.path ?? "/"} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
      )
    })
  })
