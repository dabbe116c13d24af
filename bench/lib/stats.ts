/** Small statistics helpers for the bench report. */

export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly runs: ReadonlyArray<number>
}

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  if (n === 0) return NaN
  return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2
}

export const summarize = (runs: ReadonlyArray<number>): Summary => ({
  median: median(runs),
  min: Math.min(...runs),
  max: Math.max(...runs),
  runs
})

/** Human formatting with SI suffixes (k, M, G). */
export const si = (x: number, digits = 3): string => {
  if (!Number.isFinite(x)) return String(x)
  const abs = Math.abs(x)
  if (abs >= 1e9) return `${(x / 1e9).toPrecision(digits)} G`
  if (abs >= 1e6) return `${(x / 1e6).toPrecision(digits)} M`
  if (abs >= 1e3) return `${(x / 1e3).toPrecision(digits)} k`
  return x.toPrecision(digits)
}

export const fmt = (x: number, unit: string): string => {
  if (unit === "msg/s") return `${si(x)}msg/s`
  if (unit === "B") return `${si(x)}B`
  if (unit === "MB/s") return `${Math.round(x)} MB/s`
  return `${x.toPrecision(3)} ${unit}`
}
