/**
 * A TLS echo server with a throwaway self-signed certificate made by openssl.
 */
import { Deferred, Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import type * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Tls from "node:tls"

let cached: { key: string; cert: string } | undefined
export const selfSigned = () => {
  if (cached) return cached
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tether-tls-"))
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout", Path.join(dir, "key.pem"), "-out", Path.join(dir, "cert.pem")
  ], { stdio: "ignore" })
  cached = {
    key: Fs.readFileSync(Path.join(dir, "key.pem"), "utf8"),
    cert: Fs.readFileSync(Path.join(dir, "cert.pem"), "utf8")
  }
  Fs.rmSync(dir, { recursive: true, force: true })
  return cached
}

export const tlsServer = Effect.acquireRelease(
  Effect.gen(function*() {
    const { cert, key } = selfSigned()
    const sockets: Array<Tls.TLSSocket> = []
    const server = Tls.createServer({ key, cert }, (socket) => {
      sockets.push(socket)
      socket.on("error", () => {})
      socket.pipe(socket) // echo; ends when the client ends
    })
    const listening = yield* Deferred.make<number>()
    server.listen(0, "127.0.0.1", () =>
      Deferred.unsafeDone(listening, Effect.succeed((server.address() as Net.AddressInfo).port)))
    return { server, sockets, cert, port: yield* Deferred.await(listening) }
  }),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      for (const s of sockets) s.destroy()
      server.close(() => resume(Effect.void))
    })
)
