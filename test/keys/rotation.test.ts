import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { generateKeySet, parseKeySet, serializeKeySet, type KeySetFile } from '../../src/keys/key-set.ts';
import { KEY_SET_RECORD, KEYS_NAMESPACE } from '../../src/keys/key-set-source.ts';
import { loadKeyring, type ReloadingKeyring } from '../../src/keys/load-keyring.ts';
import { keyRetention, listKeys, pruneKeys, revokeKey, revokeKeyFromSet, rotateKeys, rotateKeySet, UnknownKeyError, type KeyListing } from '../../src/keys/rotation.ts';
import { SealError, sealedKeyId } from '../../src/keys/sealing.ts';
import { deriveKeys } from '../../src/keys/derived-keys.ts';
import { createDpopNonces } from '../../src/keys/dpop-nonces.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { capturingLogger, keyMaterial, reloadSignal, testConfig } from './helpers.ts';

async function sign(keyring: ReloadingKeyring, subject: string): Promise<string> {
  const key = keyring.currentSigningKey();
  return new SignJWT({ sub: subject }).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey);
}

const verify = (keyring: ReloadingKeyring, token: string) => jwtVerify(token, createLocalJWKSet(keyring.publicJwks()));

describe('rotation without downtime (store)', () => {
  const clock = new ManualClock();
  const config = testConfig({ routes: [{ path: '/mcp', backend: 'http://127.0.0.1:9/mcp', identity: { assertionTtlSeconds: 7_200 } }] });
  const retention = keyRetention(config);
  const signal = reloadSignal();
  const log = capturingLogger();
  let store: Store;
  let gateway: ReloadingKeyring;
  let replica: ReloadingKeyring;
  let tokenA: string;
  let sealedA: string;
  let kidA: string;
  let changes = 0;

  before(async () => {
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    const options = { store, keysConfig: config.keys, clock, logger: log.logger, reloadIntervalMs: 0 };
    gateway = await loadKeyring(options);
    replica = await loadKeyring({ ...options, onReload: signal.onReload });
    replica.onChange(() => {
      changes += 1;
    });
  });
  after(async () => {
    await gateway.close();
    await replica.close();
    await store.close();
  });

  it('takes the longest signed-token lifetime from the config', () => {
    // The route's 2 h assertion outlives the 10 min access token and the 1 h ID token.
    assert.ok(retention.signingSeconds >= 7_200);
    assert.ok(retention.sealingSeconds >= config.authorization.refreshTokenAbsoluteSeconds);
    const shorter = keyRetention(testConfig());
    assert.ok(shorter.signingSeconds < retention.signingSeconds);
  });

  it('keeps verifying and unsealing old material after a rotation; new material uses the new keys', async () => {
    kidA = gateway.currentSigningKey().kid;
    tokenA = await sign(gateway, 'alice');
    sealedA = gateway.seal('upstream refresh token', 'grant:alice');
    // Derived keys are cached per loaded key set: they must follow the rotation below on the replica.
    const derivedBefore = deriveKeys(replica, 'gatehouse test purpose');
    const nonces = createDpopNonces({ keyring: replica, clock });
    const nonceBefore = nonces.current();
    assert.deepEqual(deriveKeys(replica, 'gatehouse test purpose'), derivedBefore, 'the same key set derives the same keys');

    const reloaded = signal.next();
    const rotated = await rotateKeys({ store, config, clock });
    assert.equal(await reloaded, undefined, 'the replica reloads on keys-changed');
    assert.equal(changes, 1, 'change listeners hear about the rotation');

    const kidB = replica.currentSigningKey().kid;
    assert.notEqual(kidB, kidA);
    assert.equal(rotated.signingKid, kidB);
    assert.equal((await verify(replica, tokenA)).payload.sub, 'alice');
    assert.equal(decodeProtectedHeader(await sign(replica, 'bob')).kid, kidB);
    assert.deepEqual(replica.publicJwks().keys.map((key) => key.kid), [kidB, kidA]);
    assert.equal(replica.privateJwks().keys[0]?.kid, kidB);

    assert.equal(replica.unseal(sealedA, 'grant:alice'), 'upstream refresh token');
    assert.equal(sealedKeyId(replica.seal('new', 'grant:bob')), rotated.sealingKid);

    const derivedAfter = deriveKeys(replica, 'gatehouse test purpose');
    assert.equal(derivedAfter.length, 2);
    assert.notDeepEqual(derivedAfter[0], derivedBefore[0], 'new values use a key derived from the new signing key');
    assert.deepEqual(derivedAfter[1], derivedBefore[0], 'the old derived key is still there to verify');
    assert.notEqual(nonces.current(), nonceBefore);
    assert.equal(nonces.isValid(nonceBefore), true, 'a nonce issued before the rotation still checks');
  });

  it('lists both keys with their status, retirement time and when they may be pruned', async () => {
    const keys = await listKeys({ store, config, clock });
    const retiredSigning = keys.find((key) => key.kid === kidA);
    assert.equal(retiredSigning?.status, 'retired');
    assert.equal(retiredSigning?.retiredAt, clock.now());
    assert.equal(retiredSigning?.prunableAt, clock.now() + retention.signingSeconds * 1000);
    assert.equal(keys.filter((key) => key.status === 'current').length, 2);
    assert.equal(keys.filter((key) => key.use === 'enc').length, 2);
  });

  it('keeps the retired signing key until its window has passed', async () => {
    clock.advance(retention.signingSeconds * 1000 - 1);
    const early = await pruneKeys({ store, config, clock });
    assert.deepEqual(early.removed, []);
    await replica.reload();
    assert.equal(changes, 1, 'a reload that finds nothing new notifies no one');
    assert.equal((await verify(replica, tokenA)).payload.sub, 'alice');
  });

  it('removes it once the window has passed, and only it', async () => {
    clock.advance(1);
    const reloaded = signal.next();
    const pruned = await pruneKeys({ store, config, clock });
    await reloaded;
    assert.deepEqual(pruned.removed.map((key) => [key.use, key.kid]), [['sig', kidA]]);
    assert.deepEqual(replica.publicJwks().keys.map((key) => key.kid), [replica.currentSigningKey().kid]);
    await assert.rejects(verify(replica, tokenA));
    // The sealing key's window (refresh token lifetime) is much longer: what it sealed still opens.
    assert.equal(replica.unseal(sealedA, 'grant:alice'), 'upstream refresh token');
  });

  it('removes the retired sealing key after the refresh token lifetime', async () => {
    clock.advance((retention.sealingSeconds - retention.signingSeconds) * 1000);
    const reloaded = signal.next();
    const pruned = await pruneKeys({ store, config, clock });
    await reloaded;
    assert.equal(pruned.removed.length, 1);
    assert.equal(pruned.removed[0]?.use, 'enc');
    assert.throws(() => replica.unseal(sealedA, 'grant:alice'), SealError);
    assert.equal(pruned.kept.length, 2);
  });

  it('prunes nothing, and makes no key set, on a store that lost its key set (prune runs from cron)', async () => {
    const empty = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    try {
      assert.deepEqual(await pruneKeys({ store: empty, config, clock }), { removed: [], kept: [] });
      assert.equal(await empty.get(KEYS_NAMESPACE, KEY_SET_RECORD), undefined, 'no set a running replica does not hold');
    } finally {
      await empty.close();
    }
  });

  it('never logged key material through load, rotate, reload and prune', async () => {
    const stored = (await store.get<KeySetFile>(KEYS_NAMESPACE, KEY_SET_RECORD)) as KeySetFile;
    const text = log.output();
    assert.match(text, /keys reloaded/);
    for (const secret of keyMaterial(stored)) assert.ok(!text.includes(secret), 'log contains key material');
  });
});

