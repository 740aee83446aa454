import { pino } from 'pino';
import type { CliIo } from './command.ts';
import { loadConfig } from '../config/load.ts';
import type { GatehouseConfig } from '../config/schema.ts';
import { systemClock, type Clock } from '../runtime/clock.ts';
import { openStore } from '../store/open-store.ts';
import { StoreUnavailableError, type Store } from '../store/store.ts';
import type { AdminDeps } from '../admin/admin-deps.ts';
import { GatehouseError } from '../errors/internal-errors.ts';

/**
 * The frame every admin CLI command runs in: load the config (`--config FILE`, else the demo defaults), open the
 * store it names, run, close. An unreachable store becomes one line naming it and exit code 1 — never a stack trace,
 * and never a hang (the Redis client fails fast, see src/store/redis-connection.ts).
 */
export interface AdminCommandDependencies {
  clock: Clock;
  /** Opens the store the config names; tests pass one over a temporary database. */
  openStore: (config: GatehouseConfig, io: CliIo) => Promise<Store>;
}

export const defaultAdminCommandDependencies: AdminCommandDependencies = {
  clock: systemClock,
  openStore: (config, io) =>
    openStore(config.store, {
      clock: systemClock,
      // Warnings (a Redis reconnect) go to stderr; stdout stays the command's output.
      logger: pino({ level: 'warn' }, { write: (line: string) => io.stderr(line) }),
    }),
};

export type CliValues = Record<string, string | boolean | string[] | undefined>;

export class StoreUnreachableError extends GatehouseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('GH_STORE_UNREACHABLE', message, options);
    this.name = 'StoreUnreachableError';
  }
}

const storeProblem = (error: StoreUnavailableError): StoreUnreachableError =>
  new StoreUnreachableError(`store unavailable: ${error.message.split('\n')[0]}`, { cause: error });

export async function withAdminStore<T>(
  values: CliValues,
  io: CliIo,
  dependencies: AdminCommandDependencies,
  action: (deps: AdminDeps) => Promise<T>,
): Promise<T> {
  const file = typeof values['config'] === 'string' ? values['config'] : undefined;
  const { config } = loadConfig({ file, env: io.env, cwd: io.cwd });
  let store: Store;
  try {
    store = await dependencies.openStore(config, io);
  } catch (error) {
    if (error instanceof StoreUnavailableError) throw storeProblem(error);
    throw error;
  }
  try {
    return await action({ store, clock: dependencies.clock, config });
  } catch (error) {
    if (error instanceof StoreUnavailableError) throw storeProblem(error);
    throw error;
  } finally {
    await store.close().catch(() => {});
  }
}

export const stringOption = (values: CliValues, name: string): string | undefined => {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
};

export const commonOptions = {
  config: { type: 'string', short: 'c', description: 'Configuration file (default: the local demo configuration).' },
  json: { type: 'boolean', description: 'Print JSON instead of a table.' },
} as const;
