/** Renders a bench report as a markdown table and an SVG chart of the ratios. */
import type { Report } from "../run.js"
import { fmt } from "./stats.js"

const ratioCell = (m: number, lo: number, hi: number) =>
  Number.isFinite(m) ? `**${m.toFixed(2)}×** (${lo.toFixed(2)}–${hi.toFixed(2)})` : "n/a"

export const renderMarkdown = (report: Report): string => {
  const lines: Array<string> = []
  const m = report.machine
  lines.push(`### tether benchmarks — ${report.date.slice(0, 16).replace("T", " ")} UTC`)
  lines.push("")
  lines.push(
    `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}; effect ${report.versions.effect}, ` +
      `@effect/platform ${report.versions["@effect/platform"]}, ws ${report.versions.ws}. ` +
      `Loopback, sender and receiver in separate processes; ${report.repetitions} repetition(s) per variant, interleaved; ` +
      `median (range). Mode: ${report.mode}. Load average at start: ${m.loadAvgAtStart.map((x) => x.toFixed(2)).join(" ")}.`
  )
  lines.push("")
  lines.push("| ratio (same run) | median (range) | target | |")
  lines.push("|---|---:|---:|:-:|")
  for (const c of report.cases) {
    if (c.skipped !== undefined) {
      lines.push(`| ${c.title} | not measured: ${c.skipped} | | |`)
      continue
    }
    for (const r of c.ratios) {
      const mark = r.met === null ? "" : r.met ? "✅" : "❌"
      lines.push(`| ${r.label} | ${ratioCell(r.median, r.min, r.max)} | ${r.target} | ${mark} |`)
    }
  }
  lines.push("")
  lines.push("| case | variant | metric | median | range |")
  lines.push("|---|---|---|---:|---:|")
  for (const c of report.cases) {
    for (const v of c.variants) {
      const entries = Object.entries(v.metrics)
      if (entries.length === 0) {
        lines.push(`| ${c.id} | ${v.label} | | FAILED | ${v.failures.length} failure(s) |`)
        continue
      }
      for (const [k, s] of entries) {
        const failed = v.failures.length > 0 ? ` (${v.failures.length} failed run(s))` : ""
        lines.push(
          `| ${c.id} | ${v.label} | ${k} | ${fmt(s.median, s.unit)}${failed} | ${fmt(s.min, s.unit)} – ${fmt(s.max, s.unit)} |`
        )
      }
    }
  }
  lines.push("")
  lines.push("Notes:")
  for (const c of report.cases) {
    for (const note of c.notes) lines.push(`- **${c.id}**: ${note}`)
  }
  lines.push("")
  lines.push("Reproduce: `npm run bench` (full, ~10 min) or `npm run bench -- --quick`; `--only small,rtt` runs selected cases.")
  lines.push("")
  return lines.join("\n")
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/**
 * One bar per ratio on a log scale centred on 1×: the bar's tip is the median,
 * a whisker shows the range and a tick marks the target. Green when the target
 * is met, red when missed, grey when there is no target.
 */
export const renderSvg = (report: Report): string => {
  const rows = report.cases.flatMap((c) => c.ratios.filter((r) => Number.isFinite(r.median)))
  const width = 980
  const labelW = 470
  const rowH = 26
  const top = 56
  const height = top + rows.length * rowH + 40
  const minR = 1 / 8
  const maxR = 8
  const plotX = labelW + 10
  const plotW = width - plotX - 70
  const x = (r: number) => plotX + ((Math.log(Math.min(maxR, Math.max(minR, r))) - Math.log(minR)) / (Math.log(maxR) - Math.log(minR))) * plotW
  const out: Array<string> = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`)
  out.push(`<rect width="100%" height="100%" fill="white"/>`)
  out.push(`<text x="10" y="20" font-size="15" font-weight="bold">tether ÷ baseline, same run (${esc(report.date.slice(0, 16).replace("T", " "))} UTC, ${esc(report.machine.cpu)}, ${report.machine.cores} cores, Node ${esc(report.machine.node)})</text>`)
  out.push(`<text x="10" y="38" fill="#555">median bar, range whisker, target tick; log scale; higher is better except where marked (lower)</text>`)
  for (const tick of [0.125, 0.25, 0.5, 1, 2, 4, 8]) {
    const tx = x(tick)
    out.push(`<line x1="${tx}" y1="${top - 6}" x2="${tx}" y2="${height - 34}" stroke="${tick === 1 ? "#333" : "#ddd"}"/>`)
    out.push(`<text x="${tx}" y="${height - 20}" text-anchor="middle" fill="#555">${tick}×</text>`)
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH
    const colour = r.met === null ? "#999" : r.met ? "#2e9e44" : "#d23c3c"
    const label = `${r.label}${r.better === "lower" ? " (lower)" : ""}`
    out.push(`<text x="${labelW}" y="${y + 15}" text-anchor="end">${esc(label)}</text>`)
    const x1 = x(1)
    const xm = x(r.median)
    out.push(`<rect x="${Math.min(x1, xm)}" y="${y + 4}" width="${Math.max(1, Math.abs(xm - x1))}" height="${rowH - 10}" fill="${colour}" opacity="0.85"/>`)
    out.push(`<line x1="${x(r.min)}" y1="${y + rowH / 2}" x2="${x(r.max)}" y2="${y + rowH / 2}" stroke="#222"/>`)
    const target = Number.parseFloat(r.target.replace(/[^0-9.]/g, ""))
    if (Number.isFinite(target)) {
      const tx = x(target)
      out.push(`<line x1="${tx}" y1="${y + 1}" x2="${tx}" y2="${y + rowH - 3}" stroke="#000" stroke-width="2" stroke-dasharray="3,2"/>`)
    }
    out.push(`<text x="${Math.max(x1, xm) + 6}" y="${y + 15}">${r.median.toFixed(2)}×</text>`)
  })
  out.push(`</svg>`)
  return out.join("\n") + "\n"
}
