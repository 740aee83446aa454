import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Keyring } from '../../src/keys/keyring.ts';
import type { RevokedGrantsCache } from '../../src/grants/revoked-grants.ts';
import { createAccessTokenVerifier, type VerifyTarget } from '../../src/proxy/verify-access-token.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createTestKeyring, mintAccessToken } from './harness.ts';

/**
 * The verified-token cache: a repeated token skips the signature check, but the audience (route), expiry and
 * revocation are still checked on every request, and the cache is a bounded LRU.
 */
const issuer = 'https://gw.example';
const real = createTestKeyring();
const target = (path: string): VerifyTarget => ({ resource: `${issuer}${path}`, requiredScopes: ['mcp:tools'], resourceMetadataUrl: `${issuer}/.well-known/oauth-protected-resource${path}`, scope: 'mcp:tools', dpop: 'optional', dpopNonce: false });

/** Counts signature verifications: the verifier reads the public keys once per verification it performs. */
function setup(cacheSize = 10) {
  let verifications = 0;
  const keyring: Keyring = { ...real, publicJwks: () => (verifications++, real.publicJwks()) };
  const revoked = new Set<string>();
  const list = { current: true };
  const revokedGrants: RevokedGrantsCache = { isRevoked: (gid) => revoked.has(gid), isCurrent: () => list.current, start: async () => {}, resync: async () => {}, onRevoked: () => () => {}, onStale: () => () => {}, stop: async () => {} };
  const verifyDpopProof = async () => assert.fail('no DPoP proof is checked for a Bearer token');
  const verify = createAccessTokenVerifier({ keyring, issuer, clock: systemClock, revokedGrants, verifyDpopProof, cacheSize });
  const check = (token: string, path = '/mcp') =>
    verify({ authorization: `Bearer ${token}`, rawQuery: '', method: 'POST', url: `${issuer}${path}` }, target(path));
  const checkHeader = (authorization: string, path = '/mcp') =>
    verify({ authorization, rawQuery: '', method: 'POST', url: `${issuer}${path}` }, target(path));
  return { check, checkHeader, revoked, list, count: () => verifications };
}
const mint = (gid = 'g1', path = '/mcp') => mintAccessToken(real, issuer, { aud: `${issuer}${path}`, gid });
const refused = (status: number) => (error: unknown) => error instanceof ProtocolError && error.status === status;

describe('verified-token cache', () => {
  it('verifies the signature of a repeated token once', async () => {
    const { check, count } = setup();
    const token = await mint();
    await check(token);
    const after = count();
    assert.ok(after > 0);
    await check(token);
    await check(token);
    assert.equal(count(), after);
  });

  it('still refuses a cached token on another route', async () => {
    const { check } = setup();
    const token = await mint();
    await check(token);
    await assert.rejects(check(token, '/other'), refused(401));
  });

  it('still refuses a cached token once its grant is revoked', async () => {
    const { check, revoked } = setup();
    const token = await mint('g-revoked');
    await check(token);
    revoked.add('g-revoked');
    await assert.rejects(check(token), refused(401));
  });

  it('answers 503 (not a verdict) while the revoked grants could not be re-read for too long, and serves again after', async () => {
    const { check, list } = setup();
    const token = await mint('g-stale');
    await check(token);
    list.current = false;
    await assert.rejects(check(token), (error: unknown) => error instanceof ProtocolError && error.status === 503 && error.code === 'temporarily_unavailable' && error.headers['retry-after'] === '5');
    list.current = true;
    await check(token);
  });

  it('evicts the least recently used token when full', async () => {
    const { check, count } = setup(2);
    const [a, b, c] = await Promise.all([mint('a'), mint('b'), mint('c')]);
    await check(a);
    await check(b);
    await check(a); // a is now the most recently used
    await check(c); // evicts b
    const before = count();
    await check(a);
    assert.equal(count(), before, 'a stayed cached');
    await check(b);
    assert.ok(count() > before, 'b was evicted and verified again');
  });
});

describe('verified-token cache and header spellings', () => {
  it('remembers only the canonical spelling: one token in many spellings cannot fill the cache', async () => {
    const { checkHeader, count } = setup(4);
    const token = await mint();
    for (const spelling of [`bearer ${token}`, `Bearer  ${token}`, `BEARER   ${token}`]) {
      await checkHeader(spelling);
      const afterFirst = count();
      await checkHeader(spelling);
      assert.ok(count() > afterFirst, `${spelling.slice(0, 10)}… verified in full again`);
    }
    await checkHeader(`Bearer ${token}`);
    const before = count();
    await checkHeader(`Bearer ${token}`);
    assert.equal(count(), before, 'the canonical spelling is served from the cache');
  });
});

describe('sender-constrained tokens', () => {
  it('refuses a DPoP-bound token (cnf.jkt) presented as Bearer (RFC 9449 §7.2), with 401 invalid_token', async () => {
    const { check } = setup();
    const bound = await mintAccessToken(real, issuer, { aud: `${issuer}/mcp`, cnf: { jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' } });
    await assert.rejects(check(bound), (error: unknown) => {
      assert.ok(error instanceof ProtocolError);
      assert.equal(error.status, 401);
      assert.match(String(error.headers?.['www-authenticate'] ?? ''), /invalid_token/);
      return true;
    });
    await check(await mint());
  });

  it('refuses a token bound by a confirmation method it cannot check (RFC 8705 x5t#S256), however presented', async () => {
    const { check } = setup();
    const bound = await mintAccessToken(real, issuer, { aud: `${issuer}/mcp`, cnf: { 'x5t#S256': 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' } });
    await assert.rejects(check(bound), refused(401));
  });
});
