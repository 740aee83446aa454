import { adminCommand, defaultAdminCommandDependencies, type AdminCommandDependencies } from '../admin-command.ts';
import { toJsonOutput } from '../../admin/text-table.ts';
import type { CliCommand } from '../command.ts';

/**
 * `gatehouse store purge-expired`: deletes expired records now. Both stores purge on their own timer
 * (`store.purgeIntervalMs`); this is for a cron job while the gateway is stopped, or before a backup.
 */
export function createStoreCommands(dependencies: AdminCommandDependencies = defaultAdminCommandDependencies): { purgeExpired: CliCommand } {
  const purgeExpired = adminCommand(dependencies, {
    path: ['store', 'purge-expired'],
    summary: 'Delete expired records (codes, tokens, sessions, caches) from the store now.',
    action: async ({ deps, io, json }) => {
      const removed = await deps.store.purgeExpired();
      if (json) io.stdout(toJsonOutput({ store: deps.store.kind, removed }));
      else io.stdout(`Removed ${removed} expired record(s) from the ${deps.store.kind} store.\n`);
    },
  });
  return { purgeExpired };
}

export const storePurgeExpiredCommand: CliCommand = createStoreCommands().purgeExpired;
