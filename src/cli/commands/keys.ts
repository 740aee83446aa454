import { existsSync } from 'node:fs';
import { adminCommand, defaultAdminCommandDependencies, type AdminCommandDependencies, type AdminCommandInput } from '../admin-command.ts';
import { createSqliteStore } from '../../store/sqlite-store.ts';
import { StoreUnavailableError } from '../../store/store.ts';
import { toJsonOutput } from '../../admin/text-table.ts';
import { KeySetError } from '../../keys/key-set.ts';
import { formatKeyTable, formatKeyTime, keyListingJson, nextPrunableAt } from '../../keys/key-report.ts';
import { listKeys, pruneKeys, revokeKey, rotateKeys, UnknownKeyError, type KeyListing } from '../../keys/rotation.ts';
import type { GatehouseConfig } from '../../config/schema.ts';
import { CliUsageError, type CliCommand } from '../command.ts';
import { cancelled, confirmation, yesOption, type Confirm } from '../confirm.ts';

/**
 * `gatehouse keys list|rotate|prune|revoke`: key administration against the configured key source (store or key file).
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

/** What revoking `key` ends, said before it is done. */
function revocationQuestion(key: KeyListing): string {
  const current = key.status === 'current';
  return key.use === 'sig'
    ? `Revoke signing key ${key.kid} now? Every token it signed stops working at once (clients refresh or sign in again)` +
        `${current ? '; a new current signing key replaces it' : ''}.`
    : `Revoke sealing key ${key.kid} now? Nothing it sealed can be opened again (users sign in upstream again, cached downstream tokens are fetched again)` +
        `${current ? '; a new current sealing key replaces it' : ''}.`;
}

/** When running gateways stop trusting a revoked key, which depends on where the keys live and how replicas hear of it. */
function whenRunningGatewaysDropIt(config: GatehouseConfig): string {
  if (config.keys.source === 'file') {
    return 'Every Gatehouse reading this key file drops the key at its next reload: copy the file to every host, then send each process SIGHUP (otherwise within a minute).';
  }
  if (config.store.type === 'redis') return 'Every Gatehouse on this Redis drops the key now (the keys-changed message; at the latest within a minute).';
  return 'A running Gatehouse on this SQLite file drops the key at its next reload: send it SIGHUP now (`systemctl reload gatehouse`), otherwise within a minute.';
}

/**
 * With the keys in a file (what `gatehouse init` writes), the store only tells running gateways of a change. Before
 * the first start there is no database yet — and no gateway to tell — yet `keys list` answered "store unavailable"
 * for the keys the file holds. The commands then run on a scratch store in memory; a store that exists but cannot be
 * reached (Redis down) is said in one line, since running gateways then learn of a change only at their next reload.
 */
export function keyFileCommandDependencies(dependencies: AdminCommandDependencies, changesKeys = true): AdminCommandDependencies {
  return {
    ...dependencies,
    openStore: async (config, io) => {
      try {
        return await dependencies.openStore(config, io);
      } catch (error) {
        if (config.keys.source !== 'file' || !(error instanceof StoreUnavailableError)) throw error;
        const firstStart = config.store.type !== 'redis' && !existsSync(config.store.sqlitePath);
        // Only a command that changes the keys has something running gateways would not hear of.
        if (!firstStart && changesKeys) io.stderr(`note: ${error.message.split('\n')[0]}: running Gatehouse processes learn of a key change only at their next reload (SIGHUP, or within a minute)\n`);
        return createSqliteStore({ path: ':memory:', clock: dependencies.clock, purgeIntervalMs: 0 });
      }
    },
  };
}

export function createKeysCommands(
  given: KeysCommandDependencies = defaultAdminCommandDependencies,
): Record<'list' | 'rotate' | 'prune' | 'revoke', CliCommand> {
  const dependencies = keyFileCommandDependencies(given);
  const list = adminCommand(keyFileCommandDependencies(given, false), {
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
    // Asked only when there is something to remove: with nothing due, a script without --yes learns so (exit 0).
    prepare: (values, io): Confirm => (question) => confirmation(values, io, 'keys prune')(question),
    action: keyFileMistakesAreUsageErrors(async ({ deps: { store, config, clock }, io, json, prepared: confirm }: AdminCommandInput & { prepared: Confirm }) => {
      const listedAt = clock.now();
      const listed = await listKeys({ store, config, clock });
      const due = listed.filter((key) => key.prunableAt !== undefined && listedAt >= key.prunableAt);
      const named = due.map((key) => `${key.kid} (${key.use})`).join(', ');
      if (due.length > 0 && !(await confirm(`Remove ${due.length} retired key(s) for good: ${named}?`))) return cancelled(io);
      // Only what was listed and confirmed: a key that comes due while the question waits is pruned as of the
      // listing, so it stays for a run that names it.
      const result = due.length > 0 ? await pruneKeys({ store, config, clock, asOf: listedAt }) : { removed: [], kept: listed };
      if (json) return void io.stdout(toJsonOutput({ removed: keyListingJson(result.removed), kept: keyListingJson(result.kept) }));
      const removed = result.removed.map((key) => `${key.kid} (${key.use})`).join(', ');
      const next = nextPrunableAt(result.kept);
      io.stdout(
        (result.removed.length > 0 ? `Removed ${result.removed.length} retired key(s): ${removed}.\n` : 'Nothing to prune.\n') +
          (next === undefined
            ? ''
            : next <= clock.now()
              ? 'A retired key came due while this ran (it was not named): run it again to remove it.\n'
              : `The next retired key becomes prunable at ${formatKeyTime(next)}.\n`),
      );
    }),
  });

  const revoke = adminCommand(dependencies, {
    path: ['keys', 'revoke'],
    summary: 'Take a compromised key out now, whatever its window; a current key is replaced by a new one in the same write.',
    positionals: ['KID'],
    options: { yes: yesOption },
    prepare: (values, io) => confirmation(values, io, 'keys revoke'),
    action: keyFileMistakesAreUsageErrors(async ({ deps: { store, config, clock }, positionals, io, json, prepared: confirm }: AdminCommandInput & { prepared: Confirm }) => {
      const kid = positionals[0] ?? '';
      const named = (await listKeys({ store, config, clock })).filter((key) => key.kid === kid);
      if (named.length === 0) throw new UnknownKeyError(kid);
      for (const key of named) if (!(await confirm(revocationQuestion(key)))) return cancelled(io);
      const result = await revokeKey({ store, config, clock }, kid);
      if (json) {
        return void io.stdout(
          toJsonOutput({ revoked: keyListingJson(result.revoked), replacements: keyListingJson(result.replacements), keys: keyListingJson(result.keys) }),
        );
      }
      const kind = (key: KeyListing) => (key.use === 'sig' ? 'signing' : 'sealing');
      io.stdout(
        result.revoked.map((key) => `Revoked ${kind(key)} key ${key.kid}.\n`).join('') +
          result.replacements.map((key) => `New current ${kind(key)} key: ${key.kid}.\n`).join('') +
          `${whenRunningGatewaysDropIt(config)}\n\n${formatKeyTable(result.keys, clock.now())}\n`,
      );
    }),
  });

  return { list, rotate, prune, revoke };
}

const commands = createKeysCommands();
export const keysListCommand: CliCommand = commands.list;
export const keysRotateCommand: CliCommand = commands.rotate;
export const keysPruneCommand: CliCommand = commands.prune;
export const keysRevokeCommand: CliCommand = commands.revoke;
