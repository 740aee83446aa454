import type { RouteConfig } from '../../config/schema.ts';
import { displayUrl } from '../../config/display-url.ts';
import { code, html, renderConsolePage, scopeCode, table, type ConsoleView } from './layout.ts';

/**
 * The routes as configured, read-only: what a client reaches at each path and what the gateway checks there. Every
 * setting the page does not lay out itself is listed under "Other settings" by name, so a setting added to the route
 * schema later (a DPoP mode, a new policy switch) shows up here without this page knowing it.
 */
const SHOWN = new Set(['path', 'type', 'backend', 'transports', 'scopes', 'requiredScopes', 'tools', 'defaultToolPolicy', 'deniedToolResponse', 'toolPinning', 'identity']);

function toolPolicies(route: RouteConfig): string {
  const rows = Object.entries(route.tools).map(([name, policy]) => [
    code(name),
    policy.scopes.map(scopeCode).join(' ') || '<span class="muted">route scopes</span>',
    policy.groups.map(code).join(' ') || '<span class="muted">any</span>',
    policy.allow === undefined ? '<span class="muted">–</span>' : `${code(policy.allow)}${policy.denyReason === undefined ? '' : `<br><span class="muted">${html(policy.denyReason)}</span>`}`,
  ]);
  const fallback =
    route.defaultToolPolicy === undefined
      ? ''
      : `<p class="hint">Every other tool: ${code(route.defaultToolPolicy.allow)}${route.defaultToolPolicy.denyReason === undefined ? '' : ` — “${html(route.defaultToolPolicy.denyReason)}”`}</p>`;
  return `${table(['Tool', 'Scopes', 'Groups', 'Allow (CEL)'], rows, 'No per-tool policies: every tool needs only the route scopes.')}${fallback}`;
}

function otherSettings(route: RouteConfig): string {
  const entries = Object.entries(route).filter(([key]) => !SHOWN.has(key));
  if (entries.length === 0) return '';
  return `<details><summary>Other settings</summary><dl class="settings">${entries.map(([key, value]) => `<dt>${html(key)}</dt><dd>${code(JSON.stringify(value))}</dd>`).join('')}</dl></details>`;
}

function routeSection(route: RouteConfig, publicUrl: string): string {
  const scopes = Object.entries(route.scopes)
    .map(([name, description]) => `<li>${scopeCode(name)} ${html(description)}${route.requiredScopes.includes(name) ? ' <span class="badge">required</span>' : ''}</li>`)
    .join('');
  const identity = route.identity.mode === 'obo' ? `on-behalf-of token for ${code(route.identity.downstream ?? '?')}` : `signed identity assertion (${route.identity.assertionTtlSeconds} s)`;
  return `<section class="route-config"><h2>${html(route.path)} <span class="badge">${route.type === 'mcp' ? 'MCP' : 'HTTP'}</span></h2>
<dl class="settings">
<dt>Public URL</dt><dd>${code(publicUrl + route.path)}</dd>
<dt>Backend</dt><dd>${code(displayUrl(route.backend))}</dd>
${route.type === 'mcp' ? `<dt>Transports</dt><dd>${route.transports.map(code).join(' ')}</dd>` : ''}
<dt>Identity to the backend</dt><dd>${identity}</dd>
<dt>Tool pinning</dt><dd>${code(route.toolPinning)}</dd>
<dt>Denied tool call answered as</dt><dd>${code(route.deniedToolResponse)}</dd>
</dl>
<h3>Scopes</h3><ul class="access">${scopes}</ul>
<h3>Tool policies</h3>${toolPolicies(route)}
${otherSettings(route)}</section>`;
}

export function renderRoutesPage(view: ConsoleView, routes: readonly RouteConfig[], publicUrl: string): string {
  const body = routes.length === 0 ? '<p class="empty">No routes are configured.</p>' : routes.map((route) => routeSection(route, publicUrl)).join('\n');
  return renderConsolePage(view, `<p class="hint">As configured in the running gateway (after the last reload). Change them in the configuration file.</p>\n${body}`);
}
