/** A kernel row for scripted probes: an established connection with nothing queued. */
import type { Watchdog } from "effect-tether"

export const established: Watchdog.TcpInfo = {
  local: "127.0.0.1|40000",
  remote: "127.0.0.1|7000",
  state: "ESTABLISHED",
  txQueue: 0,
  rxQueue: 0,
  timer: 0,
  retransmits: 0,
  inode: 1
}
