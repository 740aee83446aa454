import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Store, StoreWrite } from '../../src/store/store.ts';

/** One store under test, plus a way to move its time forward past a TTL. */
export interface StoreUnderTest {
  store: Store;
  /**
   * Makes `ms` milliseconds pass for this store: a manual clock for SQLite, shorter TTLs on the server's keys for
   * Redis (which keeps the TTLs itself). Not a real wait, so the suite's short TTLs can be a minute: a record is
   * asserted live before its TTL is made to pass, and with a 1 s TTL and real waits a loaded machine's pause of a
   * second between the write and the read failed the Redis suite.
   */
  advance(ms: number): Promise<void>;
  /** Releases what the factory made (closes the store, removes files); runs after every test. */
  dispose(): Promise<void>;
}

/**
 * The behaviour every Store backend must have. sqlite.test.ts and redis.test.ts call this unchanged; a backend that
 * needs a special case here is a backend with a bug.
 */
export function runStoreContract(name: string, factory: () => Promise<StoreUnderTest>): void {
  describe(`Store contract: ${name}`, () => {
    let subject: StoreUnderTest;
    let store: Store;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
    });
    afterEach(async () => {
      await subject.dispose();
    });

    it('round-trips JSON values through set, get and delete', async () => {
      const value = { name: 'Ada', scopes: ['mcp:read'], nested: { n: 1, ok: true, none: null } };
      await store.set('client', 'c1', value);
      assert.deepEqual(await store.get('client', 'c1'), value);
      await store.set('client', 'c2', 'plain string');
      assert.equal(await store.get('client', 'c2'), 'plain string');
      assert.equal(await store.delete('client', 'c1'), true);
      assert.equal(await store.get('client', 'c1'), undefined);
      assert.equal(await store.delete('client', 'c1'), false);
      assert.equal(await store.get('client', 'missing'), undefined);
    });

    it('keeps namespaces apart', async () => {
      await store.set('grant', 'k', 1);
      await store.set('grant:other', 'k', 2);
      assert.equal(await store.get('grant', 'k'), 1);
      assert.equal(await store.get('grant:other', 'k'), 2);
    });

    it('overwrites a record on set', async () => {
      await store.set('client', 'c1', { v: 1 });
      await store.set('client', 'c1', { v: 2 });
      assert.deepEqual(await store.get('client', 'c1'), { v: 2 });
    });

    it('hides a record once its TTL passes, and keeps records without one', async () => {
      await store.set('state', 'short', { s: 1 }, { ttlSeconds: 60 });
      await store.set('state', 'forever', { s: 2 });
      assert.deepEqual(await store.get('state', 'short'), { s: 1 });
      await subject.advance(61_000);
      assert.equal(await store.get('state', 'short'), undefined);
      assert.equal(await store.consume('state', 'short'), undefined);
      assert.equal(await store.delete('state', 'short'), false);
      assert.deepEqual(await store.get('state', 'forever'), { s: 2 });
    });

    it('re-setting without a TTL removes the old TTL', async () => {
      await store.set('state', 'k', 1, { ttlSeconds: 60 });
      await store.set('state', 'k', 2);
      await subject.advance(61_000);
      assert.equal(await store.get('state', 'k'), 2);
    });

    it('setMany writes a batch as set would: values, TTLs, indexes, replacing earlier records', async () => {
      await store.set('audit', 'a1', { old: true }, { indexes: { user: 'old' } });
      await store.setMany([
        { namespace: 'audit', key: 'a1', value: { n: 1 }, options: { indexes: { user: 'u1', tool: 'echo' } } },
        { namespace: 'audit', key: 'a2', value: { n: 2 }, options: { ttlSeconds: 60, indexes: { user: 'u1' } } },
        { namespace: 'other', key: 'a3', value: 'plain' },
      ]);
      await store.setMany([]);
      assert.deepEqual(await store.get('audit', 'a1'), { n: 1 });
      assert.equal(await store.get('other', 'a3'), 'plain');
      assert.deepEqual((await store.findByIndex('audit', 'user', 'u1')).map((e) => e.key), ['a1', 'a2']);
      assert.deepEqual(await store.findByIndex('audit', 'user', 'old'), []);
      assert.deepEqual((await store.list('audit')).map((e) => e.key), ['a1', 'a2']);
      await subject.advance(61_000);
      assert.equal(await store.get('audit', 'a2'), undefined);
      assert.deepEqual((await store.findByIndex('audit', 'user', 'u1')).map((e) => e.key), ['a1']);
    });

    it('setMany of a long batch with existing and repeated keys among new ones ends as the writes one by one would', async () => {
      await store.set('audit', 'k040', { old: true }, { indexes: { user: 'old' } });
      const writes: StoreWrite[] = Array.from({ length: 100 }, (_, n) => ({
        namespace: 'audit',
        key: `k${String(n).padStart(3, '0')}`,
        value: { n },
        options: { ...(n % 2 === 0 ? { ttlSeconds: 60 } : {}), indexes: { user: `u${n % 5}`, ...(n % 3 === 0 ? { tool: 'echo' } : {}) } as Record<string, string> },
      }));
      // The last write of a key repeated in the batch wins, its index rows only.
      writes.push({ namespace: 'audit', key: 'k007', value: { n: 700 }, options: { indexes: { user: 'again' } } });
      await store.setMany(writes);
      assert.deepEqual(await store.get('audit', 'k040'), { n: 40 });
      assert.deepEqual(await store.get('audit', 'k007'), { n: 700 });
      assert.deepEqual(await store.findByIndex('audit', 'user', 'old'), []);
      assert.deepEqual((await store.findByIndex('audit', 'user', 'again')).map((e) => e.key), ['k007']);
      const u2 = (await store.findByIndex('audit', 'user', 'u2')).map((e) => e.key);
      assert.deepEqual(u2, ['k002', 'k012', 'k017', 'k022', 'k027', 'k032', 'k037', 'k042', 'k047', 'k052', 'k057', 'k062', 'k067', 'k072', 'k077', 'k082', 'k087', 'k092', 'k097']);
      assert.equal((await store.findByIndex('audit', 'tool', 'echo')).length, 34);
      assert.equal((await store.list('audit')).length, 100);
      await subject.advance(61_000);
      assert.equal((await store.list('audit')).length, 50);
      assert.equal((await store.findByIndex('audit', 'tool', 'echo')).length, 17);
    });

    it('setMany of a long batch refuses a bad index name before writing any of it', async () => {
      const writes = Array.from({ length: 40 }, (_, n) => ({ namespace: 'audit', key: `b${n}`, value: n, options: { indexes: { user: 'u' } as Record<string, string> } }));
      writes[35]!.options.indexes = { 'bad index!': 'u' };
      await assert.rejects(store.setMany(writes));
      assert.deepEqual(await store.list('audit'), []);
    });

    it('findByIndex reads a key range of an index, in either order, at most `limit`', async () => {
      await store.setMany(
        ['k1', 'k2', 'k3', 'k4', 'k5'].map((key) => ({ namespace: 'ranged', key, value: key, options: { indexes: { user: 'u1' } } })),
      );
      await store.set('ranged', 'k0', 'k0', { indexes: { user: 'u2' } });
      const keys = async (range: Parameters<Store['findByIndex']>[3]) => (await store.findByIndex('ranged', 'user', 'u1', range)).map((e) => e.key);
      assert.deepEqual(await keys({}), ['k1', 'k2', 'k3', 'k4', 'k5']);
      assert.deepEqual(await keys({ after: 'k1', before: 'k5' }), ['k2', 'k3', 'k4'], 'both bounds exclusive');
      assert.deepEqual(await keys({ descending: true, limit: 2 }), ['k5', 'k4']);
      assert.deepEqual(await keys({ descending: true, before: 'k4', limit: 2 }), ['k3', 'k2']);
      assert.deepEqual(await keys({ after: 'k3', limit: 1 }), ['k4']);
      assert.deepEqual(await keys({ after: 'k5' }), []);
    });

    it('setMany rejects a bad name before writing anything', async () => {
      await assert.rejects(
        store.setMany([
          { namespace: 'audit', key: 'ok', value: 1 },
          { namespace: 'bad name!', key: 'k', value: 2 },
        ]),
      );
      assert.equal(await store.get('audit', 'ok'), undefined);
    });

    it('setIfAbsent creates only when no live record exists', async () => {
      assert.equal(await store.setIfAbsent('jti', 'j1', { first: true }, { ttlSeconds: 60 }), true);
      assert.equal(await store.setIfAbsent('jti', 'j1', { first: false }), false);
      assert.deepEqual(await store.get('jti', 'j1'), { first: true });
      await subject.advance(61_000);
      assert.equal(await store.setIfAbsent('jti', 'j1', { second: true }, { indexes: { user: 'u1' } }), true);
      assert.deepEqual(await store.get('jti', 'j1'), { second: true });
      assert.deepEqual((await store.findByIndex('jti', 'user', 'u1')).map((e) => e.key), ['j1']);
    });

    it('setIfAbsent under concurrency lets exactly one caller create the record', async () => {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.setIfAbsent('jti', 'race', { caller: i })),
      );
      assert.equal(results.filter(Boolean).length, 1);
      const winner = results.indexOf(true);
      assert.deepEqual(await store.get('jti', 'race'), { caller: winner });
    });

    it('addIndexes adds index values to a live record, keeping its value, TTL and the indexes it has', async () => {
      const value = { accountId: 'u1', empty: [], nested: { list: [] } };
      await store.set('grant', 'g1', value, { ttlSeconds: 60, indexes: { clientId: 'c-old' } });
      assert.equal(await store.addIndexes('grant', 'g1', { accountId: 'u1', clientId: 'c-new' }), true);
      assert.deepEqual(await store.get('grant', 'g1'), value, 'the value comes back as it was written');
      assert.deepEqual((await store.findByIndex('grant', 'accountId', 'u1')).map((e) => e.key), ['g1']);
      assert.deepEqual((await store.findByIndex('grant', 'clientId', 'c-old')).map((e) => e.key), ['g1']);
      assert.deepEqual(await store.findByIndex('grant', 'clientId', 'c-new'), [], 'an index the record had keeps its value');
      assert.equal(await store.addIndexes('grant', 'g1', { accountId: 'u1' }), true, 'adding again is a no-op');
      assert.equal(await store.addIndexes('grant', 'missing', { accountId: 'u1' }), false);
      assert.deepEqual((await store.findByIndex('grant', 'accountId', 'u1')).map((e) => e.key), ['g1']);

      // A later set replaces the added index like any other.
      await store.set('grant', 'g2', value, { indexes: { accountId: 'u1' } });
      assert.equal(await store.addIndexes('grant', 'g2', { clientId: 'c2' }), true);
      await store.set('grant', 'g2', value, { indexes: { accountId: 'u2' } });
      assert.deepEqual((await store.findByIndex('grant', 'clientId', 'c2')).map((e) => e.key), []);

      await subject.advance(61_000);
      assert.equal(await store.get('grant', 'g1'), undefined, 'the TTL the record had was kept');
      assert.deepEqual((await store.findByIndex('grant', 'accountId', 'u1')).map((e) => e.key), [], 'an expired record is found by no index');
      assert.equal(await store.addIndexes('grant', 'g1', { accountId: 'u3' }), false, 'an expired record is not there');
      await assert.rejects(store.addIndexes('grant', 'g3', { 'bad name!': 'x' }));
    });

    it('finds and deletes records by index, and a re-set replaces the indexes', async () => {
      await store.set('token', 't1', { n: 1 }, { indexes: { grantId: 'g1', userId: 'u1' } });
      await store.set('token', 't2', { n: 2 }, { indexes: { grantId: 'g1', userId: 'u2' } });
      await store.set('token', 't3', { n: 3 }, { indexes: { grantId: 'g2', userId: 'u1' } });
      await store.set('other', 't1', { n: 9 }, { indexes: { grantId: 'g1' } });

      const byGrant = await store.findByIndex<{ n: number }>('token', 'grantId', 'g1');
      assert.deepEqual(byGrant.map((e) => [e.key, e.value.n]).sort(), [['t1', 1], ['t2', 2]]);
      assert.deepEqual((await store.findByIndex('token', 'userId', 'u1')).map((e) => e.key).sort(), ['t1', 't3']);
      assert.deepEqual(await store.findByIndex('token', 'grantId', 'nope'), []);

      await store.set('token', 't1', { n: 10 }, { indexes: { grantId: 'g2' } });
      assert.deepEqual((await store.findByIndex('token', 'grantId', 'g1')).map((e) => e.key), ['t2']);
      assert.deepEqual((await store.findByIndex('token', 'userId', 'u1')).map((e) => e.key), ['t3']);

      assert.equal(await store.deleteByIndex('token', 'grantId', 'g2'), 2);
      assert.equal(await store.get('token', 't1'), undefined);
      assert.equal(await store.get('token', 't3'), undefined);
      assert.deepEqual(await store.get('token', 't2'), { n: 2 });
      assert.deepEqual(await store.get('other', 't1'), { n: 9 });
      assert.equal(await store.deleteByIndex('token', 'grantId', 'g2'), 0);
    });

    it('does not return expired records from an index and drops index entries of deleted records', async () => {
      await store.set('token', 'short', 1, { ttlSeconds: 60, indexes: { grantId: 'g' } });
      await store.set('token', 'long', 2, { ttlSeconds: 3600, indexes: { grantId: 'g' } });
      await store.set('token', 'gone', 3, { indexes: { grantId: 'g' } });
      await store.delete('token', 'gone');
      await subject.advance(61_000);
      const found = await store.findByIndex('token', 'grantId', 'g');
      assert.deepEqual(found.map((e) => e.key), ['long']);
      assert.equal(typeof found[0]?.expiresAt, 'number');
      assert.equal(await store.deleteByIndex('token', 'grantId', 'g'), 1);
    });

    it('lists a namespace in ascending key order with pagination', async () => {
      const keys = ['b', 'a', 'd', 'c', 'e'];
      for (const key of keys) await store.set('client', key, { key });
      await store.set('client', 'expired', { key: 'expired' }, { ttlSeconds: 60 });
      await store.set('session', 'z', {});
      await subject.advance(61_000);

      const all = await store.list<{ key: string }>('client');
      assert.deepEqual(all.map((e) => e.key), ['a', 'b', 'c', 'd', 'e']);
      assert.deepEqual(all.map((e) => e.value.key), ['a', 'b', 'c', 'd', 'e']);

      const page1 = await store.list('client', { limit: 2 });
      assert.deepEqual(page1.map((e) => e.key), ['a', 'b']);
      const page2 = await store.list('client', { limit: 2, after: 'b' });
      assert.deepEqual(page2.map((e) => e.key), ['c', 'd']);
      const page3 = await store.list('client', { limit: 2, after: 'd' });
      assert.deepEqual(page3.map((e) => e.key), ['e']);
      assert.deepEqual(await store.list('client', { after: 'e' }), []);
      assert.deepEqual(await store.list('empty'), []);
      assert.deepEqual(await store.list('client', { limit: 0 }), []);
      await assert.rejects(store.list('client', { limit: -1 }), RangeError);
      await assert.rejects(store.list('client', { limit: 1.5 }), RangeError);

      await store.delete('client', 'c');
      assert.deepEqual((await store.list('client', { limit: 3 })).map((e) => e.key), ['a', 'b', 'd']);
    });

    it('consume returns the value once and removes the record', async () => {
      await store.set('code', 'k', { code: 1 }, { indexes: { grantId: 'g' } });
      assert.deepEqual(await store.consume('code', 'k'), { code: 1 });
      assert.equal(await store.consume('code', 'k'), undefined);
      assert.equal(await store.get('code', 'k'), undefined);
      assert.deepEqual(await store.findByIndex('code', 'grantId', 'g'), []);
    });

    it('consume with 100 parallel consumers lets exactly one win', async () => {
      await store.set('code', 'race', { secret: 'v' }, { ttlSeconds: 60 });
      const results = await Promise.all(Array.from({ length: 100 }, () => store.consume('code', 'race')));
      const winners = results.filter((r) => r !== undefined);
      assert.equal(winners.length, 1);
      assert.deepEqual(winners[0], { secret: 'v' });
    });

    it('increments a counter atomically and keeps the expiry of its first increment', async () => {
      assert.equal(await store.increment('rate', 'ip1', 60), 1);
      assert.equal(await store.increment('rate', 'ip1', 60, 4), 5);
      const parallel = await Promise.all(Array.from({ length: 20 }, () => store.increment('rate', 'ip1', 60)));
      assert.equal(Math.max(...parallel), 25);
      assert.equal(new Set(parallel).size, 20);
      assert.equal(await store.increment('rate', 'ip2', 60), 1);
      await subject.advance(61_000);
      assert.equal(await store.increment('rate', 'ip1', 60), 1);
    });

    it('a lock excludes other holders until released', async () => {
      const release = await store.acquireLock('refresh:u1', 10_000);
      assert.ok(release);
      assert.equal(await store.acquireLock('refresh:u1', 10_000), undefined);
      assert.ok(await store.acquireLock('refresh:u2', 10_000), 'locks with other names are independent');
      await release();
      const again = await store.acquireLock('refresh:u1', 10_000);
      assert.ok(again);
      await again();
    });

    it('a lock under concurrency has exactly one holder', async () => {
      const results = await Promise.all(Array.from({ length: 50 }, () => store.acquireLock('race', 10_000)));
      assert.equal(results.filter((r) => r !== undefined).length, 1);
    });

    it('an expired lock can be taken, and the old holder cannot release the new one', async () => {
      const first = await store.acquireLock('refresh:u1', 200);
      assert.ok(first);
      await subject.advance(300);
      const second = await store.acquireLock('refresh:u1', 10_000);
      assert.ok(second, 'the lock expired, so a new holder gets it');
      await first();
      assert.equal(await store.acquireLock('refresh:u1', 10_000), undefined, 'the stale release freed nothing');
      await second();
      assert.ok(await store.acquireLock('refresh:u1', 10_000));
    });

    it('delivers published messages to every subscriber of the channel until it unsubscribes', async () => {
      const a: string[] = [];
      const b: string[] = [];
      const other: string[] = [];
      const unsubscribeA = await store.subscribe('revocations', (m) => a.push(m));
      const unsubscribeB = await store.subscribe('revocations', (m) => b.push(m));
      await store.subscribe('other', (m) => other.push(m));
      const bothGotIt = waitFor(() => a.length === 1 && b.length === 1);
      await store.publish('revocations', 'grant:g1');
      await bothGotIt;
      assert.deepEqual(a, ['grant:g1']);
      assert.deepEqual(b, ['grant:g1']);

      await unsubscribeA();
      const bGotSecond = waitFor(() => b.length === 2);
      await store.publish('revocations', 'grant:g2');
      await bGotSecond;
      // A marker published after g2 arriving on B proves A had its chance to see g2 and did not.
      assert.deepEqual(a, ['grant:g1']);
      assert.deepEqual(b, ['grant:g1', 'grant:g2']);
      assert.deepEqual(other, []);
      await unsubscribeB();
    });

    it('purgeExpired removes expired records and keeps live ones', async () => {
      await store.set('state', 'a', 1, { ttlSeconds: 60, indexes: { user: 'u' } });
      await store.set('state', 'b', 2, { ttlSeconds: 60 });
      await store.set('state', 'c', 3, { ttlSeconds: 3600, indexes: { user: 'u' } });
      await store.set('state', 'd', 4);
      await subject.advance(61_000);
      assert.equal(await store.purgeExpired(), 2);
      assert.equal(await store.purgeExpired(), 0);
      assert.deepEqual((await store.list('state')).map((e) => e.key), ['c', 'd']);
      assert.deepEqual((await store.findByIndex('state', 'user', 'u')).map((e) => e.key), ['c']);
    });

    it('keeps a record whose TTL is absurdly long (from outside input) as a very long one, not an error', async () => {
      for (const ttlSeconds of [1e15, 1e16, 1e300]) {
        await store.set('long-lived', String(ttlSeconds), 'kept', { ttlSeconds });
        assert.equal(await store.get('long-lived', String(ttlSeconds)), 'kept');
        assert.equal(await store.setIfAbsent('long-lived-once', String(ttlSeconds), 'kept', { ttlSeconds }), true);
      }
      assert.equal(await store.increment('long-lived-count', 'k', 1e300), 1);
    });

    it('answers ping while it is up', async () => {
      await store.ping();
      assert.ok(store.kind === 'sqlite' || store.kind === 'redis');
    });

    it('rejects a namespace that could collide with another key', async () => {
      await assert.rejects(store.set('bad namespace', 'k', 1), TypeError);
      await assert.rejects(store.get('a#b', 'k'), TypeError);
      await assert.rejects(store.set('ok', 'k', 1, { ttlSeconds: -1 }), RangeError);
      await assert.rejects(store.set('ok', 'k', 1, { indexes: { 'a=b': 'v' } }), TypeError);
      await assert.rejects(store.set('ok', 'k', undefined), TypeError);
      await assert.rejects(store.acquireLock('lock', 0), RangeError);
      assert.equal(await store.get('ok', 'k'), undefined);
    });
  });
}

/** Resolves once `condition` holds; the test runner's timeout bounds it, no timing is asserted. */
export async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}
