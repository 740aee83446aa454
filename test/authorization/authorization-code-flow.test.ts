import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import { generateKeySet } from '../../src/keys/key-set.ts';
import {
  authorize,
  CLIENT_REDIRECT,
  pkcePair,
  registerPublicClient,
  startAuthorizationServer,
  TEST_IDENTITY,
  TestBrowser,
  tokenRequest,
  authorizationParams,
} from './harness.ts';
import { startedForSuite } from '../support/suite-server.ts';

for (const signingAlgorithm of ['ES256', 'EdDSA'] as const) describe(`authorization code flow with consent and upstream sign-in (${signingAlgorithm})`, () => {
  const server = startedForSuite(() => startAuthorizationServer({ keyring: keyringFromKeySet(generateKeySet({ now: Date.now(), signingAlgorithm })) }));

  it('issues an RFC 9068 access token for the route resource, a rotating refresh token, and the account record', async () => {
    const client = await registerPublicClient(server);
    const browser = new TestBrowser();
    const { verifier, challenge } = pkcePair();
    const outcome = await authorize(server, browser, authorizationParams(server, client.client_id, challenge, { state: 'client-state-1' }));
    assert.equal(outcome.url.origin + outcome.url.pathname, CLIENT_REDIRECT);
    assert.equal(outcome.url.searchParams.get('iss'), server.publicUrl);
    assert.equal(outcome.url.searchParams.get('state'), 'client-state-1');
    const code = outcome.url.searchParams.get('code');
    assert.ok(code, `expected a code, got ${outcome.url.href}`);

    const response = await tokenRequest(server, {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: CLIENT_REDIRECT,
      client_id: client.client_id,
      resource: server.resource,
    });
    assert.equal(response.status, 200, await response.clone().text());
    assert.match(response.headers.get('cache-control') ?? '', /no-store/);
    const tokens = (await response.json()) as { access_token: string; refresh_token?: string; token_type: string; expires_in: number };
    assert.equal(tokens.token_type, 'Bearer');
    assert.equal(tokens.expires_in, 600);
    assert.ok(tokens.refresh_token, 'MCP clients get a refresh token without asking for offline_access');

    const header = decodeProtectedHeader(tokens.access_token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, signingAlgorithm);
    assert.equal(header.kid, server.ctx.keyring.currentSigningKey().kid);
    const jwks = createLocalJWKSet(server.ctx.keyring.publicJwks());
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: server.publicUrl, audience: server.resource, typ: 'at+jwt' });
    assert.equal(payload.sub, TEST_IDENTITY.subject);
    assert.equal(payload.client_id, client.client_id);
    assert.equal(payload.scope, 'mcp:tools');
    assert.equal(typeof payload.gid, 'string');
    assert.equal(typeof payload.jti, 'string');

    const account = await server.store.get<{ subject: string; email: string; groups: string[] }>('account', TEST_IDENTITY.subject);
    assert.equal(account?.email, TEST_IDENTITY.email);
    assert.deepEqual(account?.groups, TEST_IDENTITY.groups);
    const sealed = await server.store.get<{ sealed: string }>('upstream-tokens', TEST_IDENTITY.subject);
    assert.ok(sealed, 'upstream tokens are stored');
    assert.ok(!JSON.stringify(sealed).includes('upstream-access-token-value'), 'upstream tokens are sealed, not stored in clear');

    const refreshed = await tokenRequest(server, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token,
      client_id: client.client_id,
    });
    assert.equal(refreshed.status, 200, await refreshed.clone().text());
    const rotated = (await refreshed.json()) as { access_token: string; refresh_token: string };
    assert.notEqual(rotated.refresh_token, tokens.refresh_token, 'refresh tokens rotate');
    const again = await jwtVerify(rotated.access_token, jwks, { issuer: server.publicUrl, audience: server.resource });
    assert.equal(again.payload.gid, payload.gid);
  });
});
