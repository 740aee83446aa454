import type { RequestSample } from '../../observability/metrics.ts';
import { html } from './layout.ts';

/**
 * Requests per 10 s of this replica as an inline SVG bar chart, errors stacked in a second colour. Drawn on the
 * server with presentation attributes only (no `style`, no script), so it passes the console's strict CSP.
 */
export function renderRequestChart(samples: RequestSample[], options: { width?: number; height?: number } = {}): string {
  const width = options.width ?? 600;
  const height = options.height ?? 140;
  const peak = Math.max(1, ...samples.map((sample) => sample.requests));
  const slot = width / Math.max(1, samples.length);
  const bar = Math.max(1, slot - 2);
  const bars = samples
    .map((sample, index) => {
      const x = (index * slot).toFixed(1);
      const total = (sample.requests / peak) * (height - 20);
      const errors = (sample.errors / peak) * (height - 20);
      const label = `${new Date(sample.start).toISOString().slice(11, 19)}: ${sample.requests} requests, ${sample.errors} errors`;
      return `<g><title>${html(label)}</title><rect class="ok" x="${x}" y="${(height - total).toFixed(1)}" width="${bar.toFixed(1)}" height="${total.toFixed(1)}"/>` +
        `<rect class="err" x="${x}" y="${(height - errors).toFixed(1)}" width="${bar.toFixed(1)}" height="${errors.toFixed(1)}"/></g>`;
    })
    .join('');
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="Requests per 10 seconds over the last ${samples.length * 10} seconds">
<line class="axis" x1="0" y1="${height - 0.5}" x2="${width}" y2="${height - 0.5}"/><text class="peak" x="4" y="12">peak ${peak} / 10 s</text>${bars}</svg>`;
}
