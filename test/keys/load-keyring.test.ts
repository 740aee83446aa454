import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose';
import { generateKeySet, KeySetError, serializeKeySet, type KeySetFile } from '../../src/keys/key-set.ts';
import { KEY_SET_RECORD, KEYS_NAMESPACE } from '../../src/keys/key-set-source.ts';
import { loadKeyring, type ReloadingKeyring } from '../../src/keys/load-keyring.ts';
import { SealError } from '../../src/keys/sealing.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { capturingLogger, keyMaterial, reloadSignal } from './helpers.ts';

const storeKeys = { source: 'store', signingAlgorithm: 'ES256' } as const;

async function signWith(keyring: ReloadingKeyring, subject: string): Promise<string> {
  const key = keyring.currentSigningKey();
  return new SignJWT({ sub: subject }).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey);
}

describe('keyring from the store', () => {
  const clock = new ManualClock();
  let store: Store;
  const keyrings: ReloadingKeyring[] = [];

  before(async () => {
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
  });
  after(async () => {
    for (const keyring of keyrings) await keyring.close();
    await store.close();
  });

  it('generates a key set on first start, and two keyrings starting together agree on it', async () => {
    const results: boolean[] = [];
    const setIfAbsent: Store['setIfAbsent'] = async (namespace, key, value, options) => {
      const created = await store.setIfAbsent(namespace, key, value, options);
      results.push(created);
      return created;
    };
    // The real store with setIfAbsent observed; other methods stay bound to the store (it uses private fields).
    const counting = new Proxy(store, {
      get: (target, property) => {
        if (property === 'setIfAbsent') return setIfAbsent;
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const { logger } = capturingLogger();
    const [first, second] = await Promise.all([
      loadKeyring({ store: counting, keysConfig: storeKeys, clock, logger, reloadIntervalMs: 0 }),
      loadKeyring({ store: counting, keysConfig: storeKeys, clock, logger, reloadIntervalMs: 0 }),
    ]);
    keyrings.push(first, second);
    // Both raced to create the set: one write won and the other keyring adopted it.
    assert.deepEqual(results.toSorted(), [false, true]);
    assert.equal(first.currentSigningKey().kid, second.currentSigningKey().kid);
    assert.deepEqual(first.publicJwks(), second.publicJwks());
    assert.equal(second.unseal(first.seal('shared secret', 'grant:1'), 'grant:1'), 'shared secret');

    const stored = await store.get<KeySetFile>(KEYS_NAMESPACE, KEY_SET_RECORD);
    assert.equal(stored?.signingKeys[0]?.kid, first.currentSigningKey().kid);
  });

  it('signs tokens the published JWKS verifies, and the JWKS has no private members', async () => {
    const keyring = keyrings[0] as ReloadingKeyring;
    const token = await signWith(keyring, 'user-1');
    const { payload } = await jwtVerify(token, createLocalJWKSet(keyring.publicJwks()));
    assert.equal(payload.sub, 'user-1');
    for (const jwk of keyring.publicJwks().keys) {
      assert.deepEqual(Object.keys(jwk).toSorted(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    }
    const [privateJwk] = keyring.privateJwks().keys;
    assert.equal(typeof privateJwk?.d, 'string');
    assert.equal(privateJwk?.kid, keyring.currentSigningKey().kid);
  });

  it('binds sealed values to their context', () => {
    const keyring = keyrings[0] as ReloadingKeyring;
    const sealed = keyring.seal('upstream token', 'grant:alice');
    assert.throws(() => keyring.unseal(sealed, 'grant:bob'), SealError);
  });

  it('puts back the keys it holds when the store lost the key set (restarted empty), and says so', async () => {
    const { logger, output } = capturingLogger();
    const [first, second] = await Promise.all([
      loadKeyring({ store, keysConfig: storeKeys, clock, logger, reloadIntervalMs: 0 }),
      loadKeyring({ store, keysConfig: storeKeys, clock, logger, reloadIntervalMs: 0 }),
    ]);
    keyrings.push(first, second);
    const token = await signWith(first, 'signed-before');
    const sealed = first.seal('upstream token', 'grant:alice');
    await store.delete(KEYS_NAMESPACE, KEY_SET_RECORD);
    // A replica's periodic reload finds no record: a new set there signed out everyone at the next reload of each
    // replica, a minute apart, and until then the replicas disagreed on which keys sign.
    await first.reload();
    await second.reload();
    assert.deepEqual(second.publicJwks(), first.publicJwks());
    const { payload } = await jwtVerify(token, createLocalJWKSet(second.publicJwks()));
    assert.equal(payload.sub, 'signed-before');
    assert.equal(second.unseal(sealed, 'grant:alice'), 'upstream token');
    const stored = await store.get<KeySetFile>(KEYS_NAMESPACE, KEY_SET_RECORD);
    assert.equal(stored?.signingKeys[0]?.kid, first.currentSigningKey().kid);
    assert.match(output(), /the key set is missing from the store/);
    assert.doesNotMatch(output(), /keys reloaded/);
  });

  it('never logs key material while loading', async () => {
    const { logger, output } = capturingLogger();
    const keyring = await loadKeyring({ store, keysConfig: storeKeys, clock, logger, reloadIntervalMs: 0 });
    keyrings.push(keyring);
    await keyring.reload();
    const stored = (await store.get<KeySetFile>(KEYS_NAMESPACE, KEY_SET_RECORD)) as KeySetFile;
    const text = output();
    assert.match(text, /keys loaded/);
    assert.match(text, new RegExp(keyring.currentSigningKey().kid));
    for (const secret of keyMaterial(stored)) assert.ok(!text.includes(secret), 'log contains key material');
  });
});

describe('keyring from a file', () => {
  const clock = new ManualClock();
  let directory: string;
  let store: Store;

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gatehouse-keys-'));
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
  });
  after(async () => {
    await store.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('loads the key set written by init, and writes nothing to the store', async () => {
    const keySet = generateKeySet({ signingAlgorithm: 'EdDSA', now: clock.now() });
    const file = join(directory, 'keys.json');
    await writeFile(file, serializeKeySet(keySet), { mode: 0o600 });
    const { logger, output } = capturingLogger();
    const keyring = await loadKeyring({ store, keysConfig: { source: 'file', file, signingAlgorithm: 'ES256' }, clock, logger, reloadIntervalMs: 0 });
    try {
      assert.equal(keyring.currentSigningKey().kid, keySet.signingKeys[0]?.kid);
      assert.equal(keyring.currentSigningKey().alg, 'EdDSA');
      assert.equal(await store.get(KEYS_NAMESPACE, KEY_SET_RECORD), undefined);
      for (const secret of keyMaterial(keySet)) assert.ok(!output().includes(secret));
    } finally {
      await keyring.close();
    }
  });

  it('uses an injected file reader', async () => {
    const keySet = generateKeySet({ signingAlgorithm: 'ES256', now: clock.now() });
    const reads: string[] = [];
    const keyring = await loadKeyring({
      store,
      keysConfig: { source: 'file', file: '/keys/from-secret-mount.json', signingAlgorithm: 'ES256' },
      clock,
      logger: capturingLogger().logger,
      reloadIntervalMs: 0,
      fileReader: async (path) => {
        reads.push(path);
        return serializeKeySet(keySet);
      },
    });
    await keyring.close();
    assert.deepEqual(reads, ['/keys/from-secret-mount.json']);
    assert.equal(keyring.currentSigningKey().kid, keySet.signingKeys[0]?.kid);
  });

  it('fails clearly when the file is missing', async () => {
    const file = join(directory, 'missing.json');
    await assert.rejects(
      loadKeyring({ store, keysConfig: { source: 'file', file, signingAlgorithm: 'ES256' }, clock, logger: capturingLogger().logger }),
      (error: unknown) => error instanceof KeySetError && error.message.includes('missing.json') && error.message.includes('ENOENT'),
    );
  });

  it('fails clearly when the file is malformed, without echoing it', async () => {
    const keySet = generateKeySet({ signingAlgorithm: 'ES256', now: clock.now() });
    const file = join(directory, 'broken.json');
    await writeFile(file, serializeKeySet(keySet).replace('"version": 1', '"version": "one"'));
    await assert.rejects(
      loadKeyring({ store, keysConfig: { source: 'file', file, signingAlgorithm: 'ES256' }, clock, logger: capturingLogger().logger }),
      (error: unknown) =>
        error instanceof KeySetError &&
        /broken\.json.*version/.test(error.message) &&
        keyMaterial(keySet).every((secret) => !error.message.includes(secret)),
    );
  });

  it('fails clearly when source is file but no file is configured', async () => {
    await assert.rejects(
      loadKeyring({ store, keysConfig: { source: 'file', signingAlgorithm: 'ES256' }, clock, logger: capturingLogger().logger }),
      /keys\.file: required/,
    );
  });

  it('keeps its keys when a reload finds the file broken', async () => {
    const keySet = generateKeySet({ signingAlgorithm: 'ES256', now: clock.now() });
    const file = join(directory, 'reload.json');
    await writeFile(file, serializeKeySet(keySet));
    const signal = reloadSignal();
    const { logger, output } = capturingLogger();
    const keyring = await loadKeyring({
      store,
      keysConfig: { source: 'file', file, signingAlgorithm: 'ES256' },
      clock,
      logger,
      reloadIntervalMs: 0,
      onReload: signal.onReload,
    });
    try {
      await writeFile(file, '{ not json');
      const outcome = signal.next();
      await keyring.reload();
      assert.ok((await outcome) instanceof KeySetError);
      assert.equal(keyring.currentSigningKey().kid, keySet.signingKeys[0]?.kid);
      assert.match(output(), /keys reload failed/);
    } finally {
      await keyring.close();
    }
  });
});
