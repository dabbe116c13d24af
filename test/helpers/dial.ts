/**
 * Test helpers for dialers: tether's test kit (`tether/testing`) has the
 * in-memory dial target, frame decoding and `settle`; re-exported here under
 * the names these tests use.
 */
import type * as Testing from "effect-tether/testing"

export type MemoryServer = Testing.MemoryServer

export { decodeFrames, macrotask, memoryServer, receivedFrames, settle } from "effect-tether/testing"
