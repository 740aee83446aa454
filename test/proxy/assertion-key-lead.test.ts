import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { generateKeySet, generateSigningKey } from '../../src/keys/key-set.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import type { Keyring } from '../../src/keys/keyring.ts';
import { ASSERTION_KEY_LEAD_MS, createIdentityAssertionSigner } from '../../src/proxy/identity-assertion.ts';
import type { AccessTokenClaims } from '../../src/proxy/verify-access-token.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';

/**
 * Identity assertions after a key rotation, as a backend with jose's default JWKS client sees them: it fetches the
 * JWKS once, and again on an unknown `kid` only 30 s after its last fetch. Signed with the new key at once, the
 * assertions of the first 30 s after a rotation were refused (502 to the client). The new key signs assertions once
 * it has been published for ASSERTION_KEY_LEAD_MS.
 */
describe('the key identity assertions are signed with, around a rotation', () => {
  const start = Date.now();
  const clock = new ManualClock(start);
  const first = generateKeySet({ now: start - 3_600_000, signingAlgorithm: 'ES256' });
  let keyring: Keyring = keyringFromKeySet(first);
  let server: Server;
  let jwksUrl: URL;
  const issuer = 'https://gatehouse.test';
  const audience = 'https://gatehouse.test/mcp';

  before(async () => {
    // The gateway's /jwks, as published at each moment.
    server = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(keyring.publicJwks())));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    jwksUrl = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`);
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const claims = (jti: string): AccessTokenClaims => ({ sub: 'tenant/alice', clientId: 'c', grantId: 'g', jti, exp: Math.floor(clock.now() / 1000) + 600, scopes: ['mcp:tools'] });

  it('keeps the previous key for the lead after a rotation, so a backend that fetched the JWKS just before still verifies', async () => {
    const signer = createIdentityAssertionSigner({ keyring: proxyOf(() => keyring), issuer, clock, random: cryptoRandom });
    const backendJwks = createRemoteJWKSet(jwksUrl);
    const verify = async (jwt: string) => jwtVerify(jwt, backendJwks, { issuer, audience, currentDate: new Date(clock.now()) });

    const before = await signer.assertionFor({ claims: claims('t1'), account: undefined, audience, ttlSeconds: 300 });
    await verify(before.jwt);

    // Rotated now: the new key is current and published, the old one retired.
    const rotated = generateSigningKey({ now: clock.now(), signingAlgorithm: 'ES256' });
    keyring = keyringFromKeySet({ ...first, signingKeys: [...first.signingKeys.map((key) => ({ ...key, retiredAt: clock.now() })), rotated] });
    const during = await signer.assertionFor({ claims: claims('t2'), account: undefined, audience, ttlSeconds: 300 });
    assert.equal(decodeProtectedHeader(during.jwt).kid, first.signingKeys[0]?.kid, 'still the previous key');
    await verify(during.jwt);

    clock.advance(ASSERTION_KEY_LEAD_MS);
    const after = await signer.assertionFor({ claims: claims('t3'), account: undefined, audience, ttlSeconds: 300 });
    assert.equal(decodeProtectedHeader(after.jwt).kid, rotated.kid, 'the new key, once published long enough');
  });

  it('signs with the only key there is, however new', async () => {
    const fresh = keyringFromKeySet(generateKeySet({ now: clock.now(), signingAlgorithm: 'ES256' }));
    const signer = createIdentityAssertionSigner({ keyring: fresh, issuer, clock, random: cryptoRandom });
    const signed = await signer.assertionFor({ claims: claims('t4'), account: undefined, audience, ttlSeconds: 300 });
    assert.equal(decodeProtectedHeader(signed.jwt).kid, fresh.currentSigningKey().kid);
  });
});

/** A keyring that always answers with whatever `current()` is now (a rotation swaps it). */
function proxyOf(current: () => Keyring): Keyring {
  return {
    currentSigningKey: () => current().currentSigningKey(),
    signingKeys: () => current().signingKeys(),
    publicJwks: () => current().publicJwks(),
    privateJwks: () => current().privateJwks(),
    seal: (plaintext, context) => current().seal(plaintext, context),
    unseal: (sealed, context) => current().unseal(sealed, context),
  };
}
