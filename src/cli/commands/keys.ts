import { adminCommand, defaultAdminCommandDependencies, type AdminCommandDependencies, type AdminCommandInput } from '../admin-command.ts';
import { toJsonOutput } from '../../admin/text-table.ts';
import { KeySetError } from '../../keys/key-set.ts';
import { formatKeyTable, formatKeyTime, keyListingJson, nextPrunableAt } from '../../keys/key-report.ts';
import { listKeys, pruneKeys, rotateKeys } from '../../keys/rotation.ts';
import { CliUsageError, type CliCommand } from '../command.ts';
import { cancelled, confirmation, yesOption, type Confirm } from '../confirm.ts';

/**
 * `gatehouse keys list|rotate|prune`: key administration against the configured key source (store or key file).
 * Output carries key ids, algorithms and times only, never key material.
 */
export type KeysCommandDependencies = AdminCommandDependencies;

/** A malformed or unreadable key file is a configuration mistake: one line, exit code 2. */
function keyFileMistakesAreUsageErrors<I>(action: (input: I) => Promise<void | number>): (input: I) => Promise<void | number> {
  return async (input) => {
    try {
      return await action(input);
    } catch (error) {
      if (error instanceof KeySetError) throw new CliUsageError(error.message, { cause: error });
      throw error;
    }
  };
}

export function createKeysCommands(dependencies: KeysCommandDependencies = defaultAdminCommandDependencies): Record<'list' | 'rotate' | 'prune', CliCommand> {
  const list = adminCommand(dependencies, {
    path: ['keys', 'list'],
    summary: 'List signing and sealing keys: id, use, algorithm, status and age (never key material).',
    action: keyFileMistakesAreUsageErrors(async ({ deps: { store, config, clock }, io, json }: AdminCommandInput) => {
      const keys = await listKeys({ store, config, clock });
      if (json) return void io.stdout(toJsonOutput({ keys: keyListingJson(keys) }));
      io.stdout(keys.length === 0 ? 'No keys yet: Gatehouse creates them when it first starts.\n' : `${formatKeyTable(keys, clock.now())}\n`);
    }),
  });

  const rotate = adminCommand(dependencies, {
    path: ['keys', 'rotate'],
    summary: 'Add a new current signing and sealing key; the old ones keep verifying and unsealing until pruned.',
    action: keyFileMistakesAreUsageErrors(async ({ deps: { store, config, clock }, io, json }: AdminCommandInput) => {
      const result = await rotateKeys({ store, config, clock });
      if (json) return void io.stdout(toJsonOutput({ signingKid: result.signingKid, sealingKid: result.sealingKid, keys: keyListingJson(result.keys) }));
      io.stdout(
        `New signing key ${result.signingKid} and sealing key ${result.sealingKid} are current.\n` +
          'Running Gatehouse processes switch to them within a minute; the previous keys stay until `gatehouse keys prune`.\n\n' +
          `${formatKeyTable(result.keys, clock.now())}\n`,
      );
    }),
  });

  const prune = adminCommand(dependencies, {
    path: ['keys', 'prune'],
    summary: 'Remove retired keys once nothing they signed or sealed can still be valid (there is no --force).',
    options: { yes: yesOption },
    prepare: (values, io) => confirmation(values, io, 'keys prune'),
    action: keyFileMistakesAreUsageErrors(async ({ deps: { store, config, clock }, io, json, prepared: confirm }: AdminCommandInput & { prepared: Confirm }) => {
      const due = (await listKeys({ store, config, clock })).filter((key) => key.prunableAt !== undefined && clock.now() >= key.prunableAt);
      const named = due.map((key) => `${key.kid} (${key.use})`).join(', ');
      if (due.length > 0 && !(await confirm(`Remove ${due.length} retired key(s) for good: ${named}?`))) return cancelled(io);
      const result = await pruneKeys({ store, config, clock });
      if (json) return void io.stdout(toJsonOutput({ removed: keyListingJson(result.removed), kept: keyListingJson(result.kept) }));
      const removed = result.removed.map((key) => `${key.kid} (${key.use})`).join(', ');
      const next = nextPrunableAt(result.kept);
      io.stdout(
        (result.removed.length > 0 ? `Removed ${result.removed.length} retired key(s): ${removed}.\n` : 'Nothing to prune.\n') +
          (next === undefined ? '' : `The next retired key becomes prunable at ${formatKeyTime(next)}.\n`),
      );
    }),
  });

  return { list, rotate, prune };
}

const commands = createKeysCommands();
export const keysListCommand: CliCommand = commands.list;
export const keysRotateCommand: CliCommand = commands.rotate;
export const keysPruneCommand: CliCommand = commands.prune;
