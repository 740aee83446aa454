import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose';
import { loadKeyring, type ReloadingKeyring } from '../../src/keys/load-keyring.ts';
import { rotateKeys } from '../../src/keys/rotation.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { capturingLogger, reloadSignal, testConfig } from './helpers.ts';

/** Replicas as they run in production: separate connections to one Redis, keys in the store. */
describe('keyring replicas on a real Redis', () => {
  const clock = new ManualClock();
  const config = testConfig();
  let redis: RedisServer;
  const stores: Store[] = [];
  const keyrings: ReloadingKeyring[] = [];
  const signals = [reloadSignal(), reloadSignal()];

  const openReplicaStore = async (): Promise<Store> => {
    const store = await createRedisStore({ url: redis.url, keyPrefix: 'gatehouse-keys-test:', clock, purgeIntervalMs: 0 });
    stores.push(store);
    return store;
  };

  before(async () => {
    redis = await startRedisServer();
  });
  after(async () => {
    for (const keyring of keyrings) await keyring.close();
    for (const store of stores) await store.close();
    await redis.stop();
  });

  it('two replicas starting together agree on one key set', async () => {
    const [storeA, storeB] = await Promise.all([openReplicaStore(), openReplicaStore()]);
    const { logger } = capturingLogger();
    const loaded = await Promise.all(
      [storeA, storeB].map((store, index) =>
        loadKeyring({ store: store as Store, keysConfig: config.keys, clock, logger, reloadIntervalMs: 0, onReload: signals[index]?.onReload }),
      ),
    );
    keyrings.push(...loaded);
    const [a, b] = loaded as [ReloadingKeyring, ReloadingKeyring];
    assert.equal(a.currentSigningKey().kid, b.currentSigningKey().kid);
    assert.equal(b.unseal(a.seal('sealed on replica A', 'grant:1'), 'grant:1'), 'sealed on replica A');
  });

  it('a rotation from another process reaches every replica through keys-changed', async () => {
    const [a, b] = keyrings as [ReloadingKeyring, ReloadingKeyring];
    const before = a.currentSigningKey().kid;
    const key = a.currentSigningKey();
    const oldToken = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey);

    const reloads = signals.map((signal) => signal.next());
    const cli = await openReplicaStore();
    const rotated = await rotateKeys({ store: cli, config, clock });
    assert.deepEqual(await Promise.all(reloads), [undefined, undefined]);

    for (const keyring of [a, b]) {
      assert.equal(keyring.currentSigningKey().kid, rotated.signingKid);
      assert.notEqual(keyring.currentSigningKey().kid, before);
      assert.equal((await jwtVerify(oldToken, createLocalJWKSet(keyring.publicJwks()))).payload.sub, 'alice');
    }
  });
});
