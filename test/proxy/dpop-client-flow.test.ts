import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { authorize, CLIENT_REDIRECT, registerPublicClient, startAuthorizationServer, TestBrowser, type TestServer } from '../authorization/harness.ts';
import { startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * DPoP end to end with a maintained client, openid-client (on oauth4webapi): authorization code + PKCE with a DPoP
 * proof at the token endpoint, calls through the gateway with a proof per request (also on a route that requires
 * nonces, which the client learns from the `use_dpop_nonce` challenge), and a refresh bound to the same key.
 *
 * The gateway is a replica behind the authorization server's public URL, as behind a load balancer: the client
 * calls the public URL (what its proofs' `htu` names) and its fetch is routed to the replica's listener.
 */
let server: TestServer;
let gateway: TestGateway;
let backend: McpBackend;
let config: oidc.Configuration;

before(async () => {
  backend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
  const routes = [
    { path: '/mcp', backend: backend.url, scopes: { 'mcp:tools': 'Use the tools of the test server' }, dpop: 'required' },
    { path: '/mcp/nonce', backend: backend.url, dpop: 'required', dpopNonce: true },
  ];
  server = await startAuthorizationServer({ routes });
  gateway = await startTestGateway({ keyring: server.ctx.keyring, store: server.store, publicUrl: server.publicUrl, config: { routes } });
  const client = await registerPublicClient(server);
  config = await oidc.discovery(new URL(server.publicUrl), client.client_id, { token_endpoint_auth_method: 'none' }, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
  const routeUrls = `${server.publicUrl}/mcp`;
  config[oidc.customFetch] = (url, options) => fetch(url.startsWith(routeUrls) ? gateway.url + url.slice(server.publicUrl.length) : url, options);
});
after(async () => {
  await gateway?.close();
  await server?.close();
  await backend?.close();
});

/** Authorization with PKCE for the route at `path`, up to the redirect carrying the code. */
async function authorizeFor(path: string) {
  const resource = server.publicUrl + path;
  const verifier = oidc.randomPKCECodeVerifier();
  const authorizationUrl = oidc.buildAuthorizationUrl(config, {
    redirect_uri: CLIENT_REDIRECT,
    scope: 'mcp:tools',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    resource,
  });
  const outcome = await authorize(server, new TestBrowser(), Object.fromEntries(authorizationUrl.searchParams));
  return { resource, verifier, redirect: outcome.url };
}

async function signIn(dpop: oidc.DPoPHandle, path = '/mcp') {
  const { resource, verifier, redirect } = await authorizeFor(path);
  return oidc.authorizationCodeGrant(config, redirect, { pkceCodeVerifier: verifier }, { resource }, { DPoP: dpop });
}

const callTool = (accessToken: string, dpop: oidc.DPoPHandle, path = '/mcp') =>
  oidc.fetchProtectedResource(
    config,
    accessToken,
    new URL(server.publicUrl + path),
    'POST',
    JSON.stringify(toolsCall('echo', { text: 'bound' })),
    new Headers({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' }),
    { DPoP: dpop },
  );

describe('openid-client with DPoP: token endpoint → gateway → refresh', () => {
  it('gets a DPoP-bound token, calls the gateway with proofs, and refreshes with the same key', async () => {
    const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const tokens = await signIn(dpop);
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
    assert.ok(tokens.refresh_token);

    const first = await callTool(tokens.access_token, dpop);
    assert.equal(first.status, 200, await first.clone().text());
    assert.match(await first.text(), /bound/);
    // Each call carries a new proof (new jti): a second call is not a replay.
    const second = await callTool(tokens.access_token, dpop);
    assert.equal(second.status, 200);
    await second.body?.cancel();

    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token, { resource: `${server.publicUrl}/mcp` }, { DPoP: dpop });
    assert.equal(refreshed.token_type.toLowerCase(), 'dpop');
    const afterRefresh = await callTool(refreshed.access_token, dpop);
    assert.equal(afterRefresh.status, 200);
    await afterRefresh.body?.cancel();
  });

  it('answers the nonce challenge of a route with dpopNonce, which the client retries with by itself', async () => {
    const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const tokens = await signIn(dpop, '/mcp/nonce');
    const response = await callTool(tokens.access_token, dpop, '/mcp/nonce');
    assert.equal(response.status, 200, await response.clone().text());
    await response.body?.cancel();

    // The client keeps one nonce per origin (RFC 9449 §8: per server), and the token endpoint shares the route's
    // origin: its refresh proof carries the route's nonce, which the token endpoint must take (it refused every
    // nonce, so such a client could never refresh), and the route the nonce the token endpoint answered with.
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: `${server.publicUrl}/mcp/nonce` }, { DPoP: dpop });
    assert.equal(refreshed.token_type.toLowerCase(), 'dpop');
    const afterRefresh = await callTool(refreshed.access_token, dpop, '/mcp/nonce');
    assert.equal(afterRefresh.status, 200, await afterRefresh.clone().text());
    await afterRefresh.body?.cancel();
    const again = await oidc.refreshTokenGrant(config, refreshed.refresh_token!, { resource: `${server.publicUrl}/mcp/nonce` }, { DPoP: dpop });
    assert.equal(again.token_type.toLowerCase(), 'dpop');
  });

  it('sends no request twice for a nonce: the token endpoint and the routes take the same nonces', async () => {
    const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const tokens = await signIn(dpop, '/mcp/nonce');
    const sent: string[] = [];
    const routed = config[oidc.customFetch]!;
    config[oidc.customFetch] = (url, options) => {
      sent.push(new URL(url).pathname);
      return routed(url, options);
    };
    try {
      const first = await callTool(tokens.access_token, dpop, '/mcp/nonce');
      await first.body?.cancel();
      const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!, { resource: `${server.publicUrl}/mcp/nonce` }, { DPoP: dpop });
      const second = await callTool(refreshed.access_token, dpop, '/mcp/nonce');
      await second.body?.cancel();
    } finally {
      config[oidc.customFetch] = routed;
    }
    // The token endpoint handed out the nonce with the tokens, so not even the first call is retried.
    assert.deepEqual(sent, ['/mcp/nonce', '/token', '/mcp/nonce']);
  });

  it('refuses a token request without a proof for a DPoP-only route, before the code is spent: the retry with a proof works', async () => {
    const { resource, verifier, redirect } = await authorizeFor('/mcp');
    const code = redirect.searchParams.get('code') ?? '';
    // An empty `DPoP:` header is no proof either.
    const bearer = await fetch(`${server.publicUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: '' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id: config.clientMetadata().client_id, resource }),
    });
    assert.equal(bearer.status, 400);
    const refusal = (await bearer.json()) as { error: string; error_description: string };
    assert.equal(refusal.error, 'invalid_request');
    assert.match(refusal.error_description, /only DPoP-bound access tokens/);
    const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const tokens = await oidc.authorizationCodeGrant(config, redirect, { pkceCodeVerifier: verifier }, { resource }, { DPoP: dpop });
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  });

  it('refuses it too when the token request names no resource (the one granted at /authorize), and a refresh without a proof', async () => {
    const { verifier, redirect } = await authorizeFor('/mcp');
    const code = redirect.searchParams.get('code') ?? '';
    const client_id = config.clientMetadata().client_id;
    const bearer = await fetch(`${server.publicUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id }),
    });
    assert.equal(bearer.status, 400);
    assert.match(((await bearer.json()) as { error_description: string }).error_description, /only DPoP-bound access tokens/);
    // The code was not spent: the same request with a proof gets the tokens.
    const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const tokens = await oidc.authorizationCodeGrant(config, redirect, { pkceCodeVerifier: verifier }, {}, { DPoP: dpop });
    assert.equal(tokens.token_type.toLowerCase(), 'dpop');
    const refresh = await fetch(`${server.publicUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token ?? '', client_id }),
    });
    assert.equal(refresh.status, 400);
    assert.match(((await refresh.json()) as { error_description: string }).error_description, /only DPoP-bound access tokens/);
  });

  it('refuses the bound token without its key: another client key, or as a Bearer token', async () => {
    const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const tokens = await signIn(dpop);
    const thief = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    // oauth4webapi parses the gateway's challenge: scheme DPoP, the error, the algorithms it accepts.
    const challengeOf = (error: unknown) => (error as { cause?: Array<{ scheme: string; parameters: Record<string, string> }> }).cause ?? [];
    await assert.rejects(callTool(tokens.access_token, thief), (error: unknown) => {
      const [challenge] = challengeOf(error);
      assert.equal(challenge?.scheme, 'dpop');
      assert.equal(challenge?.parameters.error, 'invalid_dpop_proof');
      assert.match(challenge?.parameters.algs ?? '', /ES256/);
      return true;
    });
    const asBearer = oidc.fetchProtectedResource(config, tokens.access_token, new URL(`${server.publicUrl}/mcp`), 'POST', JSON.stringify(toolsCall('echo')));
    await assert.rejects(asBearer, (error: unknown) => {
      assert.deepEqual(challengeOf(error).map((c) => [c.scheme, c.parameters.error]), [['dpop', 'invalid_token']]);
      return true;
    });
    await assert.rejects(oidc.refreshTokenGrant(config, tokens.refresh_token!, {}, { DPoP: thief }), (error: unknown) => {
      assert.equal((error as { error?: string }).error, 'invalid_grant');
      return true;
    });
  });
});
