import type { ClientSummary } from '../clients.ts';
import { namedId } from './names.ts';
import { code, html, postButton, renderConsolePage, table, timeCell, type ConsoleView } from './layout.ts';

const typeLabel: Record<ClientSummary['type'], string> = { 'pre-registered': 'pre-registered', dcr: 'DCR', cimd: 'CIMD' };

export function renderClientsPage(view: ConsoleView, clients: ClientSummary[]): string {
  const rows = clients.map((client) => [
    namedId(client.name, client.clientId),
    `<span class="badge">${html(typeLabel[client.type])}</span>`,
    client.redirectHosts.map(code).join(' ') || '<span class="muted">–</span>',
    timeCell(client.createdAt),
    timeCell(client.lastUsedAt),
    String(client.activeGrants),
    postButton('/admin/clients/revoke', view.session, { client_id: client.clientId }, 'Revoke all', { target: `grants of ${client.name ?? client.clientId}` }),
  ]);
  return renderConsolePage(
    view,
    `<p class="hint">Revoking a client ends all its grants and tokens on every replica; a dynamically registered client is also deleted.</p>
${table(['Client', 'Type', 'Redirect hosts', 'Created', 'Last used', 'Grants', ''], rows, 'No clients yet.')}`,
  );
}
