import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { generateKeySet } from '../../src/keys/key-set.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import type { ChangeNotifyingKeyring, Keyring } from '../../src/keys/keyring.ts';
import type { RevokedGrantsCache } from '../../src/grants/revoked-grants.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { createIdentityAssertionSigner } from '../../src/proxy/identity-assertion.ts';
import { createAccessTokenVerifier, type AccessTokenClaims, type VerifyTarget } from '../../src/proxy/verify-access-token.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { auditRecordWithReason, followStream, mintAccessToken, startTestGateway } from './harness.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { revokeKeyFromSet, rotateKeySet } from '../../src/keys/rotation.ts';

/**
 * A signing key removed from the key set (after a compromise, or pruned) stops counting at once on a running
 * replica. The verified-token cache skipped the signature check for a token seen before, so a token forged with the
 * leaked key and used once before the removal stayed accepted until the `exp` its forger chose; the assertion cache
 * kept forwarding assertions signed with the removed key, which backends refuse once their JWKS lost it.
 */

/** A keyring whose keys are replaced as a reload replaces them, telling its listeners. */
function reloadingKeyring(initial: Keyring): ChangeNotifyingKeyring & { replaceWith(next: Keyring): void } {
  let current = initial;
  const listeners = new Set<() => void>();
  return {
    currentSigningKey: () => current.currentSigningKey(),
    signingKeys: () => current.signingKeys(),
    publicJwks: () => current.publicJwks(),
    privateJwks: () => current.privateJwks(),
    seal: (plaintext, context) => current.seal(plaintext, context),
    unseal: (sealed, context) => current.unseal(sealed, context),
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    replaceWith(next) {
      current = next;
      for (const listener of listeners) listener();
    },
  };
}

const issuer = 'https://gw.example';
const target: VerifyTarget = {
  resource: `${issuer}/mcp`,
  requiredScopes: ['mcp:tools'],
  resourceMetadataUrl: `${issuer}/.well-known/oauth-protected-resource/mcp`,
  scope: 'mcp:tools',
  dpop: 'optional',
  dpopNonce: false,
};
const revokedGrants: RevokedGrantsCache = { isRevoked: () => false, isCurrent: () => true, start: async () => {}, resync: async () => {}, onRevoked: () => () => {}, onStale: () => () => {}, stop: async () => {} };
const anHourAgo = Date.now() - 3_600_000;

describe('a signing key removed from the key set', () => {
  it('no longer verifies a token it signed, even one this replica verified and remembered before', async () => {
    const leaked = keyringFromKeySet(generateKeySet({ now: anHourAgo, signingAlgorithm: 'ES256' }));
    const replacement = keyringFromKeySet(generateKeySet({ now: anHourAgo, signingAlgorithm: 'ES256' }));
    const keyring = reloadingKeyring(leaked);
    const verify = createAccessTokenVerifier({ keyring, issuer, clock: systemClock, revokedGrants, verifyDpopProof: async () => assert.fail('no proof expected') });
    const forged = await mintAccessToken(leaked, issuer, { aud: target.resource, expiresIn: 10 * 365 * 86_400 });
    const check = () => verify({ authorization: `Bearer ${forged}`, rawQuery: '', method: 'POST', url: target.resource }, target);
    await check();
    await check();

    keyring.replaceWith(replacement);
    await assert.rejects(check(), (error: unknown) => error instanceof ProtocolError && error.status === 401);
    const issuedNow = await mintAccessToken(replacement, issuer, { aud: target.resource });
    await verify({ authorization: `Bearer ${issuedNow}`, rawQuery: '', method: 'POST', url: target.resource }, target);

    verify.close();
  });

  it('signs no more identity assertions with the removed key: the cached ones are signed again', async () => {
    const removed = keyringFromKeySet(generateKeySet({ now: anHourAgo, signingAlgorithm: 'ES256' }));
    const remaining = keyringFromKeySet(generateKeySet({ now: anHourAgo, signingAlgorithm: 'ES256' }));
    const keyring = reloadingKeyring(removed);
    const signer = createIdentityAssertionSigner({ keyring, issuer, clock: systemClock, random: cryptoRandom });
    const claims: AccessTokenClaims = { sub: 'tenant/alice', clientId: 'c', grantId: 'g', jti: 'token-1', exp: Math.floor(Date.now() / 1000) + 600, scopes: ['mcp:tools'] };
    const input = { claims, account: undefined, audience: target.resource, ttlSeconds: 300 };
    const before = await signer.assertionFor(input);
    assert.equal((await signer.assertionFor(input)).jwt, before.jwt, 'reused while the key stays');
    assert.equal(decodeProtectedHeader(before.jwt).kid, removed.currentSigningKey().kid);

    keyring.replaceWith(remaining);
    const after = await signer.assertionFor(input);
    assert.equal(decodeProtectedHeader(after.jwt).kid, remaining.currentSigningKey().kid);
    signer.close();
  });
});

