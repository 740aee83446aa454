import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withAuthorizationHooks } from '../../src/authorization/adapter-hooks.ts';
import { clientGrantedRecord } from '../../src/records/authorization.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createOidcAdapter } from '../../src/store/oidc-adapter.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';

/**
 * The `client-granted` record (records/authorization.ts) the adapter hooks write with the grants of a client, which
 * keeps its registration from `gatehouse clients prune`: written before the grant, living a grant's longest life and
 * a day, and rewritten at most once an hour per client (an ID-JAG token request saves a grant every time).
 */
describe('client-granted', () => {
  it('is written with a client\'s grant, then at most once an hour, living a grant\'s whole life and a day', async () => {
    const clock = new ManualClock(Date.UTC(2026, 4, 1, 12));
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    const writes: string[] = [];
    const counting = Object.create(store) as Store;
    counting.set = (namespace, key, value, options) => {
      if (namespace === clientGrantedRecord.namespace) writes.push(key);
      return store.set(namespace, key, value, options);
    };
    try {
      const factory = withAuthorizationHooks(createOidcAdapter(counting, clock), {
        store: counting,
        clock,
        accessTokenTtlSeconds: 600,
        grantLifetimeSeconds: 86_400,
        refreshReuseGraceSeconds: 0,
      });
      const grants = (factory as (model: string) => { upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> })('Grant');
      const grant = (id: string, clientId: string) => grants.upsert(id, { jti: id, kind: 'Grant', accountId: 'alice', clientId }, 3600);
      await grant('g1', 'client-a');
      await grant('g2', 'client-a');
      await grant('g3', 'client-b');
      assert.deepEqual(writes, ['client-a', 'client-b']);
      clock.advance(3_600_000);
      await grant('g4', 'client-a');
      assert.deepEqual(writes, ['client-a', 'client-b', 'client-a']);
      const [entry] = (await store.list(clientGrantedRecord.namespace)).filter((candidate) => candidate.key === 'client-a');
      assert.equal(entry?.expiresAt, clock.now() + (86_400 + 86_400) * 1000);
    } finally {
      await store.close();
    }
  });
});
