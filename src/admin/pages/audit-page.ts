import { exactHtml } from '../../web/html.ts';
import { AUDIT_OUTCOMES, type AuditResult } from '../audit-query.ts';
import type { AuditDirectory, AuditFilter, AuditWindow } from '../audit-filter.ts';
import { code, exactCode, html, renderConsolePage, table, timeCell, type ConsoleView } from './layout.ts';
import { clientCell, personCell, suggestible, suggestions } from './names.ts';

// `client_closed` (the client left first) and `server_closed` (cut at shutdown) are normal ends: admin.css colours only `denied` and `error` as failures.
const outcomes = AUDIT_OUTCOMES;
const windowLabels: Record<AuditWindow, string> = { '1h': 'last hour', '24h': 'last 24 hours', '7d': 'last 7 days', '30d': 'last 30 days' };

const option = (value: string, label: string, selected: boolean): string => `<option value="${html(value)}"${selected ? ' selected' : ''}>${html(label)}</option>`;

function filterForm(filter: AuditFilter, directory: AuditDirectory): string {
  const outcomeOptions = ['', ...outcomes].map((outcome) => option(outcome, outcome === '' ? 'any outcome' : outcome.replace('_', ' '), (filter.outcome ?? '') === outcome)).join('');
  const windowOptions = Object.entries(windowLabels).map(([value, label]) => option(value, label, filter.window === value)).join('');
  const people = [...directory.accounts.values()].flatMap((account) => [account.email, account.name].filter((value): value is string => value !== undefined));
  // A client whose name cannot be offered as it is (an impostor's "…server\u200b") is offered by its id.
  const clients = [...directory.clientNames].map(([clientId, name]) => (suggestible(name) ? name : clientId));
  return `<form method="get" action="/admin/audit" class="filters">
<label>User <input name="user" value="${html(filter.user ?? '')}" placeholder="name, e-mail or subject" list="audit-users"></label>
<label>Client <input name="client" value="${html(filter.client ?? '')}" placeholder="app name or client id" list="audit-clients"></label>
<label>Tool <input name="tool" value="${html(filter.tool ?? '')}" placeholder="tool name"></label>
<label>Outcome <select name="outcome">${outcomeOptions}</select></label>
<label>Time <select name="window">${windowOptions}</select></label>
<button type="submit">Filter</button>
${suggestions('audit-users', people)}${suggestions('audit-clients', clients)}</form>`;
}

export function renderAuditPage(view: ConsoleView, result: AuditResult, filter: AuditFilter, directory: AuditDirectory): string {
  const rows = result.entries.map((record) => [
    timeCell(record.time),
    personCell(record.user, directory.accounts),
    clientCell(record.client, directory.clientNames),
    code(record.route),
    record.tool === undefined ? (record.method === undefined ? '–' : exactHtml(record.method)) : exactCode(record.tool),
    `<span class="outcome ${record.outcome}">${html(record.outcome.replace('_', ' '))}</span>${record.reason === undefined ? '' : `<br><span class="muted">${html(record.reason)}</span>`}`,
    // 0: no answer was sent (the request was cut first).
    record.status === 0 ? '–' : String(record.status),
    `${record.durationMs} ms`,
  ]);
  const truncated = result.truncated
    ? '<p class="notice bad" role="status">This window holds more calls than one page reads; older matches may be missing. Narrow the window, or filter by user or tool.</p>'
    : '';
  return renderConsolePage(
    view,
    `${filterForm(filter, directory)}${truncated}${table(['Time', 'User', 'Client', 'Route', 'Tool / method', 'Outcome', 'Status', 'Duration'], rows, `No matching tool calls in the ${windowLabels[filter.window]}.`)}`,
  );
}
