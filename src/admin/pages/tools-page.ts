import { toolNameDigest, type ToolPinDiff, type ToolPinSummary } from '../tools.ts';
import { exactHtml, visibleText } from '../../web/html.ts';
import { code, exactCode, html, postButton, renderConsolePage, table, timeCell, type ConsoleView } from './layout.ts';

/**
 * Pinned tool definitions waiting for a decision (src/proxy/tool-pins.ts), each shown as a side-by-side diff of the
 * fields that changed, with Approve and Reject. Everything shown is what a backend published — possibly a poisoned
 * description written to instruct a model — so every value is escaped and shown as inert text, never as markup.
 */
export function renderToolsPage(view: ConsoleView, pending: ToolPinDiff[], all: ToolPinSummary[], pinnedRoutes: readonly string[] = []): string {
  const changes = pending.length === 0 ? '<p class="empty">No tool definition is waiting for review.</p>' : pending.map((tool) => toolChange(view, tool)).join('\n');
  const rows = all.map((tool) => [code(tool.route), exactCode(tool.name), `<span class="badge tool-${tool.status}">${html(tool.status)}</span>`, decisionCell(tool)]);
  return renderConsolePage(
    view,
    `<p class="hint">A backend's tool descriptions and schemas are read by the model as instructions. Each tool is pinned to the definition first seen (or approved); a changed or new definition waits here. Until it is approved, a route with <code>toolPinning: block</code> hides the tool and refuses its calls on every replica.</p>
<h2>Changed definitions</h2>
${changes}
<h2>All pinned tools</h2>
${table(['Route', 'Tool', 'Status', 'Last decision'], rows, noPinnedTool(pinnedRoutes))}`,
  );
}

function decisionCell(tool: ToolPinSummary): string {
  if (tool.decision === undefined) return '<span class="muted">–</span>';
  return `${html(tool.decision.verdict)} by ${code(tool.decision.by)}, ${timeCell(tool.decision.at)}`;
}

function toolChange(view: ConsoleView, tool: ToolPinDiff): string {
  const target = `${visibleText(tool.name)} on ${tool.route}`;
  const fields = tool.approved === undefined ? Object.keys(tool.pending ?? {}).sort() : tool.changedFields;
  const heading = `${tool.approved === undefined ? 'a new tool, not in the first listing of the route' : `changed: ${fields.join(', ')}`}${tool.status === 'rejected' ? '; rejected, and refused until approved' : ''}`;
  return `<section class="tool-change" aria-labelledby="${html(anchor(tool))}">
<h3 id="${html(anchor(tool))}">${exactCode(tool.name)} on ${code(tool.route)} <span class="badge tool-${tool.status}">${html(tool.status)}</span></h3>
<p class="hint">${html(heading)}; seen ${timeCell(tool.changedAt)}.</p>
${fields.map((field) => fieldDiff(field, tool.approved?.[field], tool.pending?.[field], tool.approved !== undefined)).join('\n')}
<div class="actions">${postButton('/admin/tools/approve', view.session, { route: tool.route, tool: toolNameDigest(tool.name), hash: tool.pendingHash ?? '' }, 'Approve', { kind: 'secondary', target })}${postButton('/admin/tools/reject', view.session, { route: tool.route, tool: toolNameDigest(tool.name) }, 'Reject', { target })}</div>
</section>`;
}

// UTF-16 code units, not UTF-8: every lone surrogate would be U+FFFD in UTF-8, and two such names one id.
const anchor = (tool: ToolPinSummary): string => `tool-${Buffer.from(`${tool.route}|${tool.name}`, 'utf16le').toString('base64url')}`;

/** A field as lines: a string as its own text (a description reads as prose), anything else as indented JSON. */
const linesOf = (value: unknown): string[] =>
  value === undefined ? [] : (typeof value === 'string' ? value : JSON.stringify(value, null, 2)).split('\n');

/**
 * One field, old and new side by side (stacked on a narrow screen). Lines present on only one side are marked with
 * <del>/<ins> and a −/+ sign, so the change does not rest on colour alone (WCAG 1.4.1).
 */
function fieldDiff(field: string, before: unknown, after: unknown, hasBefore: boolean): string {
  const old = linesOf(before);
  const now = linesOf(after);
  const column = (title: string, lines: string[], other: string[], tag: 'del' | 'ins') => {
    const others = new Set(other);
    const sign = tag === 'del' ? '−' : '+';
    // exactHtml: what the model reads, character for character — an invisible instruction or a reordering override
    // shows as its code points, not as nothing.
    const body = lines.length === 0 ? '<span class="muted">(absent)</span>' : lines.map((line) => (others.has(line) ? exactHtml(line) : `<${tag}><span aria-hidden="true">${sign} </span>${exactHtml(line)}</${tag}>`)).join('\n');
    return `<figure><figcaption>${html(title)}</figcaption><pre>${body}</pre></figure>`;
  };
  return `<div class="diff"><h4>${code(field)}</h4>${hasBefore ? column('Approved', old, now, 'del') : ''}${column('Served now', now, old, 'ins')}</div>`;
}

/** Why the list is empty: no route pins (the default, `toolPinning: off`), or none has been listed through yet. */
function noPinnedTool(pinnedRoutes: readonly string[]): string {
  if (pinnedRoutes.length === 0) return 'No route pins its tools (every route has toolPinning: off), so none is recorded here.';
  return `No tool has been listed through ${pinnedRoutes.join(', ')} yet (the routes with toolPinning on).`;
}
