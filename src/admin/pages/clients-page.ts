import type { ClientSummary } from '../clients.ts';
import { visibleName } from '../../web/html.ts';
import { namedId } from './names.ts';
import { code, html, postButton, renderConsolePage, table, timeCell, type ConsoleView } from './layout.ts';

const typeLabel: Record<ClientSummary['type'], string> = { 'pre-registered': 'pre-registered', dcr: 'DCR', cimd: 'CIMD' };

/**
 * The most rows the page shows, the clients in use first (most recently used first), then those with a grant, the
 * configured ones, and registrations nobody used, newest first. Anyone may register a client (RFC 7591), so the list has no
 * natural bound; past this the search narrows it, by client id or name.
 */
export const CLIENTS_PAGE_LIMIT = 200;

/** The clients whose id or name contains `query` (any case); all of them without one. */
export function clientsMatching(clients: ClientSummary[], query: string | undefined): ClientSummary[] {
  const needle = query?.trim().toLowerCase();
  if (needle === undefined || needle === '') return clients;
  return clients.filter((client) => client.clientId.toLowerCase().includes(needle) || (client.name?.toLowerCase().includes(needle) ?? false));
}

export function renderClientsPage(view: ConsoleView, all: ClientSummary[], query?: string): string {
  const matching = clientsMatching(all, query);
  const clients = matching.slice(0, CLIENTS_PAGE_LIMIT);
  const searched = query !== undefined && query.trim() !== '';
  const count =
    matching.length > clients.length
      ? `<p class="hint">Showing ${clients.length} of ${matching.length} clients${searched ? ' matching the search' : ''}, the ones in use first; search to narrow the list.</p>`
      : '';
  const search = `<form method="get" action="/admin/clients" class="filters"><label>Client id or name <input type="search" name="q" maxlength="200" value="${html(query ?? '')}"></label> <button type="submit">Search</button></form>`;
  const rows = clients.map((client) => [
    namedId(client.name, client.clientId),
    `<span class="badge">${html(typeLabel[client.type])}</span>`,
    client.redirectHosts.map(code).join(' ') || '<span class="muted">–</span>',
    timeCell(client.createdAt),
    timeCell(client.lastUsedAt),
    String(client.activeGrants),
    postButton('/admin/clients/revoke', view.session, { client_id: client.clientId }, 'Revoke all', { target: `grants of ${visibleName(client.name) ?? client.clientId}` }),
  ]);
  return renderConsolePage(
    view,
    `<p class="hint">Revoking a client ends all its grants and tokens on every replica; a dynamically registered client is also deleted.</p>
${search}${count}
${table(['Client', 'Type', 'Redirect hosts', 'Created', 'Last used', 'Grants', ''], rows, searched ? 'No client matches the search.' : 'No clients yet.')}`,
  );
}
