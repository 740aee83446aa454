import type { GrantSummary } from '../grants.ts';
import { code, html, postButton, renderConsolePage, table, timeCell, type ConsoleView } from './layout.ts';

export interface ConnectedApp {
  grant: GrantSummary;
  /** The client's display name, when it has one. */
  name?: string;
  /** Host of the client id (CIMD) or of its redirect URIs: what the consent page showed. */
  hosts: string[];
}

/** "Connected apps": the MCP clients this user approved, and a way to cut each one off. */
export function renderAccountPage(view: ConsoleView, apps: ConnectedApp[]): string {
  const rows = apps.map((app) => [
    `${app.name === undefined ? '' : `<strong>${html(app.name)}</strong><br>`}${code(app.grant.clientId)}${app.hosts.length > 0 ? `<br><span class="muted">${app.hosts.map(html).join(', ')}</span>` : ''}`,
    app.grant.scopes.map(code).join(' '),
    timeCell(app.grant.createdAt),
    timeCell(app.grant.lastUsedAt),
    postButton(`/account/grants/${encodeURIComponent(app.grant.grantId)}/revoke`, view.session, {}, 'Revoke access'),
  ]);
  return renderConsolePage(
    view,
    `${identitySection(view)}
<p class="hint">Applications that can act for you through this gateway. Revoking one stops it at once; it must ask you again to reconnect.</p>
${table(['Application', 'Access', 'Approved', 'Last used', ''], rows, 'You have not connected any applications.')}`,
  );
}

/**
 * Who the gateway thinks this is: the subject (`<issuer>#<sub>`, or `<tid>/<oid>` for Entra) and the groups are exactly
 * what `admin.users`, `admin.groups` and tool policies match, so a user asking for access can copy them to the operator.
 */
function identitySection(view: ConsoleView): string {
  const { session } = view;
  const groups = session.groups.length === 0 ? '<span class="muted">none</span>' : session.groups.map(code).join(' ');
  return `<p class="hint">Signed in as ${html(session.name ?? session.email ?? session.subject)} — subject ${code(session.subject)}, groups ${groups}.</p>`;
}
