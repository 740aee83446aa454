import type { TrafficBucket } from '../audit-summary.ts';
import { html } from './layout.ts';

/**
 * Fleet traffic per time bucket as an inline SVG bar chart with labelled axes: allowed, denied and failed requests
 * stacked. Drawn on the server with presentation attributes and classes only (no `style`, no script), so it passes
 * the console's strict CSP; each bar carries a <title> with its exact figures, and the legend is plain HTML.
 */
const WIDTH = 640;
const HEIGHT = 230;
const LEFT = 52;
const RIGHT = 8;
const TOP = 10;
const BOTTOM = 44;

/** 1, 2 or 5 × 10^n at or above `value`: tick values people read at a glance. */
export function niceCeiling(value: number): number {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((factor) => factor * power >= value) ?? 10;
  return step * power;
}

function timeLabel(ms: number, withDate: boolean): string {
  const iso = new Date(ms).toISOString();
  return withDate ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16);
}

export interface TrafficChartOptions {
  /** "5 min", "hour": what one bar covers, for the y axis title. */
  bucketLabel: string;
  /** Label times with their date (windows longer than a day). */
  withDate: boolean;
}

export function renderTrafficChart(buckets: TrafficBucket[], options: TrafficChartOptions): string {
  const plotWidth = WIDTH - LEFT - RIGHT;
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const peak = niceCeiling(Math.max(0, ...buckets.map((bucket) => bucket.requests)));
  const y = (value: number) => TOP + plotHeight - (value / peak) * plotHeight;
  const slot = plotWidth / Math.max(1, buckets.length);
  const bar = Math.max(1, slot - 3);
  const rect = (kind: string, x: number, from: number, height: number) =>
    height <= 0 ? '' : `<rect class="${kind}" x="${x.toFixed(1)}" y="${y(from + height).toFixed(1)}" width="${bar.toFixed(1)}" height="${(y(from) - y(from + height)).toFixed(1)}"/>`;
  const bars = buckets
    .map((bucket, index) => {
      const x = LEFT + index * slot + 1.5;
      const allowed = bucket.requests - bucket.denied - bucket.errors;
      const label = `${timeLabel(bucket.from, options.withDate)}–${timeLabel(bucket.to, options.withDate)} UTC: ${bucket.requests}${bucket.truncated ? '+' : ''} requests, ${bucket.denied} denied, ${bucket.errors} failed`;
      return `<g><title>${html(label)}</title>${rect('ok', x, 0, allowed)}${rect('denied', x, allowed, bucket.denied)}${rect('err', x, allowed + bucket.denied, bucket.errors)}</g>`;
    })
    .join('');
  const yTicks = [0, peak / 2, peak]
    .map((value) => `<line class="grid" x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y(value).toFixed(1)}" y2="${y(value).toFixed(1)}"/><text class="tick" x="${LEFT - 6}" y="${(y(value) + 4).toFixed(1)}" text-anchor="end">${html(String(value))}</text>`)
    .join('');
  const first = buckets[0];
  const last = buckets.at(-1);
  const middle = buckets[Math.floor(buckets.length / 2)];
  const xTicks =
    first === undefined || last === undefined || middle === undefined
      ? ''
      : [
          [LEFT, first.from, 'start'],
          [LEFT + plotWidth / 2, middle.from, 'middle'],
          [WIDTH - RIGHT, last.to, 'end'],
        ]
          .map(([x, time, anchor]) => `<text class="tick" x="${x}" y="${TOP + plotHeight + 16}" text-anchor="${anchor}">${html(timeLabel(Number(time), options.withDate))}</text>`)
          .join('');
  const total = buckets.reduce((sum, bucket) => sum + bucket.requests, 0);
  return `<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${html(`Requests per ${options.bucketLabel} across all replicas: ${total} in ${buckets.length} bars`)}">
${yTicks}<line class="axis" x1="${LEFT}" y1="${TOP + plotHeight}" x2="${WIDTH - RIGHT}" y2="${TOP + plotHeight}"/><line class="axis" x1="${LEFT}" y1="${TOP}" x2="${LEFT}" y2="${TOP + plotHeight}"/>
${bars}${xTicks}
<text class="axis-title" x="${LEFT + plotWidth / 2}" y="${HEIGHT - 6}" text-anchor="middle">time (UTC)</text>
<text class="axis-title" x="14" y="${TOP + plotHeight / 2}" text-anchor="middle" transform="rotate(-90 14 ${TOP + plotHeight / 2})">requests per ${html(options.bucketLabel)}</text>
</svg>
<ul class="legend"><li><span class="swatch ok"></span>allowed</li><li><span class="swatch denied"></span>denied</li><li><span class="swatch err"></span>failed (5xx)</li></ul>`;
}