/**
 * A gateway on a reloading keyring, in front of a backend that holds every GET stream open and answers a POST with a
 * session id (`session-1`).
 */
async function startKeyedGateway() {
  const backend = createServer((request, response) => {
    request.resume();
    if (request.method === 'POST') return void response.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'session-1' }).end('{"jsonrpc":"2.0","id":1,"result":{}}');
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.write(': open\n\n');
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const first = generateKeySet({ now: anHourAgo, signingAlgorithm: 'ES256' });
  const keyring = reloadingKeyring(keyringFromKeySet(first));
  const gateway = await startTestGateway({ keyring, config: { routes: [{ path: '/mcp', backend: `http://127.0.0.1:${(backend.address() as AddressInfo).port}/mcp` }] } });
  const close = async () => {
    await gateway.close();
    backend.closeAllConnections();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  };
  return { first, keyring, gateway, close };
}

describe('a stream opened with a token of a key removed from the set', () => {
  it('is cut when the key leaves (audited "signing key removed"), and kept when a rotation only retires it', { timeout: 10_000 }, async () => {
    const { first, keyring, gateway, close } = await startKeyedGateway();
    try {
      // A forger's token: any subject, a grant id no one can revoke.
      const forged = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub: 'intruder', gid: 'made-up' });
      const response = await fetch(`${gateway.url}/mcp`, { headers: { authorization: `Bearer ${forged}`, accept: 'text/event-stream' } });
      assert.equal(response.status, 200);
      const stream = await followStream(response);

      // A rotation: the key is retired but still in the set, and the stream goes on.
      const rotated = rotateKeySet(first, { now: Date.now(), signingAlgorithm: 'ES256' });
      keyring.replaceWith(keyringFromKeySet(rotated));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(stream.ended(), false);

      // A revocation: the key leaves the set.
      const leakedKid = first.signingKeys[0]!.kid;
      keyring.replaceWith(keyringFromKeySet(revokeKeyFromSet(rotated, { kid: leakedKid, now: Date.now(), signingAlgorithm: 'ES256' })));
      await stream.end;
      const cut = await auditRecordWithReason(gateway, 'signing key removed');
      assert.equal(cut?.['outcome'], 'server_closed');
    } finally {
      await close();
    }
  });

  it("leaves a session's stream that a fresh token of a newer key kept open, and cuts it with that newer key", { timeout: 10_000 }, async () => {
    const { first, keyring, gateway, close } = await startKeyedGateway();
    const post = async (token: string, headers: Record<string, string> = {}) => {
      const response = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
      await response.text();
      return response;
    };
    try {
      const grant = { aud: `${gateway.url}/mcp`, gid: 'grant-kept' };
      const older = await mintAccessToken(keyring, gateway.url, { ...grant, expiresIn: 60 });
      const session = (await post(older)).headers.get('mcp-session-id') ?? '';
      const stream = await followStream(await fetch(`${gateway.url}/mcp`, { headers: { authorization: `Bearer ${older}`, accept: 'text/event-stream', 'mcp-session-id': session } }));

      // A rotation, and the session's next request with a fresh token of the new key: the stream lives on that token.
      const rotated = rotateKeySet(first, { now: Date.now(), signingAlgorithm: 'ES256' });
      keyring.replaceWith(keyringFromKeySet(rotated));
      const fresh = await mintAccessToken(keyring, gateway.url, { ...grant, expiresIn: 600 });
      assert.equal((await post(fresh, { 'mcp-session-id': session })).status, 200);

      // The old key retired and pruned, as a routine rotation does once its tokens expired: the stream goes on.
      keyring.replaceWith(keyringFromKeySet(revokeKeyFromSet(rotated, { kid: first.signingKeys[0]!.kid, now: Date.now(), signingAlgorithm: 'ES256' })));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(stream.ended(), false, 'cut with the key of a token it no longer lives on');

      // The key of the token it lives on leaves: it is cut.
      const again = rotateKeySet(rotated, { now: Date.now(), signingAlgorithm: 'ES256' });
      keyring.replaceWith(keyringFromKeySet(revokeKeyFromSet(again, { kid: decodeProtectedHeader(fresh).kid!, now: Date.now(), signingAlgorithm: 'ES256' })));
      await stream.end;
    } finally {
      await close();
    }
  });
});
