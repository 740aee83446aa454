import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { instrumentStore, type StoreOperation } from '../../src/observability/instrumented-store.ts';
import { createMetrics, type GatehouseMetrics } from '../../src/observability/metrics.ts';
import { ManualClock, type Clock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';

const METRIC = 'gatehouse_store_operation_duration_seconds';

/** Every read moves one millisecond on, so each timed operation lasts exactly 1 ms. */
function steppingClock(): Clock {
  let now = 0;
  return { now: () => (now += 1) };
}

async function observed(metrics: GatehouseMetrics, operation: StoreOperation): Promise<{ count: number; sum: number }> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((entry) => entry.name === METRIC);
  const values = (metric?.values ?? []).filter((value) => value.labels.operation === operation && value.labels.backend === 'sqlite');
  const read = (suffix: string) => values.find((value) => (value as { metricName?: string }).metricName === `${METRIC}_${suffix}`)?.value ?? 0;
  return { count: read('count'), sum: read('sum') };
}

describe('instrumentStore', () => {
  let inner: Store;
  let store: Store;
  let metrics: GatehouseMetrics;

  before(async () => {
    const clock = new ManualClock();
    inner = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    metrics = createMetrics({ clock });
    store = instrumentStore(inner, metrics, steppingClock());
  });
  after(async () => {
    await inner.close().catch(() => undefined);
  });

  /** Runs `call` and checks it recorded exactly one 1 ms observation for `operation`. */
  async function recordsOne<T>(operation: StoreOperation, call: () => Promise<T>): Promise<T> {
    const before = await observed(metrics, operation);
    const result = await call();
    const now = await observed(metrics, operation);
    assert.equal(now.count, before.count + 1, `${operation} observed once`);
    assert.ok(Math.abs(now.sum - before.sum - 0.001) < 1e-9, `${operation} took the clock's 1 ms`);
    return result;
  }

  it('keeps the backend kind', () => {
    assert.equal(store.kind, 'sqlite');
  });

  it('delegates every record operation and times it', async () => {
    await recordsOne('set', () => store.set('ns', 'a', { n: 1 }, { indexes: { user: 'u1' } }));
    assert.deepEqual(await recordsOne('get', () => store.get('ns', 'a')), { n: 1 });
    assert.equal(await recordsOne('setIfAbsent', () => store.setIfAbsent('ns', 'a', { n: 2 })), false);
    assert.equal(await recordsOne('setIfAbsent', () => store.setIfAbsent('ns', 'b', { n: 3 })), true);
    const found = await recordsOne('findByIndex', () => store.findByIndex('ns', 'user', 'u1'));
    assert.deepEqual(found.map((entry) => entry.key), ['a']);
    const listed = await recordsOne('list', () => store.list('ns'));
    assert.deepEqual(listed.map((entry) => entry.key), ['a', 'b']);
    assert.deepEqual(await recordsOne('consume', () => store.consume('ns', 'b')), { n: 3 });
    assert.equal(await inner.get('ns', 'b'), undefined, 'consume reached the real store');
    assert.equal(await recordsOne('deleteByIndex', () => store.deleteByIndex('ns', 'user', 'u1')), 1);
    await store.set('ns', 'c', 1);
    assert.equal(await recordsOne('delete', () => store.delete('ns', 'c')), true);
    assert.equal(await recordsOne('increment', () => store.increment('counter', 'k', 60, 5)), 5);
    assert.equal(await recordsOne('purgeExpired', () => store.purgeExpired()), 0);
    await recordsOne('ping', () => store.ping());
  });

  it('times acquiring and releasing a lock, and a refused acquire', async () => {
    const release = await recordsOne('acquireLock', () => store.acquireLock('lock', 10_000));
    assert.ok(release, 'the first holder gets the lock');
    assert.equal(await recordsOne('acquireLock', () => store.acquireLock('lock', 10_000)), undefined, 'held by someone else');
    await recordsOne('releaseLock', () => release());
    assert.ok(await inner.acquireLock('lock', 10_000), 'the release reached the real store');
  });

  it('delegates publish and subscribe, delivering messages unchanged', async () => {
    const received: string[] = [];
    const unsubscribe = await recordsOne('subscribe', () => store.subscribe('channel', (message) => received.push(message)));
    await recordsOne('publish', () => store.publish('channel', 'hello'));
    for (let i = 0; i < 20 && received.length === 0; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(received, ['hello']);
    await unsubscribe();
  });

  it('times a failing operation and passes its error through', async () => {
    const broken: Store = { ...inner, kind: 'sqlite', get: () => Promise.reject(new Error('backend down')) };
    const wrapped = instrumentStore(broken, metrics, steppingClock());
    const before = await observed(metrics, 'get');
    await assert.rejects(wrapped.get('ns', 'a'), /backend down/);
    assert.equal((await observed(metrics, 'get')).count, before.count + 1);
  });

  it('delegates close', async () => {
    const clock = new ManualClock();
    const own = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    const wrapped = instrumentStore(own, metrics, steppingClock());
    const before = await observed(metrics, 'close');
    await wrapped.close();
    assert.equal((await observed(metrics, 'close')).count, before.count + 1);
    await assert.rejects(own.get('ns', 'a'), 'the real store is closed');
  });
});
