import { commonOptions, defaultAdminCommandDependencies, withAdminStore, type AdminCommandDependencies } from '../admin-command.ts';
import { findClient, listClients, revokeClient } from '../../admin/clients.ts';
import { AdminNotFoundError } from '../../admin/admin-deps.ts';
import { listGrants } from '../../admin/grants.ts';
import { formatTable, formatTime, toJsonOutput } from '../../admin/text-table.ts';
import type { CliCommand } from '../command.ts';
import { cancelled, confirmation, yesOption } from '../confirm.ts';

/** `gatehouse clients list|show|revoke`: the MCP clients known to this gateway, and cutting one off. */
export function createClientsCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): {
  list: CliCommand;
  show: CliCommand;
  revoke: CliCommand;
} {
  const list: CliCommand = {
    path: ['clients', 'list'],
    summary: 'List MCP clients: name, type (pre-registered, dcr, cimd), redirect hosts, created, last used, grants.',
    options: commonOptions,
    run: ({ values, io }) =>
      withAdminStore(values, io, dependencies, async (deps) => {
        const clients = await listClients(deps);
        if (values.json === true) io.stdout(toJsonOutput({ clients }));
        else if (clients.length === 0) io.stdout('No clients yet.\n');
        else {
          const rows = clients.map((client) => [
            client.clientId,
            client.name ?? '-',
            client.type,
            client.redirectHosts.join(',') || '-',
            formatTime(client.createdAt),
            formatTime(client.lastUsedAt),
            String(client.activeGrants),
          ]);
          io.stdout(`${formatTable(['CLIENT ID', 'NAME', 'TYPE', 'REDIRECT HOSTS', 'CREATED', 'LAST USED', 'GRANTS'], rows)}\n`);
        }
        return 0;
      }),
  };

  const show: CliCommand = {
    path: ['clients', 'show'],
    summary: 'Show one client with its redirect URIs and grants.',
    positionals: ['CLIENT_ID'],
    options: commonOptions,
    run: ({ values, positionals, io }) =>
      withAdminStore(values, io, dependencies, async (deps) => {
        const clientId = positionals[0] ?? '';
        const client = await findClient(deps, clientId);
        if (client === undefined) throw new AdminNotFoundError(`no client ${JSON.stringify(clientId)} — see "gatehouse clients list"`);
        const grants = await listGrants(deps, { client: clientId });
        if (values.json === true) {
          io.stdout(toJsonOutput({ client, grants }));
          return 0;
        }
        const lines = [
          `Client:        ${client.clientId}`,
          `Name:          ${client.name ?? '-'}`,
          `Type:          ${client.type}`,
          `Created:       ${formatTime(client.createdAt)}`,
          `Last used:     ${formatTime(client.lastUsedAt)}`,
          `Redirect URIs: ${client.redirectUris.join(' ') || '-'}`,
          '',
          grants.length === 0
            ? 'No grants.'
            : formatTable(
                ['GRANT', 'USER', 'SCOPES', 'CREATED', 'LAST USED'],
                grants.map((grant) => [grant.grantId, grant.subject, grant.scopes.join(' '), formatTime(grant.createdAt), formatTime(grant.lastUsedAt)]),
              ),
        ];
        io.stdout(`${lines.join('\n')}\n`);
        return 0;
      }),
  };

  const revoke: CliCommand = {
    path: ['clients', 'revoke'],
    summary: 'End all grants and tokens of a client on every replica, and delete its dynamic registration.',
    positionals: ['CLIENT_ID'],
    options: { ...commonOptions, yes: yesOption },
    run: ({ values, positionals, io }) => {
      const confirm = confirmation(values, io, 'clients revoke');
      return withAdminStore(values, io, dependencies, async (deps) => {
        const clientId = positionals[0] ?? '';
        const target = await findClient(deps, clientId);
        if (target === undefined) throw new AdminNotFoundError(`no client ${JSON.stringify(clientId)} — see "gatehouse clients list"`);
        const named = target.name === undefined ? target.clientId : `${target.clientId} (${target.name})`;
        if (!(await confirm(`Revoke client ${named} and its ${target.activeGrants} grant(s) on every replica?`))) return cancelled(io);
        const result = await revokeClient(deps, clientId);
        if (values.json === true) {
          io.stdout(toJsonOutput(result));
          return 0;
        }
        const { client, revokedGrants, registrationDeleted } = result;
        const lines = [`Revoked ${revokedGrants.length} grant(s) of ${client.clientId}; its tokens are refused on every replica.`];
        if (registrationDeleted) lines.push('Its dynamic registration is deleted: the client id no longer works.');
        else if (client.type === 'pre-registered') lines.push('It is configured in authorization.clients: remove it there to stop new sign-ins.');
        else if (client.type === 'cimd') lines.push('It can sign in again; add its host to authorization.clientMetadataDocuments.denyDomains to block it.');
        io.stdout(`${lines.join('\n')}\n`);
        return 0;
      });
    },
  };

  return { list, show, revoke };
}

const commands = createClientsCommands();
export const clientsListCommand: CliCommand = commands.list;
export const clientsShowCommand: CliCommand = commands.show;
export const clientsRevokeCommand: CliCommand = commands.revoke;
