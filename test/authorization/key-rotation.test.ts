import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { generateKeySet, generateSigningKey } from '../../src/keys/key-set.ts';
import { obtainTokens, registerPublicClient, startAuthorizationServer, swappableKeyring, tokenRequest, type TestServer } from './harness.ts';

describe('signing-key rotation', () => {
  const now = Date.now();
  const first = generateKeySet({ now, signingAlgorithm: 'ES256' });
  const keyring = swappableKeyring(first);
  let server: TestServer;

  before(async () => {
    server = await startAuthorizationServer({ keyring });
  });
  after(async () => {
    await server.close();
  });

  it('signs new tokens with the new current key and publishes it at once, while old refresh tokens keep working', async () => {
    const client = await registerPublicClient(server);
    const before = await obtainTokens(server, client);
    const oldKid = first.signingKeys[0]?.kid;
    assert.equal(decodeProtectedHeader(before.access_token).kid, oldKid);

    const rotatedKey = generateSigningKey({ now: now + 1, signingAlgorithm: 'ES256' });
    const retired = first.signingKeys.map((key) => ({ ...key, retiredAt: now + 1 }));
    keyring.swap({ ...first, signingKeys: [...retired, rotatedKey] });

    const jwks = (await (await fetch(`${server.publicUrl}/jwks`)).json()) as { keys: Array<{ kid: string }> };
    assert.deepEqual(jwks.keys.map((key) => key.kid).sort(), [oldKid, rotatedKey.kid].sort());

    const refreshed = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: before.refresh_token, client_id: client.client_id });
    assert.equal(refreshed.status, 200, 'grants and refresh tokens survive the provider rebuild');
    const after = (await refreshed.json()) as { access_token: string };
    assert.equal(decodeProtectedHeader(after.access_token).kid, rotatedKey.kid);
  });

  it('keeps clients registered before a rotation to another algorithm working, before and after the old keys are pruned', async () => {
    // Registration stores id_token_signed_response_alg (the current key's): accepting only the current algorithm
    // made every such client's metadata invalid after a rotation to EdDSA — 400 invalid_client_metadata on refresh.
    keyring.swap(generateKeySet({ now, signingAlgorithm: 'ES256' }));
    const client = await registerPublicClient(server);
    const before = await obtainTokens(server, client);
    const es256 = generateKeySet({ now, signingAlgorithm: 'ES256' });
    const eddsa = generateSigningKey({ now: now + 2, signingAlgorithm: 'EdDSA' });
    keyring.swap({ ...es256, signingKeys: [...es256.signingKeys.map((key) => ({ ...key, retiredAt: now + 2 })), eddsa] });
    const refreshed = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: before.refresh_token, client_id: client.client_id });
    assert.equal(refreshed.status, 200, await refreshed.clone().text());
    const next = (await refreshed.json()) as { access_token: string; refresh_token: string };
    assert.equal(decodeProtectedHeader(next.access_token).alg, 'EdDSA');
    // The ES256 keys pruned: the stored algorithm has no key left, and the client is read with the current one.
    keyring.swap({ ...es256, signingKeys: [eddsa] });
    const again = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: next.refresh_token, client_id: client.client_id });
    assert.equal(again.status, 200, await again.clone().text());
    await again.body?.cancel();
  });
});
