/**
 * `npm start` end to end: every story resolves within its bounds and no
 * message is lost (the demo's JSON mode, parsed).
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Path from "node:path"

describe("demo", () => {
  it("every story resolves, nothing lost (npm start -- --json)", async () => {
    const root = Path.resolve(import.meta.dirname, "..")
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ["--conditions=effect-tether-source", "--import", "tsx", "examples/demo.ts", "--json"],
        { cwd: root, timeout: 30_000 },
        (err, out, errOut) =>
          err
            // say which story failed and why: the demo's own report, not just "Command failed"
            ? reject(new Error(`${err.message}\nstdout:\n${out}\nstderr:\n${errOut}`))
            : resolve(out)
      )
    )
    const events = stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    const results = events.filter((e) => e.event === "result")
    // 5b (a real dropped link) runs where network namespaces are permitted (as root, with iproute2)
    const stories = results.map((r) => r.story).filter((s) => s !== "5b dropped link")
    expect(stories).toEqual(["1 zombie session", "2 hub backlog", "3 shutdown race", "4 two writers", "5 dead client"])
    for (const r of results) {
      expect(r, r.story).toMatchObject({ ok: true, lost: 0 })
    }
    expect(events.filter((e) => e.event !== "result").length).toBeGreaterThan(10)
  }, 40_000)
})
