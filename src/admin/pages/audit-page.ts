import { AUDIT_OUTCOMES, type AuditEntry, type AuditQuery } from '../audit-query.ts';
import { code, html, renderConsolePage, table, timeCell, type ConsoleView } from './layout.ts';

// `client_closed` (the client left first) and `server_closed` (cut at shutdown) are normal ends: admin.css colours only `denied` and `error` as failures.
const outcomes = AUDIT_OUTCOMES;

export function renderAuditPage(view: ConsoleView, records: AuditEntry[], filter: AuditQuery): string {
  const options = ['', ...outcomes]
    .map((outcome) => `<option value="${outcome}"${filter.outcome === outcome || (outcome === '' && filter.outcome === undefined) ? ' selected' : ''}>${outcome === '' ? 'any outcome' : outcome}</option>`)
    .join('');
  const form = `<form method="get" action="/admin/audit" class="filters">
<label>User <input name="user" value="${html(filter.user ?? '')}" placeholder="subject"></label>
<label>Tool <input name="tool" value="${html(filter.tool ?? '')}" placeholder="tool name"></label>
<label>Outcome <select name="outcome">${options}</select></label>
<button type="submit">Filter</button></form>`;
  const rows = records.map((record) => [
    timeCell(record.time),
    record.user === undefined ? '–' : code(record.user),
    record.client === undefined ? '–' : code(record.client),
    code(record.route),
    record.tool === undefined ? html(record.method ?? '–') : code(record.tool),
    `<span class="outcome ${record.outcome}">${html(record.outcome.replace('_', ' '))}</span>`,
    String(record.status),
    `${record.durationMs} ms`,
  ]);
  return renderConsolePage(
    view,
    `${form}${table(['Time', 'User', 'Client', 'Route', 'Tool / method', 'Outcome', 'Status', 'Duration'], rows, 'No matching tool calls in the last 24 hours.')}`,
  );
}
