import { adminCommand, defaultAdminCommandDependencies, printListing, stringOption, type AdminCommandDependencies } from '../admin-command.ts';
import { findGrant, listGrants, revokeGrantById } from '../../admin/grants.ts';
import { formatTime, printable, toJsonOutput } from '../../admin/text-table.ts';
import { AdminNotFoundError } from '../../admin/admin-deps.ts';
import type { CliCommand } from '../command.ts';
import { cancelled, confirmation, yesOption } from '../confirm.ts';

/** `gatehouse grants list|revoke`: what users approved for which clients, and ending one approval. */
export function createGrantsCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): Record<'list' | 'revoke', CliCommand> {
  const list = adminCommand(dependencies, {
    path: ['grants', 'list'],
    summary: 'List grants (user, client, scopes, created, last used), optionally for one user or client.',
    options: {
      user: { type: 'string', short: 'u', description: 'Only grants of this user (subject, as in "gatehouse users list").' },
      client: { type: 'string', description: 'Only grants of this client id.' },
    },
    action: async ({ deps, values, io, json }) =>
      printListing(io, json, {
        key: 'grants',
        items: await listGrants(deps, { user: stringOption(values, 'user'), client: stringOption(values, 'client') }),
        empty: 'No grants.',
        headers: ['GRANT', 'USER', 'CLIENT', 'SCOPES', 'CREATED', 'LAST USED'],
        row: (grant) => [grant.grantId, grant.subject, grant.clientId, grant.scopes.join(' '), formatTime(grant.createdAt), formatTime(grant.lastUsedAt)],
      }),
  });

  const revoke = adminCommand(dependencies, {
    path: ['grants', 'revoke'],
    summary: 'Revoke a grant: its tokens are refused on every replica and its refresh tokens deleted.',
    positionals: ['GRANT_ID'],
    options: { yes: yesOption },
    prepare: (values, io) => confirmation(values, io, 'grants revoke'),
    action: async ({ deps, positionals, io, json, prepared: confirm }) => {
      const grantId = positionals[0] ?? '';
      const target = await findGrant(deps, grantId);
      if (target === undefined) throw new AdminNotFoundError(`no grant ${JSON.stringify(grantId)}`);
      if (!(await confirm(`Revoke grant ${grantId} (user ${printable(target.subject)}, client ${printable(target.clientId)}) on every replica?`))) return cancelled(io);
      const { ended: _ended, ...grant } = await revokeGrantById(deps, grantId);
      if (json) io.stdout(toJsonOutput({ revoked: grant }));
      else io.stdout(`Revoked grant ${grant.grantId} (user ${printable(grant.subject)}, client ${printable(grant.clientId)}).\n`);
    },
  });

  return { list, revoke };
}

const commands = createGrantsCommands();
export const grantsListCommand: CliCommand = commands.list;
export const grantsRevokeCommand: CliCommand = commands.revoke;
