import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createRevokedGrantsCache, revokeGrant, REVOKED_GRANT_NAMESPACE, type RevokedGrantsCache } from '../../src/grants/revoked-grants.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';

/** The cache answers from memory: fed by pub/sub, corrected by re-sync, and it forgets what expired. */
const clock = new ManualClock(Date.UTC(2026, 0, 1));
let store: Store;
let cache: RevokedGrantsCache;

before(async () => {
  store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
  await revokeGrant(store, 'revoked-before-start', { ttlSeconds: 600, clock });
  cache = createRevokedGrantsCache({ store, clock, resyncIntervalMs: 60_000 });
  await cache.start();
});
after(async () => {
  await cache.stop();
  await store.close();
});

describe('revoked grants cache', () => {
  it('loads revocations that happened before it started', () => {
    assert.equal(cache.isRevoked('revoked-before-start'), true);
    assert.equal(cache.isRevoked('never-revoked'), false);
  });

  it('learns a revocation from the published message, without a re-sync', async () => {
    await revokeGrant(store, 'grant-1', { ttlSeconds: 600, clock });
    // Subscribers are called asynchronously (as with Redis); one turn of the event loop is enough in-process.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(cache.isRevoked('grant-1'), true);
  });

  it('picks up a record whose message was lost at the next re-sync', async () => {
    await store.set(REVOKED_GRANT_NAMESPACE, 'grant-silent', { grantId: 'grant-silent', revokedAt: clock.now() }, { ttlSeconds: 600 });
    assert.equal(cache.isRevoked('grant-silent'), false);
    await cache.resync();
    assert.equal(cache.isRevoked('grant-silent'), true);
  });

  it('drops revocations whose record expired (no token of the grant can still be valid)', async () => {
    clock.advance(601_000);
    await cache.resync();
    assert.equal(cache.isRevoked('grant-1'), false);
  });
});
