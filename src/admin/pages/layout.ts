import { escapeHtml, exactHtml, shortened, visibleName, visibleText } from '../../web/html.ts';
import type { ConsoleSession } from '../console-session.ts';

/**
 * The console's page shell. Server-rendered, no script at all (the chart is inline SVG drawn here), one stylesheet
 * from our origin: the default HTML CSP (`default-src 'none'; style-src 'self'`) applies unchanged. Every value
 * from the store is escaped — client names and redirect URIs are chosen by whoever registered the client.
 */
export const ADMIN_STYLESHEET_PATH = '/admin/assets/admin.css';

export type ConsoleSection = 'overview' | 'routes' | 'clients' | 'grants' | 'audit' | 'tools' | 'account';

export interface ConsoleView {
  title: string;
  section: ConsoleSection;
  session: ConsoleSession;
  isAdmin: boolean;
  notice?: string;
  /** Tool definitions waiting for an admin's decision: a count beside "Tools" on every admin page. */
  pendingTools?: number;
}

export const html = escapeHtml;

/**
 * A name chosen by someone else, for an operator: shortened, each invisible character shown as its code point (a
 * registrant's "Sample Graph MCP server\u200b" must not look like the real one), in a `<bdi>`.
 */
export function consoleNameHtml(name: string): string {
  return `<bdi>${exactHtml(shortened(name))}</bdi>`;
}

const adminLinks: [ConsoleSection, string, string][] = [
  ['overview', '/admin', 'Overview'],
  ['routes', '/admin/routes', 'Routes'],
  ['clients', '/admin/clients', 'Clients'],
  ['grants', '/admin/grants', 'Grants'],
  ['audit', '/admin/audit', 'Tool calls'],
  ['tools', '/admin/tools', 'Tools'],
];

/** The count is part of the link's name, so a screen reader hears "Tools, 2 waiting for review". */
const pendingBadge = (count: number | undefined): string =>
  count === undefined || count === 0 ? '' : ` <span class="badge pending">${count}<span class="visually-hidden"> waiting for review</span></span>`;

function nav(view: ConsoleView): string {
  const links: [ConsoleSection, string, string][] = [...(view.isAdmin ? adminLinks : []), ['account', '/account', 'Connected apps']];
  const items = links
    .map(([section, href, label]) => `<a href="${href}"${section === view.section ? ' aria-current="page"' : ''}>${html(label)}${section === 'tools' ? pendingBadge(view.pendingTools) : ''}</a>`)
    .join('');
  // The name comes from the IdP's ID token: shown as every other person's name is (names.ts `personCell`); one that
  // shows as nothing gives way to the e-mail or subject.
  const who = visibleName(view.session.name) ?? visibleName(view.session.email) ?? view.session.subject;
  return `<header class="top"><span class="brand">Gatehouse</span><nav>${items}</nav>
<form method="post" action="/admin/sign-out" class="who"><span>${consoleNameHtml(who)}</span>${csrfField(view.session)}<button type="submit" class="link">Sign out</button></form></header>`;
}

export function renderConsolePage(view: ConsoleView, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${html(view.title)} · Gatehouse</title>
<link rel="stylesheet" href="${ADMIN_STYLESHEET_PATH}">
</head>
<body>
${nav(view)}
<main>
<h1>${html(view.title)}</h1>
${view.notice === undefined ? '' : `<p class="notice" role="status">${html(view.notice)}</p>`}
${body}
</main>
</body>
</html>
`;
}

/** A bare page for people who are not allowed in: no navigation, no names, nothing from the store. */
export function renderBarePage(title: string, message: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${html(title)} · Gatehouse</title>
<link rel="stylesheet" href="${ADMIN_STYLESHEET_PATH}"></head>
<body><main class="bare"><p class="brand">Gatehouse</p><h1>${html(title)}</h1><p>${html(message)}</p>
<p><a href="/account">Your connected apps</a></p></main></body>
</html>
`;
}

export const csrfField = (session: ConsoleSession): string => `<input type="hidden" name="csrf" value="${html(session.csrf)}">`;

export interface PostButtonOptions {
  kind?: 'danger' | 'secondary';
  /**
   * What the button acts on, e.g. `of Team Notes`: added to its accessible name, so a screen-reader user moving
   * between a table's buttons hears which app each one revokes, not "Revoke, Revoke, Revoke" (WCAG 2.4.6). The
   * visible label starts the name, as WCAG 2.5.3 (label in name) asks, so speech input still finds it.
   */
  target?: string;
}

/** A one-button POST form (revoke): hidden fields plus the session's CSRF token. */
export function postButton(action: string, session: ConsoleSession, fields: Record<string, string>, label: string, options: PostButtonOptions = {}): string {
  const hidden = Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${html(name)}" value="${html(value)}">`)
    .join('');
  // The target names a client or person: shortened like every name shown, each invisible character read as its code
  // point as the page shows it (web/html.ts), so an impostor's "…server\u200b" is not heard as the real one.
  const name = options.target === undefined ? '' : ` aria-label="${html(`${label} ${visibleText(shortened(options.target))}`)}"`;
  return `<form method="post" action="${html(action)}" class="inline">${hidden}${csrfField(session)}<button type="submit" class="${options.kind ?? 'danger'}"${name}>${html(label)}</button></form>`;
}

/** A scope name: kept on one line (a scope broken mid-word reads as two), scrolling inside its box if too long. */
export const scopeCode = (scope: string): string => `<code class="scope">${html(scope)}</code>`;

/**
 * A table of already-escaped cells; `empty` is shown instead when there are no rows. On a narrow screen admin.css
 * turns each row into a card whose cells are labelled from `data-label`, so no column (and no Revoke button) ends up
 * beyond the right edge; on a wide one a table too wide for its box scrolls inside it, reachable by keyboard.
 */
export function table(headers: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return `<p class="empty">${html(empty)}</p>`;
  // A column of buttons has no visible heading; a screen reader still announces one (WCAG 1.3.1).
  const head = headers.map((header) => `<th scope="col">${header === '' ? '<span class="visually-hidden">Actions</span>' : html(header)}</th>`).join('');
  const cell = (content: string, index: number) => {
    const label = headers[index] ?? '';
    return label === '' ? `<td>${content}</td>` : `<td data-label="${html(label)}">${content}</td>`;
  };
  const body = rows.map((row) => `<tr>${row.map(cell).join('')}</tr>`).join('\n');
  return `<div class="table-wrap" tabindex="0"><table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

/** A time as `2026-05-01 12:00 UTC` in a <time> element, or a dash. */
export function timeCell(ms: number | undefined): string {
  if (ms === undefined) return '<span class="muted">–</span>';
  const iso = new Date(ms).toISOString();
  return `<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`;
}

export const code = (value: string): string => `<code>${html(value)}</code>`;

/** A value published by someone else (a tool's name), as code with its invisible characters shown (web/html.ts). */
export const exactCode = (value: string): string => `<code>${exactHtml(value)}</code>`;
