/** min / median / max of the repetitions of one figure. */
export interface Spread {
  min: number;
  median: number;
  max: number;
}

export function spread(values: number[]): Spread {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return { min: Number.NaN, median: Number.NaN, max: Number.NaN };
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { min: sorted[0]!, median, max: sorted.at(-1)! };
}

export const fmt = (value: number, digits = 2): string => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

/** `median (min–max)`, or just the value when there was one repetition. */
export function fmtSpread(value: Spread, digits = 2): string {
  if (!Number.isFinite(value.median)) return 'n/a';
  if (value.min === value.max) return fmt(value.median, digits);
  return `${fmt(value.median, digits)} (${fmt(value.min, digits)}–${fmt(value.max, digits)})`;
}

/** The p-th percentile of sorted figures (NaN for none). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
