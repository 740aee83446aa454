import { ProtocolError } from '../errors/protocol-error.ts';
import type { Store } from '../store/store.ts';

/**
 * One holder per key across every replica sharing the store (a store lock, never a per-process mutex: with three
 * gateway replicas behind a load balancer, a per-process lock would still let three refreshes race, and with refresh
 * token rotation the losers would burn the user's session). Everyone else waits, polling for the holder's result with
 * bounded exponential backoff, and reuses it.
 */
export interface SingleFlightOptions<T> {
  store: Store;
  lockName: string;
  /** Longer than the work can take (its own timeouts included), so a crashed holder frees the lock soon enough. */
  lockTtlMs: number;
  /** Total time a waiter sleeps before giving up with `temporarily_unavailable`. */
  waitBudgetMs: number;
  sleep: (ms: number) => Promise<void>;
  /** The holder's result if it is there; throws if the holder recorded a failure. */
  poll: () => Promise<T | undefined>;
  /**
   * The holder's work. `holdLock(until)`: keep the lock after the work returned or threw, until `until` settles (the
   * lock's TTL still bounds it) — for a result the holder has but the store does not yet (a rotated refresh token it
   * could not save), which a waiter taking the lock would otherwise redo with what the store still holds.
   */
  work: (holdLock: (until: Promise<unknown>) => void) => Promise<T>;
  /** Told when this caller waited for another holder (metrics). */
  onWait?: () => void;
}

const firstDelayMs = 20;
const maxDelayMs = 400;

export async function singleFlight<T>(options: SingleFlightOptions<T>): Promise<T> {
  const { store, lockName, lockTtlMs, waitBudgetMs, sleep, poll, work } = options;
  let waitedMs = 0;
  let delayMs = firstDelayMs;
  let waited = false;
  for (;;) {
    const release = await store.acquireLock(lockName, lockTtlMs);
    if (release) {
      let held: Promise<unknown> | undefined;
      try {
        // The previous holder may have finished between our cache miss and getting the lock.
        // Every promise the work hands over keeps the lock, not only the last one.
        return (await poll()) ?? (await work((until) => void (held = held === undefined ? until : Promise.allSettled([held, until]))));
      } finally {
        if (held === undefined) await release().catch(() => undefined);
        else void held.then(release, release).catch(() => undefined);
      }
    }
    if (!waited) {
      waited = true;
      options.onWait?.();
    }
    if (waitedMs >= waitBudgetMs) {
      throw new ProtocolError('temporarily_unavailable', 'Another request for this token is taking too long; retry later.', {
        headers: { 'Retry-After': '1' },
      });
    }
    const step = Math.min(delayMs, waitBudgetMs - waitedMs);
    await sleep(step);
    waitedMs += step;
    delayMs = Math.min(delayMs * 2, maxDelayMs);
    const result = await poll();
    if (result !== undefined) return result;
  }
}
