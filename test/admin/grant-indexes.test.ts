import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GRANT_NAMESPACE, type AdminDeps } from '../../src/admin/admin-deps.ts';
import { listGrants } from '../../src/admin/grants.ts';
import { revokeClient } from '../../src/admin/clients.ts';
import { loadConfig } from '../../src/config/load.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { indexGrantsWrittenBefore } from '../../src/store/oidc-index-backfill.ts';
import { userHasGrant } from '../../src/grants/user-grants.ts';
import { loadUpstreamTokens, saveUpstreamTokens } from '../../src/upstream/token-vault.ts';
import { testKeyring } from '../support/keyring.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { ALICE, BOB, CIMD_CLIENT, DCR_CLIENT, GRANTS, seedStore } from './seed.ts';

/**
 * A user's grants and a client's are found by index (`accountId`, `clientId` on `oidc:Grant`), not by reading every
 * grant: the connected-apps page, the last-grant check and a client's revocation each read every user's grants before,
 * which a directory of thousands of users turns into thousands of reads per page. Grants written before the indexes
 * existed get them at start (oidc-index-backfill.ts), or an upgrade would hide them from those pages and from the
 * client's revocation.
 */

/** Counts `list` calls per namespace: a listing of every grant is what an indexed lookup must not do. */
function countingLists(store: Store): { store: Store; lists: Map<string, number> } {
  const lists = new Map<string, number>();
  const counted: Store = Object.create(store) as Store;
  counted.list = (namespace, options) => {
    lists.set(namespace, (lists.get(namespace) ?? 0) + 1);
    return store.list(namespace, options);
  };
  return { store: counted, lists };
}

/** A grant as a version without the indexes stored it: the record alone. */
async function writeUnindexedGrant(store: Store, grantId: string, accountId: string, clientId: string): Promise<void> {
  const now = Math.floor(Date.now() / 1000);
  const value = { kind: 'Grant', jti: grantId, accountId, clientId, iat: now - 60, exp: now + 3600, openid: { scope: 'openid' }, rejected: [] };
  await store.set(GRANT_NAMESPACE, grantId, value, { ttlSeconds: 3600 });
}

function describeBackend(name: string, open: () => Promise<{ store: Store; close: () => Promise<void> }>): void {
  describe(`grant indexes on ${name}`, () => {
    let store: Store;
    let close: () => Promise<void>;
    let deps: AdminDeps;
    before(async () => {
      ({ store, close } = await open());
      await seedStore(store, systemClock);
      deps = { store, clock: systemClock, config: loadConfig({ env: {}, cwd: tmpdir() }).config };
    });
    after(async () => {
      await close();
    });

    it("lists a user's and a client's grants without reading every grant", async () => {
      const { store: counted, lists } = countingLists(store);
      const mine = await listGrants({ ...deps, store: counted }, { user: ALICE.subject });
      assert.deepEqual(mine.map((grant) => grant.grantId).sort(), [GRANTS.aliceCimd, GRANTS.aliceDcr]);
      const client = await listGrants({ ...deps, store: counted }, { client: DCR_CLIENT });
      assert.deepEqual(client.map((grant) => grant.grantId).sort(), [GRANTS.aliceDcr, GRANTS.bobDcr]);
      const both = await listGrants({ ...deps, store: counted }, { user: BOB.subject, client: DCR_CLIENT });
      assert.deepEqual(both.map((grant) => grant.grantId), [GRANTS.bobDcr]);
      assert.equal(lists.get(GRANT_NAMESPACE), undefined, 'no listing of the grants');
    });

    it('indexes grants written without the indexes, so the pages and a client revocation find them', async () => {
      await writeUnindexedGrant(store, 'old-grant-1', 'tenant-1/carol', 'old-client');
      await writeUnindexedGrant(store, 'old-grant-2', ALICE.subject, 'old-client');
      await store.set(GRANT_NAMESPACE, 'not-an-object', 'garbage', { ttlSeconds: 3600 });
      assert.deepEqual(await listGrants(deps, { client: 'old-client' }), [], 'before the backfill the index does not know them');

      assert.equal(await indexGrantsWrittenBefore(store), 6, 'every grant was read; the invalid record is not one');
      assert.deepEqual((await listGrants(deps, { user: 'tenant-1/carol' })).map((grant) => grant.grantId), ['old-grant-1']);
      assert.deepEqual((await listGrants(deps, { user: ALICE.subject })).map((grant) => grant.grantId).sort(), [GRANTS.aliceCimd, GRANTS.aliceDcr, 'old-grant-2']);
      const stored = await store.get<{ rejected: unknown }>(GRANT_NAMESPACE, 'old-grant-2');
      assert.deepEqual(stored?.rejected, [], 'the grant itself is unchanged');
      assert.equal(await store.get(GRANT_NAMESPACE, 'not-an-object'), 'garbage', 'a record with nothing to index is left alone');
      await store.delete(GRANT_NAMESPACE, 'not-an-object');

      assert.equal(await indexGrantsWrittenBefore(store), 6, 'a second run finds nothing more to do, and fails on nothing');
      const revocation = await revokeClient({ ...deps, config: { ...deps.config, authorization: { ...deps.config.authorization, clients: [] } } }, CIMD_CLIENT);
      assert.deepEqual(revocation.revokedGrants, [GRANTS.aliceCimd]);
    });

    it('does not take a grant missing from the index for no grant, where that would delete or leave standing', async () => {
      // As a replica of the previous version writes it during a rolling upgrade, after this one's backfill.
      await writeUnindexedGrant(store, 'written-by-old-replica', 'tenant-1/erin', 'https://erin.example/client.json');
      assert.deepEqual(await listGrants(deps, { user: 'tenant-1/erin' }), [], 'the index does not know it yet');
      assert.equal(await userHasGrant(store, 'tenant-1/erin'), true, 'so the broker keeps her tokens');
      assert.equal(await userHasGrant(store, 'tenant-1/nobody'), false);
      const vault = { store, keyring: testKeyring(Date.now()), clock: systemClock };
      await saveUpstreamTokens(vault, 'tenant-1/erin', { accessToken: 'at', refreshToken: 'rt', expiresAt: Date.now() + 3_600_000 });
      const config = { ...deps.config, authorization: { ...deps.config.authorization, clients: [] } };
      const revocation = await revokeClient({ ...deps, config }, 'https://erin.example/client.json');
      assert.deepEqual(revocation.revokedGrants, ['written-by-old-replica'], 'revoking the client ends it');
      assert.equal(await userHasGrant(store, 'tenant-1/erin'), false);
      assert.equal(await loadUpstreamTokens(vault, 'tenant-1/erin'), undefined, 'and her last grant gone, her upstream tokens go');
    });
  });
}

describeBackend('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-grant-indexes-'));
  const store = await createSqliteStore({ path: join(dir, 'store.db'), clock: systemClock, purgeIntervalMs: 0 });
  return {
    store,
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('on Redis', () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    await server?.stop();
  });
  describeBackend('Redis', async () => {
    const store = await createRedisStore({ url: server.url, keyPrefix: 'grant-indexes:', clock: systemClock, purgeIntervalMs: 0 });
    return { store, close: () => store.close() };
  });
});