describe('rotation with a key file', () => {
  const clock = new ManualClock();
  let directory: string;
  let file: string;
  let store: Store;

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gatehouse-rotate-'));
    file = join(directory, 'keys.json');
    await writeFile(file, serializeKeySet(generateKeySet({ signingAlgorithm: 'EdDSA', now: clock.now() })), { mode: 0o600 });
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
  });
  after(async () => {
    await store.close();
    await rm(directory, { recursive: true, force: true });
  });

  it('rewrites the file (owner-only) and running keyrings pick it up', async () => {
    const config = testConfig({ keys: { source: 'file', file, signingAlgorithm: 'EdDSA' } });
    const signal = reloadSignal();
    const keyring = await loadKeyring({ store, keysConfig: config.keys, clock, logger: capturingLogger().logger, reloadIntervalMs: 0, onReload: signal.onReload });
    try {
      const before = keyring.currentSigningKey().kid;
      const reloaded = signal.next();
      clock.advance(1_000);
      const rotated = await rotateKeys({ store, config, clock });
      await reloaded;
      const written = parseKeySet(await readFile(file, 'utf8'));
      assert.equal(written.signingKeys.length, 2);
      assert.equal(written.signingKeys.find((key) => key.kid === before)?.retiredAt, clock.now());
      assert.equal(keyring.currentSigningKey().kid, rotated.signingKid);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.equal(await store.get(KEYS_NAMESPACE, KEY_SET_RECORD), undefined, 'file keys never enter the store');
    } finally {
      await keyring.close();
    }
  });
});

