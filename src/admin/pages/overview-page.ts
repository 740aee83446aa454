import { NO_TOKEN_REASON } from '../../records/audit.ts';
import type { AccountRecord } from '../../records/account.ts';
import type { RequestSample } from '../../observability/metrics.ts';
import type { BackendHealth } from '../backend-health.ts';
import { OVERVIEW_WINDOWS, type AuditSummary, type OverviewWindow } from '../audit-summary.ts';
import { renderTrafficChart } from './chart.ts';
import { code, exactCode, html, postButton, renderConsolePage, table, type ConsoleView } from './layout.ts';
import { personCell } from './names.ts';
import type { LastReload } from '../console-state.ts';

export interface OverviewData {
  window: OverviewWindow;
  /** Fleet-wide, from the audit records in the store. */
  traffic: AuditSummary;
  /** This replica's last minute (its in-memory metrics), to spot a replica that differs from the fleet. */
  samples: RequestSample[];
  activeGrants: number;
  clients: number;
  users: number;
  upstream: 'ok' | 'unavailable';
  store: 'ok' | 'unavailable';
  /** Downstream APIs the broker serves, with exchange counts of this replica. */
  broker: { name: string; success: number; failed: number }[];
  /** Route path → live probe of its backend. */
  backends: Map<string, BackendHealth>;
  accounts: ReadonlyMap<string, AccountRecord>;
  /** Whether the gateway runs from a configuration file it can read again. */
  canReload?: boolean;
  /** The last reload this replica ran (SIGHUP or the console), if any since it started. */
  lastReload?: ReturnType<LastReload>;
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

function backendHealth(probe: BackendHealth | undefined): string {
  if (probe === undefined) return '<span class="muted">–</span>';
  if (probe.state === 'reachable') return `<span class="status ok">reachable</span> <span class="muted">HTTP ${probe.status}</span>`;
  if (probe.state === 'failing') return `<span class="status bad">failing</span> <span class="muted">HTTP ${probe.status}</span>`;
  return '<span class="status bad">unreachable</span>';
}

const percent = (part: number, whole: number): string => (whole === 0 ? '0.0 %' : `${((part / whole) * 100).toFixed(1)} %`);

function windowLinks(current: OverviewWindow): string {
  const links = Object.entries(OVERVIEW_WINDOWS)
    .map(([value, { label }]) => `<a href="/admin?window=${value}"${value === current ? ' aria-current="true"' : ''}>${html(label)}</a>`)
    .join('');
  return `<nav class="windows" aria-label="Time window">${links}</nav>`;
}

function tiles(data: OverviewData): string {
  const { traffic } = data;
  const lower = traffic.truncated ? ' (at least)' : '';
  return [
    [`Requests${lower}`, String(traffic.requests)],
    ['Denied', `${traffic.denied} · ${percent(traffic.denied, traffic.requests)}`],
    ['Failed (5xx)', `${traffic.errors} · ${percent(traffic.errors, traffic.requests)}`],
    ['Active grants', String(data.activeGrants)],
    ['Clients', String(data.clients)],
    ['Users', String(data.users)],
  ]
    .map(([label, value]) => `<div class="tile"><span class="label">${html(label ?? '')}</span><strong>${html(value ?? '')}</strong></div>`)
    .join('');
}

function routesTable(data: OverviewData): string {
  const paths = [...new Set([...data.backends.keys(), ...data.traffic.routes.keys()])];
  const rows = paths.map((path) => {
    const traffic = data.traffic.routes.get(path);
    return [code(path), backendHealth(data.backends.get(path)), String(traffic?.requests ?? 0), traffic === undefined ? '–' : percent(traffic.errors, traffic.requests)];
  });
  return table(['Route', 'Backend now', 'Requests', 'Failed'], rows, 'No routes are configured.');
}

export function renderOverviewPage(view: ConsoleView, data: OverviewData): string {
  const { traffic } = data;
  const setting = OVERVIEW_WINDOWS[data.window];
  const replica = lastMinute(data.samples);
  const denials = table(
    ['Status', 'Reason', 'Requests'],
    traffic.denials.map((denial) => [
      String(denial.status),
      denial.reason === NO_TOKEN_REASON
        ? `${html(denial.reason)} <span class="muted">(a client's first request, whose 401 tells it where to sign in; not counted as denied)</span>`
        : html(denial.reason),
      String(denial.count),
    ]),
    'No request was denied.',
  );
  const topTools = table(['Tool', 'Calls'], traffic.topTools.map((tool) => [exactCode(tool.name), String(tool.count)]), 'No tool calls.');
  const topUsers = table(['User', 'Requests'], traffic.topUsers.map((user) => [personCell(user.subject, data.accounts), String(user.count)]), 'No requests.');
  const broker =
    data.broker.length === 0
      ? '<li>No downstream APIs configured.</li>'
      : data.broker.map((entry) => `<li>${html(entry.name)}: ${entry.success} tokens served, ${entry.failed} failed (this replica)</li>`).join('');
  const truncated = traffic.truncated
    ? `<p class="notice bad" role="status">Some ${html(setting.bucketLabel)} periods held more than the overview reads at once; their figures are lower bounds.</p>`
    : '';
  return renderConsolePage(
    view,
    `${pendingToolsNotice(view.pendingTools)}${windowLinks(data.window)}
<section class="tiles">${tiles(data)}</section>${truncated}
<section><h2>Requests, all replicas, ${html(setting.label)}</h2>${renderTrafficChart(traffic.buckets, { bucketLabel: setting.bucketLabel, withDate: data.window === '7d' })}
<p class="hint">From the audit records every replica writes to the store. This replica alone, last minute: ${replica.perSecond.toFixed(2)} requests/s, ${(replica.errorRate * 100).toFixed(1)} % failed.</p></section>
<section><h2>Routes</h2>${routesTable(data)}<p class="hint"><a href="/admin/routes">How each route is configured</a></p></section>
<div class="columns">
<section><h2>Denials by reason</h2>${denials}</section>
<section><h2>Top tools</h2>${topTools}</section>
<section><h2>Top users</h2>${topUsers}</section>
</div>
<section><h2>Dependencies</h2><ul class="health">
<li>Upstream identity provider: ${health(data.upstream)}</li>
<li>Store: ${health(data.store)}</li>
<li>Token broker<ul>${broker}</ul></li>
</ul></section>${data.canReload ? reloadSection(view, data.lastReload) : ''}`,
  );
}

function pendingToolsNotice(count: number | undefined): string {
  if (count === undefined || count === 0) return '';
  const what = count === 1 ? '1 tool definition changed and waits' : `${count} tool definitions changed and wait`;
  return `<p class="notice bad" role="status">${what} for review. <a href="/admin/tools">Review tool changes</a></p>\n`;
}

function reloadSection(view: ConsoleView, last: ReturnType<LastReload>): string {
  return `<section><h2>Configuration</h2>${lastReloadNotice(last)}
<p class="hint">Reload the configuration file and the key set on this replica (as SIGHUP does): route scopes, tool policies and the admin lists apply at once, and a key revoked with <code>gatehouse keys revoke</code> is dropped; a file with problems is refused and the running configuration stays.</p>
${postButton('/admin/reload', view.session, {}, 'Reload configuration', { kind: 'secondary' })}</section>`;
}

/**
 * What the last reload on this replica did: a refused file or a change held back until a restart means the file and
 * the running configuration differ, which the log alone told (a SIGHUP has no page to answer on).
 */
function lastReloadNotice(last: ReturnType<LastReload>): string {
  if (last === undefined) return '';
  const when = `${html(new Date(last.at).toISOString().replace('T', ' ').slice(0, 19))} UTC (${html(last.trigger)})`;
  const list = (items: readonly string[]) => `<ul>${items.map((item) => `<li>${code(item)}</li>`).join('')}</ul>`;
  if (!last.outcome.ok) {
    return `\n<div class="notice bad" role="status"><p>The last reload, ${when}, was refused: the file has problems, and the running configuration differs from it.</p>${list(last.outcome.problems)}</div>`;
  }
  const { applied, needsRestart } = last.outcome.report;
  if (needsRestart.length > 0) {
    return `\n<div class="notice bad" role="status"><p>The last reload, ${when}, left changes for a restart: until then the running configuration differs from the file.</p>${list(needsRestart)}</div>`;
  }
  return `\n<p class="hint">The last reload, ${when}, ${applied.length === 0 ? 'found nothing to change' : `applied ${applied.map((item) => code(item)).join(', ')}`}.</p>`;
}
