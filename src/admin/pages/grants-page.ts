import type { AccountRecord } from '../../records/account.ts';
import type { GrantSummary } from '../grants.ts';
import { code, html, postButton, renderConsolePage, table, timeCell, type ConsoleView } from './layout.ts';

export function renderGrantsPage(view: ConsoleView, grants: GrantSummary[], accounts: Map<string, AccountRecord>): string {
  const rows = grants.map((grant) => {
    const account = accounts.get(grant.subject);
    const user = account?.email ?? account?.name;
    return [
      `${user === undefined ? '' : `${html(user)}<br>`}${code(grant.subject)}`,
      code(grant.clientId),
      grant.scopes.map(code).join(' '),
      timeCell(grant.createdAt),
      timeCell(grant.lastUsedAt),
      postButton(`/admin/grants/${encodeURIComponent(grant.grantId)}/revoke`, view.session, {}, 'Revoke'),
    ];
  });
  return renderConsolePage(view, table(['User', 'Client', 'Scopes', 'Created', 'Last used', ''], rows, 'No grants.'));
}
