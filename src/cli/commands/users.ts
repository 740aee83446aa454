import { adminCommand, defaultAdminCommandDependencies, printListing, type AdminCommandDependencies } from '../admin-command.ts';
import { formatTime } from '../../admin/text-table.ts';
import { listUsers } from '../../admin/users.ts';
import type { CliCommand } from '../command.ts';

/** `gatehouse users list`: who has signed in through Gatehouse, and when last. */
export function createUsersCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): { list: CliCommand } {
  const list = adminCommand(dependencies, {
    path: ['users', 'list'],
    summary: 'List users who have signed in: subject, name, email, first and last seen, grants.',
    action: async ({ deps, io, json }) =>
      printListing(io, json, {
        key: 'users',
        items: await listUsers(deps),
        empty: 'No one has signed in yet.',
        headers: ['SUBJECT', 'NAME', 'EMAIL', 'FIRST SEEN', 'LAST SEEN', 'GRANTS'],
        row: (user) => [user.subject, user.name ?? '-', user.email ?? '-', formatTime(user.firstSeenAt), formatTime(user.lastSeenAt), String(user.activeGrants)],
      }),
  });
  return { list };
}

export const usersListCommand: CliCommand = createUsersCommands().list;
