/**
 * The WebSocket opening handshake (RFC 6455 §4) and permessage-deflate negotiation (RFC 7692 §5),
 * both sides, on node:http's public upgrade API: the server answers an `'upgrade'` request on its
 * socket; the client sends a GET with `Upgrade: websocket` and takes the socket of the 101.
 * @internal
 */
import * as Crypto from "node:crypto"
import type * as Http from "node:http"
import type { Deflate } from "./wsFrame.js"

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/** @internal */
export const acceptKey = (key: string): string => Crypto.createHash("sha1").update(key + GUID).digest("base64")

/** @internal */
export const newKey = (): string => Crypto.randomBytes(16).toString("base64")

/** Parses a `Sec-WebSocket-Extensions` header into offers: name and parameters (`true` when valueless). @internal */
export const parseExtensions = (header: string | undefined): Array<{ name: string; params: Map<string, string | true> }> => {
  if (header === undefined || header.trim() === "") return []
  return header.split(",").map((offer) => {
    const [name, ...params] = offer.split(";").map((p) => p.trim())
    const map = new Map<string, string | true>()
    for (const p of params) {
      if (p === "") continue
      const eq = p.indexOf("=")
      if (eq < 0) map.set(p.toLowerCase(), true)
      else map.set(p.slice(0, eq).trim().toLowerCase(), p.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1"))
    }
    return { name: (name ?? "").toLowerCase(), params: map }
  })
}

const bits = (v: string | true | undefined): number | undefined | "invalid" => {
  if (v === undefined || v === true) return undefined
  if (!/^\d+$/.test(v)) return "invalid"
  const n = Number(v)
  return n >= 8 && n <= 15 ? n : "invalid"
}

/**
 * The server's answer to the client's permessage-deflate offers: the first acceptable one.
 * We compress every message on its own (no context), so we always announce
 * `server_no_context_takeover`; a `server_max_window_bits` below 9 (zlib's raw minimum) is declined.
 * @internal
 */
export const negotiateServer = (header: string | undefined): { response: string; deflate: Deflate } | undefined => {
  for (const offer of parseExtensions(header)) {
    if (offer.name !== "permessage-deflate") continue
    let ok = true
    for (const k of offer.params.keys()) {
      if (
        k !== "server_no_context_takeover" && k !== "client_no_context_takeover" &&
        k !== "server_max_window_bits" && k !== "client_max_window_bits"
      ) ok = false
    }
    const serverBits = bits(offer.params.get("server_max_window_bits"))
    if (!ok || serverBits === "invalid" || (serverBits !== undefined && serverBits < 9)) continue
    if (bits(offer.params.get("client_max_window_bits")) === "invalid") continue
    const peerNoContextTakeover = offer.params.has("client_no_context_takeover")
    const parts = ["permessage-deflate", "server_no_context_takeover"]
    if (peerNoContextTakeover) parts.push("client_no_context_takeover")
    if (serverBits !== undefined) parts.push(`server_max_window_bits=${serverBits}`)
    return { response: parts.join("; "), deflate: { windowBits: serverBits ?? 15, peerNoContextTakeover } }
  }
  return undefined
}

/** What the client offers when it asks for permessage-deflate. @internal */
export const CLIENT_OFFER = "permessage-deflate; client_no_context_takeover; client_max_window_bits"

/** The client's reading of the server's answer; a string is why the handshake fails. @internal */
export const negotiateClient = (header: string | undefined, offered: boolean): Deflate | undefined | string => {
  const exts = parseExtensions(header)
  if (exts.length === 0) return undefined
  if (!offered || exts.length > 1 || exts[0]!.name !== "permessage-deflate") {
    return `unexpected Sec-WebSocket-Extensions: ${header}`
  }
  const p = exts[0]!.params
  for (const k of p.keys()) {
    if (
      k !== "server_no_context_takeover" && k !== "client_no_context_takeover" &&
      k !== "server_max_window_bits" && k !== "client_max_window_bits"
    ) return `unknown permessage-deflate parameter ${k}`
  }
  const clientBits = bits(p.get("client_max_window_bits"))
  if (clientBits === "invalid" || bits(p.get("server_max_window_bits")) === "invalid") {
    return `invalid permessage-deflate window bits: ${header}`
  }
  if (clientBits !== undefined && clientBits < 9) return `client_max_window_bits=${clientBits} is not supported`
  return { windowBits: clientBits ?? 15, peerNoContextTakeover: p.has("server_no_context_takeover") }
}

/** Why an upgrade request is not a valid WebSocket opening handshake (undefined: it is). @internal */
export const invalidRequest = (req: Http.IncomingMessage): string | undefined => {
  if (req.method !== "GET") return "the WebSocket handshake must be a GET"
  if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") return "missing Upgrade: websocket"
  if (req.headers["sec-websocket-version"] !== "13") return "unsupported Sec-WebSocket-Version (13 required)"
  const key = req.headers["sec-websocket-key"]
  if (typeof key !== "string" || !/^[+/0-9A-Za-z]{22}==$/.test(key.trim())) return "invalid Sec-WebSocket-Key"
  return undefined
}

/** The 101 answer; the socket then speaks WebSocket. @internal */
export const switchingProtocols = (
  req: Http.IncomingMessage,
  extensions: string | undefined,
  protocol: string | undefined
): string =>
  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  `Sec-WebSocket-Accept: ${acceptKey(String(req.headers["sec-websocket-key"]).trim())}\r\n` +
  (extensions === undefined ? "" : `Sec-WebSocket-Extensions: ${extensions}\r\n`) +
  (protocol === undefined ? "" : `Sec-WebSocket-Protocol: ${protocol}\r\n`) +
  "\r\n"

/** The first of the client's subprotocols we support (undefined: none asked, or none matches). @internal */
export const pickProtocol = (req: Http.IncomingMessage, supported: ReadonlyArray<string> | undefined) => {
  const asked = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "")
  return supported === undefined ? undefined : asked.find((p) => supported.includes(p))
}
