import { commonOptions, defaultAdminCommandDependencies, stringOption, withAdminStore, type AdminCommandDependencies } from '../admin-command.ts';
import { findGrant, listGrants, revokeGrantById } from '../../admin/grants.ts';
import { formatTable, formatTime, toJsonOutput } from '../../admin/text-table.ts';
import { AdminNotFoundError } from '../../admin/admin-deps.ts';
import type { CliCommand } from '../command.ts';
import { cancelled, confirmation, yesOption } from '../confirm.ts';

/** `gatehouse grants list|revoke`: what users approved for which clients, and ending one approval. */
export function createGrantsCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): {
  list: CliCommand;
  revoke: CliCommand;
} {
  const list: CliCommand = {
    path: ['grants', 'list'],
    summary: 'List grants (user, client, scopes, created, last used), optionally for one user or client.',
    options: {
      ...commonOptions,
      user: { type: 'string', short: 'u', description: 'Only grants of this user (subject, as in "gatehouse users list").' },
      client: { type: 'string', description: 'Only grants of this client id.' },
    },
    run: ({ values, io }) =>
      withAdminStore(values, io, dependencies, async (deps) => {
        const grants = await listGrants(deps, { user: stringOption(values, 'user'), client: stringOption(values, 'client') });
        if (values.json === true) io.stdout(toJsonOutput({ grants }));
        else if (grants.length === 0) io.stdout('No grants.\n');
        else {
          const rows = grants.map((grant) => [
            grant.grantId,
            grant.subject,
            grant.clientId,
            grant.scopes.join(' '),
            formatTime(grant.createdAt),
            formatTime(grant.lastUsedAt),
          ]);
          io.stdout(`${formatTable(['GRANT', 'USER', 'CLIENT', 'SCOPES', 'CREATED', 'LAST USED'], rows)}\n`);
        }
        return 0;
      }),
  };

  const revoke: CliCommand = {
    path: ['grants', 'revoke'],
    summary: 'Revoke a grant: its tokens are refused on every replica and its refresh tokens deleted.',
    positionals: ['GRANT_ID'],
    options: { ...commonOptions, yes: yesOption },
    run: ({ values, positionals, io }) => {
      const confirm = confirmation(values, io, 'grants revoke');
      return withAdminStore(values, io, dependencies, async (deps) => {
        const grantId = positionals[0] ?? '';
        const target = await findGrant(deps, grantId);
        if (target === undefined) throw new AdminNotFoundError(`no grant ${JSON.stringify(grantId)}`);
        if (!(await confirm(`Revoke grant ${grantId} (user ${target.subject}, client ${target.clientId}) on every replica?`))) return cancelled(io);
        const grant = await revokeGrantById(deps, grantId);
        if (values.json === true) io.stdout(toJsonOutput({ revoked: grant }));
        else io.stdout(`Revoked grant ${grant.grantId} (user ${grant.subject}, client ${grant.clientId}).\n`);
        return 0;
      });
    },
  };

  return { list, revoke };
}

const commands = createGrantsCommands();
export const grantsListCommand: CliCommand = commands.list;
export const grantsRevokeCommand: CliCommand = commands.revoke;
