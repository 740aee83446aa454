import { adminCommand, defaultAdminCommandDependencies, printListing, type AdminCommandDependencies } from '../admin-command.ts';
import { findClient, listClients, revokeClient } from '../../admin/clients.ts';
import { AdminNotFoundError } from '../../admin/admin-deps.ts';
import { listGrants } from '../../admin/grants.ts';
import { formatTable, formatTime, printable, toJsonOutput } from '../../admin/text-table.ts';
import type { CliCommand } from '../command.ts';
import { cancelled, confirmation, yesOption } from '../confirm.ts';
import type { AdminDeps } from '../../admin/admin-deps.ts';
import { DEFAULT_UNUSED_WINDOW_MS, MIN_UNUSED_WINDOW_MS, pruneRegistrations, unusedRegistrations } from '../../admin/registration-prune.ts';
import { InvalidSinceError, parseSince } from '../../admin/since.ts';
import { CliUsageError } from '../command.ts';

/** `gatehouse clients list|show|revoke|prune`: the MCP clients known to this gateway, cutting one off, clearing out unused registrations. */
export function createClientsCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): Record<'list' | 'show' | 'revoke' | 'prune', CliCommand> {
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

  const prune = adminCommand(dependencies, {
    path: ['clients', 'prune'],
    summary: 'Delete dynamic registrations nothing uses (no grant lately, no app-only token), registered longer ago than --older-than (default 24h).',
    options: {
      'older-than': { type: 'string', description: 'Registered at least this long ago: an age (12h, 7d; at least 1h) or an ISO 8601 time (default 24h).' },
      yes: yesOption,
    },
    // The window is read before the store is opened; the question only when there is something to delete (as keys prune).
    prepare: (values, io) => ({
      registeredBefore: registeredBefore(values['older-than'], dependencies.clock.now()),
      confirm: (question: string) => confirmation(values, io, 'clients prune')(question),
    }),
    action: async ({ deps, io, json, prepared: { registeredBefore, confirm } }) => {
      const listed = await unusedRegistrations(deps, registeredBefore);
      if (listed.length > 0 && !(await confirm(`Delete ${listed.length} dynamic registration(s) that nothing uses, registered before ${formatTime(registeredBefore)}?`))) {
        return cancelled(io);
      }
      const result = await pruneRegistrations(deps, listed);
      if (json) io.stdout(toJsonOutput(result));
      else {
        const lines =
          listed.length === 0
            ? [`No dynamic registration registered before ${formatTime(registeredBefore)} is unused.`]
            : [`Deleted ${result.deleted.length} of ${listed.length} unused dynamic registration(s); their client ids no longer work (a client that comes back registers again).`];
        // Named, so a timer's log says where a registration went (the ids are random; the names are the registrants').
        for (const client of result.deleted) lines.push(`  ${client.clientId}${client.name === undefined ? '' : ` (${printable(client.name)})`}`);
        if (result.keptInUse.length > 0) lines.push(`Kept ${result.keptInUse.length} that a user or a token began to use while this ran.`);
        if (result.endedGrants.length > 0) lines.push(`Ended ${result.endedGrants.length} grant(s) saved for them as they were deleted.`);
        io.stdout(`${lines.join('\n')}\n`);
      }
      if (result.stopped === undefined) return;
      io.stderr(`gatehouse: stopped part-way, the store is unavailable (${result.stopped}); what is above was done — run it again\n`);
      return 1;
    },
  });

  return { list, show, revoke, prune };
}

/**
 * `--older-than` as the registration time it names (an age counts back from now); a day when absent. At least an hour
 * back: a younger registration may be in the middle of its first sign-in.
 */
function registeredBefore(value: unknown, now: number): number {
  if (value === undefined) return now - DEFAULT_UNUSED_WINDOW_MS;
  let before: number;
  try {
    before = parseSince(String(value), now);
  } catch (error) {
    if (error instanceof InvalidSinceError) throw new CliUsageError(`--older-than ${JSON.stringify(value)} is not an age or a time: use an age like 12h or 7d, or ISO 8601`);
    throw error;
  }
  if (before > now - MIN_UNUSED_WINDOW_MS) {
    throw new CliUsageError(`--older-than ${JSON.stringify(value)} is less than an hour ago: a registration that young may be in the middle of its first sign-in`);
  }
  return before;
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
export const clientsPruneCommand: CliCommand = commands.prune;
