import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { generateKeySet } from '../../src/keys/key-set.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import { ASSERTION_GROUPS_BUDGET_BYTES, createIdentityAssertionSigner } from '../../src/proxy/identity-assertion.ts';
import type { AccessTokenClaims } from '../../src/proxy/verify-access-token.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';

/**
 * The groups an identity assertion carries to the backend, in a request header: a user in 300 groups (an Okta or
 * Keycloak directory) made an assertion no server reads (431 on every call). Past the budget the assertion says
 * `groups_overage: true` instead, as Entra does past 200 groups.
 */
describe('the groups in an identity assertion', () => {
  const keyring = keyringFromKeySet(generateKeySet({ now: Date.now() - 3_600_000, signingAlgorithm: 'ES256' }));
  const signer = createIdentityAssertionSigner({ keyring, issuer: 'https://gw.example', clock: systemClock, random: cryptoRandom });
  const assertionFor = async (groups: string[]) => {
    const claims: AccessTokenClaims = { sub: 'tenant/alice', clientId: 'c', grantId: 'g', jti: randomUUID(), exp: Math.floor(Date.now() / 1000) + 600, scopes: ['mcp:tools'] };
    // The longest name and address sign-in keeps (identity-claims.ts): the other claims at their largest.
    const account = { subject: 'tenant/alice', issuer: 'https://idp.example', name: 'n'.repeat(256), email: `${'e'.repeat(242)}@example.com`, groups, firstSeenAt: 0, lastSeenAt: 0 };
    return (await signer.assertionFor({ claims, account, audience: 'https://gw.example/mcp', ttlSeconds: 120 })).jwt;
  };

  it('carries every group of a user in a hundred', async () => {
    const groups = Array.from({ length: 100 }, () => randomUUID());
    const payload = decodeJwt(await assertionFor(groups));
    assert.deepEqual(payload.groups, groups);
    assert.equal(payload.groups_overage, undefined);
  });

  it('stays within one 8 KB header line (nginx) with groups just under the budget, counted in UTF-8 bytes', async () => {
    // Group names with characters of three UTF-8 bytes each: counted as characters, they passed at three times the size.
    const name = 'é'.repeat(20);
    const budget = ASSERTION_GROUPS_BUDGET_BYTES;
    const perGroup = Buffer.byteLength(JSON.stringify(name)) + 1;
    const under = Array.from({ length: Math.floor((budget - 2) / perGroup) }, (_, i) => `${name}${i % 10}`.slice(0, 20));
    const jwt = await assertionFor(under);
    assert.ok(Buffer.byteLength(`Authorization: Bearer ${jwt}`) < 8 * 1024, `${jwt.length} bytes`);
    assert.equal(decodeJwt(jwt).groups_overage, undefined, 'under the budget: every group');
    const over = [...under, ...under.slice(0, 10)];
    assert.equal(decodeJwt(await assertionFor(over)).groups_overage, true);
  });

  it('says groups_overage, with no groups, for a user in 300, and stays a header a server reads', async () => {
    const jwt = await assertionFor(Array.from({ length: 300 }, () => randomUUID()));
    const payload = decodeJwt(jwt);
    assert.deepEqual(payload.groups, []);
    assert.equal(payload.groups_overage, true);
    assert.ok(jwt.length < 4_096, `${jwt.length} bytes`);
  });
});
