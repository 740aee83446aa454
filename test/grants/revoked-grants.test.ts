import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRevokedGrantsCache, revokeGrant, type RevokedGrantsCache } from '../../src/grants/revoked-grants.ts';
import { revokedGrantRecord } from '../../src/records/grants.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { writeRecord } from '../../src/store/record-access.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';

/**
 * What a replica learns of revocations beyond "is this grant revoked?": each grant newly revoked is announced once
 * (what holds a grant longer than a request, an open stream, ends on it), whether the news came by pub/sub or by the
 * re-sync that covers a lost message.
 */
describe('revoked grants: announcements', () => {
  const clock = new ManualClock(Date.UTC(2026, 11, 6));
  let store: Store;
  let cache: RevokedGrantsCache;
  const heard: string[] = [];

  before(async () => {
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    await revokeGrant(store, 'revoked-before-start', { ttlSeconds: 600, clock });
    cache = createRevokedGrantsCache({ store, clock, resyncIntervalMs: 3_600_000 });
    cache.onRevoked((grantId) => heard.push(grantId));
    await cache.start();
  });
  after(async () => {
    await cache.stop();
    await store.close();
  });

  it('announces each revocation once, from pub/sub or from a re-sync that found a message lost', async () => {
    assert.deepEqual(heard, ['revoked-before-start']);
    await revokeGrant(store, 'g1', { ttlSeconds: 600, clock });
    while (!heard.includes('g1')) await new Promise((resolve) => setTimeout(resolve, 5));
    // Written without its message (pub/sub is at most once): the next re-sync learns it.
    await writeRecord(store, revokedGrantRecord, 'g2', { grantId: 'g2', revokedAt: clock.now() }, { ttlSeconds: 600 });
    await cache.resync();
    await cache.resync();
    await revokeGrant(store, 'g1', { ttlSeconds: 600, clock });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(heard, ['revoked-before-start', 'g1', 'g2']);
    assert.equal(cache.isRevoked('g2'), true);
  });

  it('stops announcing to a listener that unsubscribed, and a throwing listener does not stop the others', async () => {
    const errors: unknown[] = [];
    const second = createRevokedGrantsCache({ store, clock, resyncIntervalMs: 3_600_000, onError: (error) => errors.push(error) });
    const seen: string[] = [];
    second.onRevoked(() => {
      throw new Error('listener failed');
    });
    const stop = second.onRevoked((grantId) => seen.push(grantId));
    await second.start();
    assert.ok(seen.includes('g1') && seen.includes('g2'));
    assert.ok(errors.length > 0);
    stop();
    await revokeGrant(store, 'g3', { ttlSeconds: 600, clock });
    await second.resync();
    assert.equal(seen.includes('g3'), false);
    await second.stop();
  });

  it('counts as current while re-syncs succeed, not once the last one is older than the bound, and again after one succeeds', async () => {
    let failing = false;
    const flaky: Store = new Proxy(store, {
      get(target, property, receiver) {
        if (property === 'list' && failing) return () => Promise.reject(new Error('store unreachable'));
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const bounded = createRevokedGrantsCache({ store: flaky, clock, resyncIntervalMs: 3_600_000, maxStalenessMs: 120_000 });
    let staleTold = 0;
    bounded.onStale(() => void (staleTold += 1));
    await bounded.start();
    assert.equal(bounded.isCurrent(), true);
    failing = true;
    clock.advance(60_000);
    await bounded.resync().catch(() => undefined);
    assert.equal(bounded.isCurrent(), true, 'a minute without a re-sync is within the bound');
    assert.equal(staleTold, 0);
    clock.advance(61_000);
    await bounded.resync().catch(() => undefined);
    assert.equal(bounded.isCurrent(), false);
    await bounded.resync().catch(() => undefined);
    assert.equal(staleTold, 1, 'told once that the list went stale (open streams are cut then)');
    failing = false;
    await bounded.resync();
    assert.equal(bounded.isCurrent(), true);
    failing = true;
    clock.advance(121_000);
    await bounded.resync().catch(() => undefined);
    assert.equal(staleTold, 2, 'and again after it was current once more');
    failing = false;
    await bounded.stop();
    const unbounded = createRevokedGrantsCache({ store: flaky, clock, resyncIntervalMs: 3_600_000 });
    await unbounded.start();
    clock.advance(3_600_000);
    assert.equal(unbounded.isCurrent(), true, 'without a bound the list is always current');
    await unbounded.stop();
  });

  it('says the list went stale while a re-sync hangs (no error to catch), and starts no second one meanwhile', async () => {
    const clock = new ManualClock();
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    let hang = false;
    let listings = 0;
    const hanging = new Proxy(store, {
      get(target, property, receiver) {
        if (property === 'list') {
          return (...args: Parameters<Store['list']>) => {
            listings += 1;
            return hang ? new Promise(() => undefined) : target.list(...args);
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const cache = createRevokedGrantsCache({ store: hanging, clock, resyncIntervalMs: 10, maxStalenessMs: 60_000 });
    let stale = 0;
    cache.onStale(() => void (stale += 1));
    try {
      await cache.start();
      hang = true;
      await new Promise((resolve) => setTimeout(resolve, 50));
      const during = listings;
      clock.advance(61_000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(stale, 1, 'told once, though the hanging re-sync never failed');
      assert.equal(listings, during, 'no listing piled up behind the hanging one');
    } finally {
      await cache.stop();
      await store.close();
    }
  });
});
