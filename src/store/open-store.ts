import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import type { GatehouseConfig } from '../config/schema.ts';
import type { Clock } from '../runtime/clock.ts';
import { createSqliteStore } from './sqlite-store.ts';
import { StoreUnavailableError, type Store } from './store.ts';

/**
 * Opens the store the configuration names. Throws StoreUnavailableError with a one-line message (no secrets) when
 * the backend cannot be opened, so start-up can print it and exit.
 */
export async function openStore(
  config: GatehouseConfig['store'],
  dependencies: { clock: Clock; logger?: Logger; mustExist?: boolean },
): Promise<Store> {
  const { clock, logger } = dependencies;
  // The admin commands read and change a store the gateway made. Opening a SQLite path creates it (directories
  // and all): a mistyped path, or a command run before the first start, was an empty store that listed "No grants."
  // and passed `doctor`, in a directory owned by whoever ran it.
  if (dependencies.mustExist === true && config.type !== 'redis' && config.sqlitePath !== ':memory:' && !existsSync(config.sqlitePath)) {
    throw new StoreUnavailableError(`store.sqlitePath: there is no database at ${config.sqlitePath} — the gateway creates it when it first starts; check the path`);
  }
  if (config.type === 'redis') {
    if (!config.redisUrl) {
      throw new StoreUnavailableError('store.redisUrl is required when store.type is redis');
    }
    // Loaded only when configured: a SQLite deployment never needs the Redis client in memory.
    const { createRedisStore } = await import('./redis-store.ts');
    return createRedisStore({ url: config.redisUrl, keyPrefix: config.keyPrefix, clock, logger });
  }
  return createSqliteStore({ path: config.sqlitePath, clock, purgeIntervalMs: config.purgeIntervalMs, logger });
}
