import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { ManualClock } from '../../src/runtime/clock.ts';
import { UpstreamError } from '../../src/upstream/errors.ts';
import { verifyIdToken } from '../../src/upstream/id-token.ts';

/** ID token checks beyond what the JWT library does (OpenID Connect Core §3.1.3.7). */
describe('verifyIdToken', () => {
  const clock = new ManualClock(Date.UTC(2026, 11, 6, 12));
  const issuer = 'https://idp.example';
  let privateKey: CryptoKey;
  let jwks: ReturnType<typeof createLocalJWKSet>;

  before(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k', alg: 'ES256' }] });
  });

  const now = () => Math.floor(clock.now() / 1000);
  const sign = (claims: JWTPayload) =>
    new SignJWT({ sub: 'u1', nonce: 'n', iat: now(), exp: now() + 300, ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'k' }).setIssuer(issuer).setAudience('gatehouse').sign(privateKey);
  const verify = async (claims: JWTPayload) =>
    verifyIdToken({ idToken: await sign(claims), jwks, clientId: 'gatehouse', expectedNonce: 'n', expectedIssuer: () => issuer, clock });
  const refused = (pattern: RegExp) => (error: unknown) => error instanceof UpstreamError && error.code === 'access_denied' && pattern.test(error.message);

  it('accepts a token for this client, with or without its own azp', async () => {
    assert.equal((await verify({})).sub, 'u1');
    assert.equal((await verify({ azp: 'gatehouse' })).sub, 'u1');
  });

  it('refuses an azp naming another party, even with this client as the only audience (item 5)', async () => {
    await assert.rejects(verify({ azp: 'another-app' }), refused(/another party \(azp\)/));
  });

  it('refuses a token issued in the future beyond the clock skew (item 10)', async () => {
    await assert.rejects(verify({ iat: 4_000_000_000, exp: 4_000_000_300 }), refused(/issued in the future/));
    assert.equal((await verify({ iat: now() + 30 })).sub, 'u1', 'within the skew');
  });
});