describe('concurrent changes of a key file', () => {
  it('refuses a change while another command holds the file, and takes over a lock left by one that died', async () => {
    const clock = new ManualClock();
    const directory = await mkdtemp(join(tmpdir(), 'gatehouse-keys-lock-'));
    const file = join(directory, 'keys.json');
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    try {
      const initial = serializeKeySet(generateKeySet({ signingAlgorithm: 'ES256', now: clock.now() }));
      await writeFile(file, initial, { mode: 0o600 });
      const config = testConfig({ keys: { source: 'file', file } });
      // A `keys rotate` from cron between its read and its write: a revocation now would be undone by its write.
      await writeFile(`${file}.lock`, '4242\n');
      const leaked = parseKeySet(initial).signingKeys[0]?.kid as string;
      await assert.rejects(revokeKey({ store, config, clock }, leaked), /in progress/);
      assert.equal(await readFile(file, 'utf8'), initial, 'nothing changed');
      // The same lock an hour later: its command died; the next one takes it over, and leaves no lock behind.
      const anHourAgo = new Date(Date.now() - 3_600_000);
      await utimes(`${file}.lock`, anHourAgo, anHourAgo);
      await revokeKey({ store, config, clock }, leaked);
      assert.ok(!parseKeySet(await readFile(file, 'utf8')).signingKeys.some((key) => key.kid === leaked));
      await assert.rejects(stat(`${file}.lock`), { code: 'ENOENT' });
    } finally {
      await store.close();
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe('concurrent rotations', () => {
  it('refuses a second rotation while one holds the lock', async () => {
    const clock = new ManualClock();
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    try {
      const config = testConfig();
      const release = await store.acquireLock('keys:update', 60_000);
      assert.ok(release);
      await assert.rejects(rotateKeys({ store, config, clock }), /in progress/);
      await release();
      const rotated = await rotateKeys({ store, config, clock });
      assert.equal(rotated.keys.length, 4);
    } finally {
      await store.close();
    }
  });
});

describe('key retention', () => {
  it('keeps sealing keys for the longer of the refresh token lifetime and remembered consent', () => {
    const shortRefresh = testConfig({ authorization: { refreshTokenAbsoluteSeconds: 86_400, consentRememberDays: 30 } });
    const longRefresh = testConfig({ authorization: { refreshTokenAbsoluteSeconds: 365 * 86_400, consentRememberDays: 30 } });
    assert.ok(keyRetention(shortRefresh).sealingSeconds >= 30 * 86_400);
    assert.ok(keyRetention(longRefresh).sealingSeconds >= 365 * 86_400);
    assert.ok(keyRetention(longRefresh).sealingSeconds > keyRetention(shortRefresh).sealingSeconds);
  });

  it('keeps signing keys for the longer of the access token and identity assertion lifetimes', () => {
    const longAccess = testConfig({ authorization: { accessTokenTtlSeconds: 86_400 } });
    assert.ok(keyRetention(longAccess).signingSeconds >= 86_400);
    assert.ok(keyRetention(longAccess).signingSeconds > keyRetention(testConfig()).signingSeconds);
  });
});

describe('revoking a compromised key', () => {
  const clock = new ManualClock();
  const config = testConfig();
  const signal = reloadSignal();
  let store: Store;
  let gateway: ReloadingKeyring;
  let replica: ReloadingKeyring;

  before(async () => {
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    const options = { store, keysConfig: config.keys, clock, logger: capturingLogger().logger, reloadIntervalMs: 0 };
    gateway = await loadKeyring(options);
    replica = await loadKeyring({ ...options, onReload: signal.onReload });
  });
  after(async () => {
    await gateway.close();
    await replica.close();
    await store.close();
  });

  it('takes a retired signing key out at once, long before prune would, and leaves every other key', async () => {
    const leakedKid = replica.currentSigningKey().kid;
    const forged = await sign(replica, 'anyone-the-thief-likes');
    const nonces = createDpopNonces({ keyring: replica, clock });
    const nonceUnderLeakedKey = nonces.current();
    let reloaded = signal.next();
    await rotateKeys({ store, config, clock });
    await reloaded;
    // Rotation alone: the leaked key still verifies for the whole retention window.
    assert.equal((await verify(replica, forged)).payload.sub, 'anyone-the-thief-likes');
    const sealingBefore = (await listKeys({ store, config, clock })).filter((key) => key.use === 'enc');

    reloaded = signal.next();
    const result = await revokeKey({ store, config, clock }, leakedKid);
    assert.equal(await reloaded, undefined, 'replicas reload on keys-changed');
    assert.deepEqual(result.revoked.map((key) => [key.use, key.kid, key.status]), [['sig', leakedKid, 'retired']]);
    assert.deepEqual(result.replacements, [], 'a retired key needs no replacement');
    await assert.rejects(verify(replica, forged), 'a token signed with the revoked key no longer verifies');
    assert.ok(!replica.publicJwks().keys.some((key) => key.kid === leakedKid), 'nor is the key published');
    assert.equal(nonces.isValid(nonceUnderLeakedKey), false, 'what was derived from it (DPoP nonces) goes with it');
    assert.deepEqual((await listKeys({ store, config, clock })).filter((key) => key.use === 'enc'), sealingBefore, 'sealing keys untouched');
  });

  it('replaces a current signing key in the same write, leaving the current sealing key', async () => {
    const leaked = replica.currentSigningKey().kid;
    const sealingKid = (await listKeys({ store, config, clock })).find((key) => key.use === 'enc' && key.status === 'current')?.kid;
    const sealed = replica.seal('upstream refresh token', 'grant:alice');
    const reloaded = signal.next();
    const result = await revokeKey({ store, config, clock }, leaked);
    await reloaded;
    assert.equal(result.replacements.length, 1);
    const replacement = result.replacements[0] as KeyListing;
    assert.equal(replacement.use, 'sig');
    assert.equal(replacement.status, 'current');
    assert.equal(replica.currentSigningKey().kid, replacement.kid);
    assert.equal(gateway.currentSigningKey().kid, replacement.kid, 'the other keyring reloads too');
    assert.equal(result.keys.filter((key) => key.status === 'current' && key.use === 'enc')[0]?.kid, sealingKid);
    assert.equal(replica.unseal(sealed, 'grant:alice'), 'upstream refresh token');
  });

  it('revokes a sealing key: what it sealed no longer opens, and new values use the replacement', async () => {
    const sealed = replica.seal('upstream refresh token', 'grant:bob');
    const leaked = sealedKeyId(sealed) as string;
    const reloaded = signal.next();
    const result = await revokeKey({ store, config, clock }, leaked);
    await reloaded;
    assert.deepEqual(result.revoked.map((key) => [key.use, key.kid]), [['enc', leaked]]);
    assert.throws(() => replica.unseal(sealed, 'grant:bob'), SealError);
    assert.equal(sealedKeyId(replica.seal('new', 'grant:bob')), result.replacements[0]?.kid);
  });

  it('refuses an unknown key id (GH_NOT_FOUND), changing nothing, and creates no key set on an empty store', async () => {
    const before = await store.get(KEYS_NAMESPACE, KEY_SET_RECORD);
    await assert.rejects(revokeKey({ store, config, clock }, 'no-such-kid'), (error: unknown) => error instanceof UnknownKeyError && error.code === 'GH_NOT_FOUND');
    assert.deepEqual(await store.get(KEYS_NAMESPACE, KEY_SET_RECORD), before);
    const empty = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    try {
      await assert.rejects(revokeKey({ store: empty, config, clock }, 'no-such-kid'), UnknownKeyError);
      assert.equal(await empty.get(KEYS_NAMESPACE, KEY_SET_RECORD), undefined);
    } finally {
      await empty.close();
    }
  });

  it('revokes from a key set alone: a current key of each kind always remains', () => {
    const set = rotateKeySet(generateKeySet({ signingAlgorithm: 'ES256', now: 1 }), { now: 2, signingAlgorithm: 'ES256' });
    for (const key of [...set.signingKeys, ...set.sealingKeys]) {
      const next = parseKeySet(revokeKeyFromSet(set, { kid: key.kid, now: 3, signingAlgorithm: 'ES256' }));
      const all = [...next.signingKeys, ...next.sealingKeys];
      assert.ok(!all.some((kept) => kept.kid === key.kid));
      assert.equal(all.length, key.retiredAt === undefined ? 4 : 3);
    }
  });
});
