import { adminCommand, defaultAdminCommandDependencies, printListing, type AdminCommandDependencies } from '../admin-command.ts';
import { findClient, listClients, revokeClient } from '../../admin/clients.ts';
import { AdminNotFoundError } from '../../admin/admin-deps.ts';
import { listGrants } from '../../admin/grants.ts';
import { formatTable, formatTime, printable, toJsonOutput } from '../../admin/text-table.ts';
import type { CliCommand } from '../command.ts';
import { cancelled, confirmation, yesOption } from '../confirm.ts';
import type { AdminDeps } from '../../admin/admin-deps.ts';

/** `gatehouse clients list|show|revoke`: the MCP clients known to this gateway, and cutting one off. */
export function createClientsCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): Record<'list' | 'show' | 'revoke', CliCommand> {
  const list = adminCommand(dependencies, {
    path: ['clients', 'list'],
    summary: 'List MCP clients: name, type (pre-registered, dcr, cimd), redirect hosts, created, last used, grants.',
    action: async ({ deps, io, json }) =>
      printListing(io, json, {
        key: 'clients',
        items: await listClients(deps),
        empty: 'No clients yet.',
        headers: ['CLIENT ID', 'NAME', 'TYPE', 'REDIRECT HOSTS', 'CREATED', 'LAST USED', 'GRANTS'],
        row: (client) => [
          client.clientId,
          client.name ?? '-',
          client.type,
          client.redirectHosts.join(',') || '-',
          formatTime(client.createdAt),
          formatTime(client.lastUsedAt),
          String(client.activeGrants),
        ],
      }),
  });

  const show = adminCommand(dependencies, {
    path: ['clients', 'show'],
    summary: 'Show one client with its redirect URIs and grants.',
    positionals: ['CLIENT_ID'],
    action: async ({ deps, positionals, io, json }) => {
      const client = await existingClient(deps, positionals[0] ?? '');
      const grants = await listGrants(deps, { client: client.clientId });
      if (json) return void io.stdout(toJsonOutput({ client, grants }));
      const lines = [
        `Client:        ${client.clientId}`,
        // A name and redirect URIs are the registrant's: each on its own line, whatever line breaks they hold.
        `Name:          ${client.name === undefined ? '-' : printable(client.name)}`,
        `Type:          ${client.type}`,
        `Created:       ${formatTime(client.createdAt)}`,
        `Last used:     ${formatTime(client.lastUsedAt)}`,
        `Redirect URIs: ${client.redirectUris.map(printable).join(' ') || '-'}`,
        '',
        grants.length === 0
          ? 'No grants.'
          : formatTable(
              ['GRANT', 'USER', 'SCOPES', 'CREATED', 'LAST USED'],
              grants.map((grant) => [grant.grantId, grant.subject, grant.scopes.join(' '), formatTime(grant.createdAt), formatTime(grant.lastUsedAt)]),
            ),
      ];
      io.stdout(`${lines.join('\n')}\n`);
    },
  });

  const revoke = adminCommand(dependencies, {
    path: ['clients', 'revoke'],
    summary: 'End all grants and tokens of a client on every replica, and delete its dynamic registration.',
    positionals: ['CLIENT_ID'],
    options: { yes: yesOption },
    prepare: (values, io) => confirmation(values, io, 'clients revoke'),
    action: async ({ deps, positionals, io, json, prepared: confirm }) => {
      const target = await existingClient(deps, positionals[0] ?? '');
      const named = target.name === undefined ? target.clientId : `${target.clientId} (${printable(target.name)})`;
      if (!(await confirm(`Revoke client ${named} and its ${target.activeGrants} grant(s) on every replica?`))) return cancelled(io);
      const result = await revokeClient(deps, target.clientId);
      if (json) return void io.stdout(toJsonOutput(result));
      const { client, revokedGrants, revokedAppOnlyTokens, registrationDeleted } = result;
      const appOnly = revokedAppOnlyTokens.length === 0 ? '' : ` and ${revokedAppOnlyTokens.length} app-only token(s)`;
      const lines = [`Revoked ${revokedGrants.length} grant(s)${appOnly} of ${client.clientId}; its tokens are refused on every replica.`];
      if (registrationDeleted) lines.push('Its dynamic registration is deleted: the client id no longer works.');
      else if (client.type === 'pre-registered' && deps.demoClients?.has(client.clientId) === true) {
        // Revoking ends what it holds, not the registration: the running demo has it, and it may ask for tokens again.
        lines.push('The demo registers it itself (it is in no file): it can get new tokens while the demo runs.');
      } else if (client.type === 'pre-registered') lines.push('It is configured in authorization.clients: remove it there to stop new sign-ins.');
      else if (client.type === 'cimd') lines.push('It can sign in again; add its host to authorization.clientMetadataDocuments.denyDomains to block it.');
      io.stdout(`${lines.join('\n')}\n`);
    },
  });

  return { list, show, revoke };
}

async function existingClient(deps: AdminDeps, clientId: string) {
  const client = await findClient(deps, clientId);
  if (client === undefined) throw new AdminNotFoundError(`no client ${JSON.stringify(clientId)} — see "gatehouse clients list"`);
  return client;
}

const commands = createClientsCommands();
export const clientsListCommand: CliCommand = commands.list;
export const clientsShowCommand: CliCommand = commands.show;
export const clientsRevokeCommand: CliCommand = commands.revoke;
