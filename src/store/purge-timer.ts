import type { Logger } from 'pino';
import { storeFailureLogFields, type Store } from './store.ts';

export interface PurgeTimer {
  stop(): void;
}

/**
 * The background purge both stores run every `store.purgeIntervalMs` (0 turns it off): a failed round is logged and
 * the next one tries again, and the timer never keeps the process alive on its own.
 */
export function startPurgeTimer(store: Pick<Store, 'purgeExpired'>, intervalMs: number, logger: Logger | undefined): PurgeTimer {
  if (intervalMs <= 0) return { stop: () => {} };
  const timer = setInterval(() => {
    store.purgeExpired().catch((error: unknown) => logger?.warn(storeFailureLogFields(error), 'store purge failed'));
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
