import type { RequestSample } from '../../observability/metrics.ts';
import { renderRequestChart } from './chart.ts';
import { html, postButton, renderConsolePage, type ConsoleView } from './layout.ts';

export interface OverviewData {
  samples: RequestSample[];
  activeGrants: number;
  clients: number;
  users: number;
  upstream: 'ok' | 'unavailable';
  store: 'ok' | 'unavailable';
  /** Downstream APIs the broker serves, with exchange counts of this replica. */
  broker: { name: string; success: number; failed: number }[];
  /** Whether the gateway runs from a configuration file it can read again. */
  canReload?: boolean;
}

/** The last minute of `samples`: requests per second and the share that failed (status ≥ 500). */
export function lastMinute(samples: RequestSample[]): { perSecond: number; errorRate: number } {
  const recent = samples.slice(-6);
  const requests = recent.reduce((sum, sample) => sum + sample.requests, 0);
  const errors = recent.reduce((sum, sample) => sum + sample.errors, 0);
  return { perSecond: requests / (recent.length * 10 || 1), errorRate: requests === 0 ? 0 : errors / requests };
}

const health = (status: 'ok' | 'unavailable'): string =>
  status === 'ok' ? '<span class="status ok">reachable</span>' : '<span class="status bad">unavailable</span>';

export function renderOverviewPage(view: ConsoleView, data: OverviewData): string {
  const { perSecond, errorRate } = lastMinute(data.samples);
  const tiles = [
    ['Requests/s (last minute)', perSecond.toFixed(2)],
    ['Error rate (last minute)', `${(errorRate * 100).toFixed(1)} %`],
    ['Active grants', String(data.activeGrants)],
    ['Clients', String(data.clients)],
    ['Users', String(data.users)],
  ]
    .map(([label, value]) => `<div class="tile"><span class="label">${html(label ?? '')}</span><strong>${html(value ?? '')}</strong></div>`)
    .join('');
  const broker =
    data.broker.length === 0
      ? '<li>No downstream APIs configured.</li>'
      : data.broker.map((entry) => `<li>${html(entry.name)}: ${entry.success} tokens served, ${entry.failed} failed</li>`).join('');
  return renderConsolePage(
    view,
    `${pendingToolsNotice(view.pendingTools)}<section class="tiles">${tiles}</section>
<section><h2>Requests on this replica</h2>${renderRequestChart(data.samples)}
<p class="hint">Per 10 seconds over the last 5 minutes; failed requests (5xx) in red. Every replica counts its own: use /metrics for the whole fleet.</p></section>
<section><h2>Dependencies</h2><ul class="health">
<li>Upstream identity provider: ${health(data.upstream)}</li>
<li>Store: ${health(data.store)}</li>
<li>Token broker<ul>${broker}</ul></li>
</ul></section>${data.canReload ? reloadSection(view) : ''}`,
  );
}

function pendingToolsNotice(count: number | undefined): string {
  if (count === undefined || count === 0) return '';
  const what = count === 1 ? '1 tool definition changed and waits' : `${count} tool definitions changed and wait`;
  return `<p class="notice bad" role="status">${what} for review. <a href="/admin/tools">Review tool changes</a></p>\n`;
}

function reloadSection(view: ConsoleView): string {
  return `<section><h2>Configuration</h2>
<p class="hint">Reload the configuration file on this replica (as SIGHUP does): route scopes, tool policies and the admin lists apply at once; a file with problems is refused and the running configuration stays.</p>
${postButton('/admin/reload', view.session, {}, 'Reload configuration', { kind: 'secondary' })}</section>`;
}
