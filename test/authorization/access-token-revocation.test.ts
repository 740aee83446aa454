import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { REVOKED_GRANT_NAMESPACE } from '../../src/grants/revoked-grants.ts';
import { createTestKeyring, mintAccessToken, startTestGateway, type TestGateway } from '../proxy/harness.ts';
import {
  grantIdOf,
  obtainTokens,
  registerPublicClient,
  startAuthorizationServer,
  tokenRequest,
  type RegisteredClient,
  type TestServer,
  CONFIDENTIAL_CLIENT,
  confidentialClientConfig,
  basicAuthorization,
} from './harness.ts';

/**
 * RFC 7009 revocation of a JWT access token: it ends the token's grant (refresh tokens dead, every gateway replica
 * refuses the access token) when the token is ours and belongs to the calling client; anything else is a 200 that
 * changes nothing (RFC 7009 §2.2).
 */

describe('revoking a JWT access token (RFC 7009)', () => {
  let server: TestServer;
  let gateway: TestGateway;
  let backend: Server;
  let alice: RegisteredClient;
  let mallory: RegisteredClient;

  before(async () => {
    server = await startAuthorizationServer({
      authorization: { clients: [confidentialClientConfig] },
    });
    backend = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('backend reached'));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    // A gateway sharing the authorization server's store, keys and public URL (the token audience), as a replica would.
    gateway = await startTestGateway({
      store: server.store,
      keyring: server.ctx.keyring,
      publicUrl: server.publicUrl,
      config: { routes: [{ path: '/mcp', type: 'http', backend: `http://127.0.0.1:${(backend.address() as AddressInfo).port}` }] },
    });
    alice = await registerPublicClient(server, { client_name: 'Alice’s client' });
    mallory = await registerPublicClient(server, { client_name: 'Mallory’s client' });
  });
  after(async () => {
    await gateway?.close();
    backend?.closeAllConnections();
    await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
    await server?.close();
  });

  const revoke = (params: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${server.publicUrl}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(params).toString(),
    });
  const refresh = (client: RegisteredClient, refreshToken: string) =>
    tokenRequest(server, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
  const isRevoked = async (gid: string) => (await server.store.get(REVOKED_GRANT_NAMESPACE, gid)) !== undefined;
  /** Status of a gateway request with this bearer, after the replica re-read the revocations (no waiting on pub/sub). */
  const gatewayStatus = async (accessToken: string) => {
    await gateway.revokedGrants.resync();
    const response = await fetch(`${gateway.url}/mcp/resource`, { headers: { authorization: `Bearer ${accessToken}` } });
    await response.body?.cancel();
    return response.status;
  };

  it('ends the grant: 200, the refresh token fails invalid_grant, the gateway refuses the access token', async () => {
    const tokens = await obtainTokens(server, alice);
    assert.equal(await gatewayStatus(tokens.access_token), 200, 'the token works before');

    const response = await revoke({ token: tokens.access_token, client_id: alice.client_id });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '');
    assert.equal(response.headers.get('content-type')?.includes('json') ?? false, false, 'an empty 200, not a JSON error');

    assert.equal(await isRevoked(grantIdOf(tokens.access_token)), true);
    assert.equal(await server.provider.Grant.find(grantIdOf(tokens.access_token)), undefined, 'the grant itself is gone');
    const refreshed = await refresh(alice, tokens.refresh_token);
    assert.equal(refreshed.status, 400);
    assert.equal(((await refreshed.json()) as { error: string }).error, 'invalid_grant');
    assert.equal(await gatewayStatus(tokens.access_token), 401);
  });

  it('does not revoke another client’s access token, and still answers 200', async () => {
    const tokens = await obtainTokens(server, alice);
    const response = await revoke({ token: tokens.access_token, client_id: mallory.client_id });
    assert.equal(response.status, 200);
    await response.body?.cancel();
    assert.equal(await isRevoked(grantIdOf(tokens.access_token)), false);
    assert.equal(await gatewayStatus(tokens.access_token), 200);
    const refreshed = await refresh(alice, tokens.refresh_token);
    assert.equal(refreshed.status, 200, 'the owner’s grant is intact');
    await refreshed.body?.cancel();
  });

  it('answers 200 and revokes nothing for malformed, forged, foreign or non-access tokens', async () => {
    const tokens = await obtainTokens(server, alice);
    const gid = grantIdOf(tokens.access_token);
    const forge = (options: { keyring?: ReturnType<typeof createTestKeyring>; typ?: string; issuer?: string }) =>
      mintAccessToken(options.keyring ?? server.ctx.keyring, server.publicUrl, {
        aud: server.resource,
        clientId: alice.client_id,
        gid,
        typ: options.typ,
        issuer: options.issuer,
      });
    const [header, payload] = tokens.access_token.split('.');
    const candidates: Record<string, string> = {
      'not a JWT': 'not-a-token',
      'JWT-shaped garbage': 'eyJhbGciOiJFUzI1NiJ9.e30.AAAA',
      'unsigned (alg none)': `${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${payload}.`,
      'signature stripped': `${header}.${payload}.`,
      'signed by another key': await forge({ keyring: createTestKeyring() }),
      'not an access token (typ JWT)': await forge({ typ: 'JWT' }),
      'another issuer': await forge({ issuer: 'https://elsewhere.example' }),
    };
    for (const [label, token] of Object.entries(candidates)) {
      const response = await revoke({ token, client_id: alice.client_id });
      assert.equal(response.status, 200, label);
      await response.body?.cancel();
      assert.equal(await isRevoked(gid), false, label);
    }
    const refreshed = await refresh(alice, tokens.refresh_token);
    assert.equal(refreshed.status, 200, 'the grant named by the forgeries is intact');
    await refreshed.body?.cancel();
  });

  for (const hint of ['access_token', 'refresh_token', 'urn:ietf:params:oauth:token-type:access_token', 'something_else']) {
    it(`revokes with token_type_hint=${hint} (a wrong hint only widens the search, RFC 7009 §2.1)`, async () => {
      const tokens = await obtainTokens(server, alice);
      const response = await revoke({ token: tokens.access_token, token_type_hint: hint, client_id: alice.client_id });
      assert.equal(response.status, 200);
      await response.body?.cancel();
      assert.equal(await isRevoked(grantIdOf(tokens.access_token)), true);
    });
  }

  it('answers a client that prefers HTML with the same empty 200', async () => {
    const tokens = await obtainTokens(server, alice);
    const response = await revoke({ token: tokens.access_token, client_id: alice.client_id }, { accept: 'text/html' });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), '');
    assert.equal(await isRevoked(grantIdOf(tokens.access_token)), true);
  });

  it('revokes with an expired access token of ours', async () => {
    const tokens = await obtainTokens(server, alice);
    const gid = grantIdOf(tokens.access_token);
    const expired = await mintAccessToken(server.ctx.keyring, server.publicUrl, { aud: server.resource, clientId: alice.client_id, gid, expiresIn: -3600 });
    const response = await revoke({ token: expired, client_id: alice.client_id });
    assert.equal(response.status, 200);
    await response.body?.cancel();
    assert.equal(await isRevoked(gid), true);
    assert.equal((await refresh(alice, tokens.refresh_token)).status, 400);
  });

  it('authenticates a confidential client as the provider does: a wrong secret is 401 and revokes nothing', async () => {
    const gid = 'grant-of-the-backend-service';
    const token = await mintAccessToken(server.ctx.keyring, server.publicUrl, { aud: server.resource, clientId: CONFIDENTIAL_CLIENT.clientId, gid });
    const basic = (secret: string) => basicAuthorization(CONFIDENTIAL_CLIENT.clientId, secret);

    const refused = await revoke({ token }, { authorization: basic('not-the-secret-value-000000') });
    assert.equal(refused.status, 401);
    assert.equal(((await refused.json()) as { error: string }).error, 'invalid_client');
    assert.equal(await isRevoked(gid), false);

    const unauthenticated = await revoke({ token, client_id: CONFIDENTIAL_CLIENT.clientId });
    assert.equal(unauthenticated.status, 401, 'a confidential client cannot identify with its id alone');
    await unauthenticated.body?.cancel();
    assert.equal(await isRevoked(gid), false);

    const accepted = await revoke({ token }, { authorization: basic(CONFIDENTIAL_CLIENT.clientSecret) });
    assert.equal(accepted.status, 200);
    await accepted.body?.cancel();
    assert.equal(await isRevoked(gid), true);
  });

  it('never logs the revoked token', async () => {
    const tokens = await obtainTokens(server, alice);
    await (await revoke({ token: tokens.access_token, client_id: alice.client_id })).body?.cancel();
    assert.equal(server.logs.text().includes(tokens.access_token), false);
  });
});
