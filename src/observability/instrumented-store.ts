import type { Clock } from '../runtime/clock.ts';
import type { Store } from '../store/store.ts';
import type { GatehouseMetrics } from './metrics.ts';

/** The `operation` label values: the Store method names, plus `releaseLock` for the release a lock hands back. */
export type StoreOperation = Exclude<keyof Store, 'kind'> | 'releaseLock';

/**
 * A Store that reports how long every operation takes (`gatehouse_store_operation_duration_seconds`, labelled with
 * the method name and the backend) and otherwise behaves exactly like the one it wraps. Failed operations are timed
 * too: a Redis that answers slowly and then errors is the case an operator most needs to see.
 *
 * Every request goes through the store several times, so the wrapper adds only two clock reads and one
 * observation per call. The clock defaults to `performance` (monotonic, sub-millisecond): store calls are usually
 * far under a millisecond, so the injected wall clock (`Clock`, whole milliseconds, can step) would mostly read 0.
 */
export function instrumentStore(
  store: Store,
  metrics: Pick<GatehouseMetrics, 'observeStoreOperation'>,
  clock: Clock = performance,
): Store {
  const backend = store.kind;
  async function timed<T>(operation: StoreOperation, start: number, pending: Promise<T>): Promise<T> {
    try {
      return await pending;
    } finally {
      metrics.observeStoreOperation({ operation, backend, durationSeconds: (clock.now() - start) / 1000 });
    }
  }

  return {
    kind: backend,
    get: (namespace, key) => timed('get', clock.now(), store.get(namespace, key)),
    set: (namespace, key, value, options) => timed('set', clock.now(), store.set(namespace, key, value, options)),
    setMany: (writes) => timed('setMany', clock.now(), store.setMany(writes)),
    setIfAbsent: (namespace, key, value, options) => timed('setIfAbsent', clock.now(), store.setIfAbsent(namespace, key, value, options)),
    delete: (namespace, key) => timed('delete', clock.now(), store.delete(namespace, key)),
    consume: (namespace, key) => timed('consume', clock.now(), store.consume(namespace, key)),
    findByIndex: (namespace, index, value, range) => timed('findByIndex', clock.now(), store.findByIndex(namespace, index, value, range)),
    addIndexes: (namespace, key, indexes) => timed('addIndexes', clock.now(), store.addIndexes(namespace, key, indexes)),
    deleteByIndex: (namespace, index, value) => timed('deleteByIndex', clock.now(), store.deleteByIndex(namespace, index, value)),
    list: (namespace, options) => timed('list', clock.now(), store.list(namespace, options)),
    increment: (namespace, key, ttlSeconds, by) => timed('increment', clock.now(), store.increment(namespace, key, ttlSeconds, by)),
    async acquireLock(name, ttlMs) {
      const release = await timed('acquireLock', clock.now(), store.acquireLock(name, ttlMs));
      return release === undefined ? undefined : () => timed('releaseLock', clock.now(), release());
    },
    publish: (channel, message) => timed('publish', clock.now(), store.publish(channel, message)),
    // Only the subscription itself is timed; message delivery is not a store operation anyone waits on.
    subscribe: (channel, onMessage) => timed('subscribe', clock.now(), store.subscribe(channel, onMessage)),
    purgeExpired: () => timed('purgeExpired', clock.now(), store.purgeExpired()),
    ping: () => timed('ping', clock.now(), store.ping()),
    ...(store.configurationRisks === undefined ? {} : { configurationRisks: () => store.configurationRisks!() }),
    close: () => timed('close', clock.now(), store.close()),
  };
}
