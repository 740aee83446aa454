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
});
