import { pino } from 'pino';
import type { GatehouseConfig } from '../../config/schema.ts';
import { loadConfig } from '../../config/load.ts';
import { KeySetError } from '../../keys/key-set.ts';
import { formatKeyTable, formatKeyTime, keyListingJson, nextPrunableAt } from '../../keys/key-report.ts';
import { listKeys, pruneKeys, rotateKeys } from '../../keys/rotation.ts';
import { systemClock, type Clock } from '../../runtime/clock.ts';
import { openStore } from '../../store/open-store.ts';
import type { Store } from '../../store/store.ts';
import { CliUsageError, type CliCommand, type CliIo, type CliOption } from '../command.ts';
import { cancelled, confirmation, yesOption } from '../confirm.ts';

/**
 * `gatehouse keys list|rotate|prune`: key administration against the configured key source (store or key file).
 * Output carries key ids, algorithms and times only, never key material.
 */

export interface KeysCommandDependencies {
  clock: Clock;
  /** Opens the store the config names; tests pass one over a temporary database. */
  openStore: (config: GatehouseConfig, io: CliIo) => Promise<Store>;
}

const defaultDependencies: KeysCommandDependencies = {
  clock: systemClock,
  openStore: (config, io) =>
    openStore(config.store, {
      clock: systemClock,
      // Warnings (e.g. a Redis reconnect) go to stderr; stdout stays the command's output.
      logger: pino({ level: 'warn' }, { write: (line: string) => io.stderr(line) }),
    }),
};

const options: Record<string, CliOption> = {
  config: { type: 'string', short: 'c', description: 'Configuration file (default: the local demo configuration).' },
  json: { type: 'boolean', description: 'Print JSON instead of a table.' },
};

type Action = (input: { config: GatehouseConfig; store: Store; clock: Clock; json: boolean; io: CliIo }) => Promise<void | number>;

async function withKeys(
  values: Record<string, string | boolean | string[] | undefined>,
  io: CliIo,
  dependencies: KeysCommandDependencies,
  action: Action,
): Promise<number> {
  const file = typeof values['config'] === 'string' ? values['config'] : undefined;
  const { config } = loadConfig({ file, env: io.env, cwd: io.cwd });
  const store = await dependencies.openStore(config, io);
  try {
    // An action returns a code only when it did not do its work (the operator cancelled).
    return (await action({ config, store, clock: dependencies.clock, json: values['json'] === true, io })) ?? 0;
  } catch (error) {
    // A malformed or unreadable key file is a configuration mistake: one line, exit code 2.
    if (error instanceof KeySetError) throw new CliUsageError(error.message, { cause: error });
    throw error;
  } finally {
    await store.close();
  }
}

function printJson(io: CliIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

export function createKeysCommands(dependencies: KeysCommandDependencies = defaultDependencies): {
  list: CliCommand;
  rotate: CliCommand;
  prune: CliCommand;
} {
  const list: CliCommand = {
    path: ['keys', 'list'],
    summary: 'List signing and sealing keys: id, use, algorithm, status and age (never key material).',
    options,
    run: ({ values, io }) =>
      withKeys(values, io, dependencies, async ({ config, store, clock, json }) => {
        const keys = await listKeys({ store, config, clock });
        if (json) return printJson(io, { keys: keyListingJson(keys) });
        io.stdout(keys.length === 0 ? 'No keys yet: Gatehouse creates them when it first starts.\n' : `${formatKeyTable(keys, clock.now())}\n`);
      }),
  };

  const rotate: CliCommand = {
    path: ['keys', 'rotate'],
    summary: 'Add a new current signing and sealing key; the old ones keep verifying and unsealing until pruned.',
    options,
    run: ({ values, io }) =>
      withKeys(values, io, dependencies, async ({ config, store, clock, json }) => {
        const result = await rotateKeys({ store, config, clock });
        if (json) return printJson(io, { signingKid: result.signingKid, sealingKid: result.sealingKid, keys: keyListingJson(result.keys) });
        io.stdout(
          `New signing key ${result.signingKid} and sealing key ${result.sealingKid} are current.\n` +
            'Running Gatehouse processes switch to them within a minute; the previous keys stay until `gatehouse keys prune`.\n\n' +
            `${formatKeyTable(result.keys, clock.now())}\n`,
        );
      }),
  };

  const prune: CliCommand = {
    path: ['keys', 'prune'],
    summary: 'Remove retired keys once nothing they signed or sealed can still be valid (there is no --force).',
    options: { ...options, yes: yesOption },
    run: ({ values, io }) => {
      const confirm = confirmation(values, io, 'keys prune');
      return withKeys(values, io, dependencies, async ({ config, store, clock, json }) => {
        const due = (await listKeys({ store, config, clock })).filter((key) => key.prunableAt !== undefined && clock.now() >= key.prunableAt);
        const named = due.map((key) => `${key.kid} (${key.use})`).join(', ');
        if (due.length > 0 && !(await confirm(`Remove ${due.length} retired key(s) for good: ${named}?`))) return cancelled(io);
        const result = await pruneKeys({ store, config, clock });
        if (json) return printJson(io, { removed: keyListingJson(result.removed), kept: keyListingJson(result.kept) });
        const removed = result.removed.map((key) => `${key.kid} (${key.use})`).join(', ');
        const next = nextPrunableAt(result.kept);
        io.stdout(
          (result.removed.length > 0 ? `Removed ${result.removed.length} retired key(s): ${removed}.\n` : 'Nothing to prune.\n') +
            (next === undefined ? '' : `The next retired key becomes prunable at ${formatKeyTime(next)}.\n`),
        );
      });
    },
  };

  return { list, rotate, prune };
}

const commands = createKeysCommands();
export const keysListCommand: CliCommand = commands.list;
export const keysRotateCommand: CliCommand = commands.rotate;
export const keysPruneCommand: CliCommand = commands.prune;
