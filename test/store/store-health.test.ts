import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { systemClock } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { guardStoreHealth } from '../../src/store/store-health.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';

/**
 * The store-health breaker: once the store failed, calls fail at once (no command timeout per request) until a
 * background probe sees the store answer again.
 */
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await sleep(20);
}

describe('store health breaker', () => {
  it('fails fast without calling the store while it is down, and recovers once a probe answers', async () => {
    const inner = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    let reachable = true;
    let calls = 0;
    const flaky: Store = new Proxy(inner, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function' || property === 'close') return value;
        return (...args: unknown[]) => {
          calls++;
          if (!reachable) return Promise.reject(new StoreUnavailableError('backend at 10.0.0.1:6379 is down'));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const store = guardStoreHealth(flaky, { probeIntervalMs: 20 });
    try {
      await store.set('ns', 'k', 1);
      reachable = false;
      await assert.rejects(store.get('ns', 'k'), StoreUnavailableError);
      const before = calls;
      for (let i = 0; i < 20; i++) {
        await assert.rejects(store.get('ns', 'k'), (error: unknown) => error instanceof StoreUnavailableError && error.retryAfterSeconds >= 1);
      }
      assert.ok(calls - before < 20, 'calls while down did not reach the store (only probes did)');
      await assert.rejects(store.setMany([{ namespace: 'ns', key: 'k2', value: 2 }]), StoreUnavailableError);
      await assert.rejects(store.get('bad name!', 'k'), StoreUnavailableError, 'while down nothing is tried');

      reachable = true;
      await until(() => store.get('ns', 'k').then(() => true, () => false));
      assert.equal(await store.get('ns', 'k'), 1);
      // Errors that are the caller's do not mark the store down.
      await assert.rejects(store.get('bad name!', 'k'), TypeError);
      assert.equal(await store.get('ns', 'k'), 1);
    } finally {
      await store.close();
    }
  });

  it('is not marked down again by a call that fails late, sent into the outage that has ended', async () => {
    // A command sent to a frozen Redis can time out after the store came back (ioredis keeps a dropped connection's
    // commands unanswered, their timers running): it marked the store down a second after the probe found it back.
    const inner = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    let reachable = true;
    let failLate: (error: Error) => void = () => {};
    const flaky: Store = new Proxy(inner, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function' || property === 'close') return value;
        return (...args: unknown[]) => {
          if (property === 'get' && args[1] === 'late') return new Promise((_, reject) => (failLate = reject));
          if (!reachable) return Promise.reject(new StoreUnavailableError('backend at 10.0.0.1:6379 is down'));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const store = guardStoreHealth(flaky, { probeIntervalMs: 20 });
    try {
      await store.set('ns', 'k', 1);
      const late = store.get('ns', 'late').then(() => undefined, (error: unknown) => error);
      reachable = false;
      await assert.rejects(store.get('ns', 'k'), StoreUnavailableError);
      reachable = true;
      await until(() => store.get('ns', 'k').then(() => true, () => false));
      failLate(new StoreUnavailableError('Command timed out'));
      assert.ok((await late) instanceof StoreUnavailableError, 'the late call itself still fails');
      assert.equal(await store.get('ns', 'k'), 1, 'the store is not marked down by it');
    } finally {
      await store.close();
    }
  });

  describe('with a frozen Redis (SIGSTOP)', () => {
    let server: RedisServer;
    let admin: Redis;
    let store: Store;

    before(async () => {
      server = await startRedisServer();
      admin = new Redis(server.url);
      store = await createRedisStore({ url: server.url, keyPrefix: 'frozen:', clock: systemClock, purgeIntervalMs: 0 });
    });
    after(async () => {
      server.thaw();
      admin.disconnect();
      await store.close();
      await server.stop();
    });

    it('waits out one command timeout, then fails fast: later calls never reach Redis until it answers again', async () => {
      await store.set('ns', 'k', 'v');
      await admin.config('RESETSTAT');
      server.freeze();
      // The first call can only learn that Redis hangs by timing out.
      await assert.rejects(store.get('ns', 'k'), StoreUnavailableError);
      const later = await Promise.allSettled(Array.from({ length: 10 }, () => store.get('ns', 'k')));
      assert.ok(later.every((result) => result.status === 'rejected' && result.reason instanceof StoreUnavailableError));
      server.thaw();

      // The first GET waited in Redis's socket while it was frozen: once thawed, Redis may answer the admin's INFO
      // before it reads that GET (CI saw 0). Count once it has, then again after a pause for any later one to land.
      const getsCounted = async () => Number(/cmdstat_get:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
      for (let waited = 0; waited < 3_000 && (await getsCounted()) < 1; waited += 20) await sleep(20);
      await sleep(200);
      const gets = await getsCounted();
      assert.equal(gets, 1, 'only the first GET was sent to the frozen Redis');
      await until(() => store.get('ns', 'k').then((value) => value === 'v', () => false));
    });
  });
});
