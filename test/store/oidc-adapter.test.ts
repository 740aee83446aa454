import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ManualClock } from '../../src/runtime/clock.ts';
import {
  createOidcAdapter,
  GrantAlreadyConsumedError,
  oidcStorageKey,
  type OidcAdapterClass,
} from '../../src/store/oidc-adapter.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';

const sha256 = (value: string): string => createHash('sha256').update(value).digest('base64url');

describe('oidc-provider adapter on the store', () => {
  let store: Store;
  let clock: ManualClock;
  let Adapter: OidcAdapterClass;

  beforeEach(async () => {
    clock = new ManualClock();
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    Adapter = createOidcAdapter(store, clock);
  });
  afterEach(async () => {
    await store.close();
  });

  it('stores bearer models under the SHA-256 of the id, without the id, and restores jti on find', async () => {
    const codes = new Adapter('AuthorizationCode');
    const id = 'code-value-abc';
    await codes.upsert(id, { jti: id, kind: 'AuthorizationCode', grantId: 'g1', exp: 1 }, 60);

    assert.equal(oidcStorageKey('AuthorizationCode', id), sha256(id));
    assert.equal(await store.get('oidc:AuthorizationCode', id), undefined, 'not stored under the clear id');
    const raw = await store.get<Record<string, unknown>>('oidc:AuthorizationCode', sha256(id));
    assert.ok(raw);
    assert.equal('jti' in raw, false);
    assert.doesNotMatch(JSON.stringify(raw), new RegExp(id));

    assert.deepEqual(await codes.find(id), { jti: id, kind: 'AuthorizationCode', grantId: 'g1', exp: 1 });
    assert.equal(await codes.find('another-code'), undefined);
  });

  it('stores other models under their id, as given', async () => {
    const sessions = new Adapter('Session');
    await sessions.upsert('sess1', { jti: 'sess1', uid: 'uid1', accountId: 'u1' }, 3600);
    assert.deepEqual(await store.get('oidc:Session', 'sess1'), { jti: 'sess1', uid: 'uid1', accountId: 'u1' });
    assert.deepEqual(await sessions.findByUid('uid1'), { jti: 'sess1', uid: 'uid1', accountId: 'u1' });
    assert.equal(await sessions.findByUid('nope'), undefined);
  });

  it('finds a device code by user code through the hash of the user code', async () => {
    const deviceCodes = new Adapter('DeviceCode');
    await deviceCodes.upsert('dc1', { jti: 'dc1', userCode: 'WDJB-MJHT', grantId: 'g' }, 600);
    const found = await deviceCodes.findByUserCode('WDJB-MJHT');
    assert.equal(found?.jti, 'dc1');
    assert.equal(await deviceCodes.findByUserCode('XXXX-XXXX'), undefined);
    const indexed = await store.findByIndex('oidc:DeviceCode', 'userCode', 'WDJB-MJHT');
    assert.deepEqual(indexed, [], 'the clear user code is not an index value');
  });

  it('expires records with the TTL oidc-provider gives', async () => {
    const tokens = new Adapter('AccessToken');
    await tokens.upsert('at1', { jti: 'at1' }, 60);
    clock.advance(61_000);
    assert.equal(await tokens.find('at1'), undefined);
  });

  it('consume marks the record consumed in epoch seconds', async () => {
    const codes = new Adapter('AuthorizationCode');
    await codes.upsert('c1', { jti: 'c1', grantId: 'g1', exp: Math.floor(clock.now() / 1000) + 60 }, 60);
    await codes.consume('c1');
    assert.equal((await codes.find('c1'))?.consumed, Math.floor(clock.now() / 1000));
  });

  it('a consumed record stays consumed for its whole life: by its marker with `iat` and `exp`, by its own mark without', async () => {
    const tokens = new Adapter('RefreshToken');
    const iat = Math.floor(clock.now() / 1000);
    await tokens.upsert('with-exp', { jti: 'with-exp', grantId: 'g3', iat, exp: iat + 3600 }, 3600);
    await tokens.upsert('no-exp', { jti: 'no-exp', grantId: 'g3' });
    await tokens.consume('with-exp');
    await tokens.consume('no-exp');
    clock.advance(3599_000);
    assert.notEqual((await tokens.find('with-exp'))?.consumed, undefined, 'consumed until the record itself expires');
    clock.advance(2_000);
    assert.equal(await tokens.find('with-exp'), undefined);
    // Past the marker's fallback lifetime (14 days), a record without `exp` still reads as consumed.
    clock.advance(15 * 24 * 3600_000);
    assert.notEqual((await tokens.find('no-exp'))?.consumed, undefined);
    await assert.rejects(tokens.consume('no-exp'), GrantAlreadyConsumedError);
  });

  it('a consumed device code reads as consumed through its user code too', async () => {
    const deviceCodes = new Adapter('DeviceCode');
    const iat = Math.floor(clock.now() / 1000);
    await deviceCodes.upsert('dc2', { jti: 'dc2', userCode: 'BDWP-HQPK', grantId: 'g5', iat, exp: iat + 600 }, 600);
    await deviceCodes.consume('dc2');
    assert.notEqual((await deviceCodes.findByUserCode('BDWP-HQPK'))?.consumed, undefined);
  });

  it('a token consumed by a replica whose clock runs ahead never reads as unconsumed on the issuer while it lives', async () => {
    // One store, two replicas: the issuer on the store's clock, the consumer's clock 5 s ahead. The record's TTL
    // counts from its save on the issuer; a marker TTL counted to `exp` on the consumer's clock would end 4 s early.
    const issuer = new Adapter('RefreshToken');
    const Ahead = createOidcAdapter(store, { now: () => clock.now() + 5_000 });
    const consumer = new Ahead('RefreshToken');
    const iat = Math.floor(clock.now() / 1000);
    await issuer.upsert('rt-skew', { jti: 'rt-skew', grantId: 'g4', iat, exp: iat + 8 }, 8);
    await consumer.consume('rt-skew');
    for (const elapsed of [1_000, 3_000, 5_200, 7_900]) {
      clock.set(iat * 1000 + elapsed);
      // Gone is safe (a replay finds nothing); found but unconsumed would let a replay rotate a second chain.
      const found = await issuer.find('rt-skew');
      if (found === undefined) continue;
      assert.notEqual(found.consumed, undefined, `consumed at ${elapsed} ms`);
      await assert.rejects(issuer.consume('rt-skew'), GrantAlreadyConsumedError, `a replay at ${elapsed} ms is caught`);
    }
  });

  it('of 20 concurrent consumes exactly one succeeds; the others fail with invalid_grant naming the grant to end', async () => {
    const codes = new Adapter('AuthorizationCode');
    const accessTokens = new Adapter('AccessToken');
    const grants = new Adapter('Grant');
    await grants.upsert('g1', { jti: 'g1', accountId: 'u1' }, 3600);
    await accessTokens.upsert('earlier-at', { jti: 'earlier-at', grantId: 'g1' }, 600);
    await codes.upsert('c1', { jti: 'c1', grantId: 'g1', exp: Math.floor(clock.now() / 1000) + 60 }, 60);

    const results = await Promise.allSettled(Array.from({ length: 20 }, () => codes.consume('c1')));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(failures.length, 19);
    for (const { reason } of failures) {
      assert.ok(reason instanceof GrantAlreadyConsumedError);
      // The fields oidc-provider's error handler reads to render `400 {"error":"invalid_grant"}`.
      assert.equal(reason.message, 'invalid_grant');
      assert.equal(reason.statusCode, 400);
      assert.equal(reason.expose, true);
      assert.equal(reason.grantId, 'g1', 'the grant that must end');
    }
    // Ending the grant is endGrant's job (src/grants/end-grant.ts, called by the authorization server's adapter
    // hooks), never a partial delete inside the store: the store leaves the records for it.
    assert.ok(await accessTokens.find('earlier-at'));
    assert.ok(await grants.find('g1'));
  });

  it('a consume after a consume fails rather than succeeding twice', async () => {
    const tokens = new Adapter('RefreshToken');
    await tokens.upsert('rt1', { jti: 'rt1', grantId: 'g2' }, 3600);
    await tokens.consume('rt1');
    await assert.rejects(tokens.consume('rt1'), GrantAlreadyConsumedError);
  });

  it('revokeByGrantId removes every model of that grant and nothing else', async () => {
    const codes = new Adapter('AuthorizationCode');
    const accessTokens = new Adapter('AccessToken');
    const refreshTokens = new Adapter('RefreshToken');
    await codes.upsert('c1', { jti: 'c1', grantId: 'g1' }, 60);
    await accessTokens.upsert('a1', { jti: 'a1', grantId: 'g1' }, 60);
    await refreshTokens.upsert('r1', { jti: 'r1', grantId: 'g1' }, 60);
    await refreshTokens.upsert('r2', { jti: 'r2', grantId: 'g2' }, 60);

    await accessTokens.revokeByGrantId('g1');
    assert.equal(await codes.find('c1'), undefined);
    assert.equal(await accessTokens.find('a1'), undefined);
    assert.equal(await refreshTokens.find('r1'), undefined);
    assert.equal((await refreshTokens.find('r2'))?.jti, 'r2');
  });

  it('destroy removes the record and its indexes', async () => {
    const sessions = new Adapter('Session');
    await sessions.upsert('s1', { jti: 's1', uid: 'u-1' }, 60);
    await sessions.destroy('s1');
    assert.equal(await sessions.find('s1'), undefined);
    assert.equal(await sessions.findByUid('u-1'), undefined);
  });
});
