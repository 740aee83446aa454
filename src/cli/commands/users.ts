import { commonOptions, defaultAdminCommandDependencies, withAdminStore, type AdminCommandDependencies } from '../admin-command.ts';
import { formatTable, formatTime, toJsonOutput } from '../../admin/text-table.ts';
import { listUsers } from '../../admin/users.ts';
import type { CliCommand } from '../command.ts';

/** `gatehouse users list`: who has signed in through Gatehouse, and when last. */
export function createUsersCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): { list: CliCommand } {
  const list: CliCommand = {
    path: ['users', 'list'],
    summary: 'List users who have signed in: subject, name, email, first and last seen, grants.',
    options: commonOptions,
    run: ({ values, io }) =>
      withAdminStore(values, io, dependencies, async (deps) => {
        const users = await listUsers(deps);
        if (values.json === true) io.stdout(toJsonOutput({ users }));
        else if (users.length === 0) io.stdout('No one has signed in yet.\n');
        else {
          const rows = users.map((user) => [
            user.subject,
            user.name ?? '-',
            user.email ?? '-',
            formatTime(user.firstSeenAt),
            formatTime(user.lastSeenAt),
            String(user.activeGrants),
          ]);
          io.stdout(`${formatTable(['SUBJECT', 'NAME', 'EMAIL', 'FIRST SEEN', 'LAST SEEN', 'GRANTS'], rows)}\n`);
        }
        return 0;
      }),
  };
  return { list };
}

export const usersListCommand: CliCommand = createUsersCommands().list;
