import type { DecisionKind, RememberedDecision } from '../../authorization/remembered-decisions.ts';
import type { ScopeDescription } from '../../authorization/protected-resources.ts';
import type { GrantSummary } from '../grants.ts';
import { nameHtml, visibleName, visibleUri } from '../../web/html.ts';
import { code, html, postButton, renderConsolePage, scopeCode, table, timeCell, type ConsoleView } from './layout.ts';

export interface ConnectedApp {
  grant: GrantSummary;
  /** The client's display name, when it has one. */
  name?: string;
  /** Host of the client id (CIMD) or of its redirect URIs: what the consent page showed. */
  hosts: string[];
  /** Per resource, the scopes granted in the consent page's words (describeScopes). */
  access: { resource: string; scopes: ScopeDescription[] }[];
}

/** What the app may do, worded as the consent page worded it, with the scope names beside the words. */
function accessCell(app: ConnectedApp): string {
  const several = app.access.length > 1;
  return app.access
    .map(({ resource, scopes }) => {
      const items = scopes.map((scope) => `<li>${html(scope.description)} ${scopeCode(scope.name)}</li>`).join('');
      return `${several ? `<span class="muted">on ${code(resource)}</span>` : ''}<ul class="access">${items}</ul>`;
    })
    .join('');
}

/** A consent decision this browser remembers (its cookies, whoever is signed in). */
export interface RememberedRow {
  kind: DecisionKind;
  decision: RememberedDecision;
  name?: string;
}

/**
 * "Connected apps": the MCP clients this user approved, and a way to cut each one off; then what this browser
 * remembers deciding on consent pages, each forgettable so the page asks again.
 */
export function renderAccountPage(view: ConsoleView, apps: ConnectedApp[], remembered: RememberedRow[] = []): string {
  const rows = apps.map((app) => [
    `${visibleName(app.name) === undefined ? '' : `<strong>${nameHtml(app.name!)}</strong><br>`}${code(app.grant.clientId)}${app.hosts.length > 0 ? `<br><span class="muted">${app.hosts.map(html).join(', ')}</span>` : ''}`,
    app.access.length === 0 ? app.grant.scopes.map(scopeCode).join(' ') : accessCell(app),
    timeCell(app.grant.createdAt),
    timeCell(app.grant.lastUsedAt),
    postButton(`/account/grants/${encodeURIComponent(app.grant.grantId)}/revoke`, view.session, {}, 'Revoke access', { target: `of ${visibleName(app.name) ?? app.grant.clientId}` }),
  ]);
  return renderConsolePage(
    view,
    `${identitySection(view)}
<p class="hint">Applications that can act for you through this gateway. Revoking one stops it at once; it must ask you again to reconnect.</p>
${table(['Application', 'Access', 'Approved', 'Last used', ''], rows, 'You have not connected any applications.')}
${rememberedSection(view, remembered)}`,
  );
}

/**
 * Who the gateway thinks this is: the subject (`<issuer>#<sub>`, or `<tid>/<oid>` for Entra) and the groups are exactly
 * what `admin.users`, `admin.groups` and tool policies match, so a user asking for access can copy them to the operator.
 */
function identitySection(view: ConsoleView): string {
  const { session } = view;
  const groups = session.groups.length === 0 ? '<span class="muted">none</span>' : session.groups.map(code).join(' ');
  return `<p class="hint">Signed in as ${nameHtml(session.name ?? session.email ?? session.subject)} — subject ${code(session.subject)}, groups ${groups}.</p>`;
}

function rememberedSection(view: ConsoleView, remembered: RememberedRow[]): string {
  const rows = remembered.map(({ kind, decision, name }) => [
    `${visibleName(name) === undefined ? '' : `<strong>${nameHtml(name!)}</strong><br>`}${code(decision.clientId)}<br><span class="muted">${html(visibleUri(decision.redirectUri))}</span>`,
    kind === 'approvals' ? `Approved ${decision.scopes.map(scopeCode).join(' ')}` : 'Denied',
    code(decision.resource),
    timeCell(decision.expiresAt),
    postButton('/account/decisions/forget', view.session, { kind, clientId: decision.clientId, redirectUri: decision.redirectUri, resource: decision.resource }, 'Forget', {
      target: `the decision for ${visibleName(name) ?? decision.clientId}`,
    }),
  ]);
  return `<h2>Remembered on this browser</h2>
<p class="hint">Consent answers this browser gives without asking you. Forget one and the application's next request shows the consent page again.</p>
${table(['Application', 'Decision', 'For', 'Until', ''], rows, 'This browser remembers no consent decisions.')}`;
}
