/**
 * The WebSocket close-handshake record, in a module of its own that does not
 * import `ws`: `WebSocket.CloseInfo` is public, and the published `.d.ts` must
 * not make consumers install `@types/ws`.
 * @internal
 */

/** What the transport knows about the close handshake. @internal */
export interface CloseInfo {
  /** The peer's Close frame, if one was received. */
  readonly received: { readonly code: number; readonly reason: string } | undefined
  /** The Close frame we sent, if any. */
  readonly sent: { readonly code: number; readonly reason: string } | undefined
  /** A protocol error detected on the read side (its status code is what our Close carries). */
  readonly protocolError: { readonly status: number; readonly code: string | undefined; readonly message: string } | undefined
}
