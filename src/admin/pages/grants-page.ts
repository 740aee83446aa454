import type { AccountRecord } from '../../records/account.ts';
import type { GrantSummary } from '../grants.ts';
import { visibleName } from '../../web/html.ts';
import { clientCell, personCell } from './names.ts';
import { postButton, renderConsolePage, scopeCode, table, timeCell, type ConsoleView } from './layout.ts';

/** `clientNames`: display names by client id, so each Revoke button can say which app it cuts off. */
export function renderGrantsPage(view: ConsoleView, grants: GrantSummary[], accounts: Map<string, AccountRecord>, clientNames: ReadonlyMap<string, string> = new Map()): string {
  const rows = grants.map((grant) => {
    const account = accounts.get(grant.subject);
    const user = visibleName(account?.email) ?? visibleName(account?.name);
    return [
      personCell(grant.subject, accounts),
      clientCell(grant.clientId, clientNames),
      grant.scopes.map(scopeCode).join(' '),
      timeCell(grant.createdAt),
      timeCell(grant.lastUsedAt),
      postButton(`/admin/grants/${encodeURIComponent(grant.grantId)}/revoke`, view.session, {}, 'Revoke', {
        target: `access of ${visibleName(clientNames.get(grant.clientId)) ?? grant.clientId} for ${user ?? grant.subject}`,
      }),
    ];
  });
  return renderConsolePage(view, table(['User', 'Client', 'Scopes', 'Created', 'Last used', ''], rows, 'No grants.'));
}
