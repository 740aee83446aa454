import type { Logger } from 'pino';
import { StoreUnavailableError, type Store } from './store.ts';

export interface StoreHealthOptions {
  logger?: Logger | undefined;
  /** How often a down store is probed with `ping` (default 1 s); also the `Retry-After` clients are given. */
  probeIntervalMs?: number;
}

/**
 * A circuit breaker in front of a store. The first StoreUnavailableError (Redis stopped, a command timing out on a
 * frozen Redis, SQLite busy past its timeout) marks the store down; while it is down every call fails at once with
 * StoreUnavailableError instead of each request waiting out the command timeout, and a background `ping` probes
 * until the store answers again. Other errors (bad names, corrupt values) are the caller's and pass through.
 *
 * `subscribe` is not guarded: it opens its own connection and its callers (revocation and key caches) retry by
 * themselves; `close` is never refused.
 */
export function guardStoreHealth(store: Store, options: StoreHealthOptions = {}): Store {
  const { logger, probeIntervalMs = 1_000 } = options;
  const retryAfterSeconds = Math.max(1, Math.ceil(probeIntervalMs / 1000));
  let down: StoreUnavailableError | undefined;
  /** Grows each time the store comes back: a call that began before then failed in the outage that has ended. */
  let recoveries = 0;
  let probeTimer: NodeJS.Timeout | undefined;
  let closed = false;

  const scheduleProbe = (): void => {
    if (closed) return;
    // unref: a probe must never keep a stopping process alive.
    probeTimer = setTimeout(probe, probeIntervalMs).unref();
  };

  function probe(): void {
    store.ping().then(
      () => {
        if (down === undefined) return;
        down = undefined;
        recoveries += 1;
        logger?.info('store available again');
      },
      scheduleProbe,
    );
  }

  function markDown(error: StoreUnavailableError, startedIn: number): StoreUnavailableError {
    const failure = new StoreUnavailableError(error.message, { cause: error.cause ?? error, retryAfterSeconds });
    // A call sent into the outage that ended since (a command timing out late on a frozen Redis that was thawed
    // meanwhile) says nothing of the store now: it marked a store down again a second after the probe found it back.
    if (down === undefined && !closed && startedIn === recoveries) {
      down = failure;
      logger?.warn({ reason: error.message }, 'store unavailable; failing fast until a probe succeeds');
      scheduleProbe();
    }
    return failure;
  }

  async function guarded<R>(operation: () => Promise<R>): Promise<R> {
    if (down !== undefined) {
      throw new StoreUnavailableError(down.message, { cause: down.cause, retryAfterSeconds });
    }
    const startedIn = recoveries;
    try {
      return await operation();
    } catch (error) {
      throw error instanceof StoreUnavailableError ? markDown(error, startedIn) : error;
    }
  }

  return {
    kind: store.kind,
    get: (namespace, key) => guarded(() => store.get(namespace, key)),
    set: (namespace, key, value, setOptions) => guarded(() => store.set(namespace, key, value, setOptions)),
    setMany: (writes) => guarded(() => store.setMany(writes)),
    setIfAbsent: (namespace, key, value, setOptions) => guarded(() => store.setIfAbsent(namespace, key, value, setOptions)),
    delete: (namespace, key) => guarded(() => store.delete(namespace, key)),
    consume: (namespace, key) => guarded(() => store.consume(namespace, key)),
    findByIndex: (namespace, index, value, range) => guarded(() => store.findByIndex(namespace, index, value, range)),
    addIndexes: (namespace, key, indexes) => guarded(() => store.addIndexes(namespace, key, indexes)),
    deleteByIndex: (namespace, index, value) => guarded(() => store.deleteByIndex(namespace, index, value)),
    list: (namespace, listOptions) => guarded(() => store.list(namespace, listOptions)),
    increment: (namespace, key, ttlSeconds, by) => guarded(() => store.increment(namespace, key, ttlSeconds, by)),
    async acquireLock(name, ttlMs) {
      const release = await guarded(() => store.acquireLock(name, ttlMs));
      return release === undefined ? undefined : () => guarded(release);
    },
    publish: (channel, message) => guarded(() => store.publish(channel, message)),
    subscribe: (channel, onMessage) => store.subscribe(channel, onMessage),
    purgeExpired: () => guarded(() => store.purgeExpired()),
    ping: () => guarded(() => store.ping()),
    ...(store.configurationRisks === undefined ? {} : { configurationRisks: () => guarded(() => store.configurationRisks!()) }),
    async close() {
      closed = true;
      clearTimeout(probeTimer);
      await store.close();
    },
  };
}
