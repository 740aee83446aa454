import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  authorize,
  authorizationParams,
  exchangeCode,
  pkcePair,
  registerClient,
  startAuthorizationServer,
  TestBrowser,
  tokenRequest,
  CLIENT_REDIRECT,
  type RegisteredClient,
  type TestServer,
} from './harness.ts';

/**
 * MCP "Step-Up Authorization Flow": a client refused with `insufficient_scope` authorizes again for the scopes the
 * challenge names. The MCP SDKs register with the scope of their first 401, and oidc-provider held every client to
 * its registered `scope`: the second authorization was redirected with `invalid_scope` before any page was shown, so
 * such a client could never step up.
 */
describe('a client registered with the scope of its first challenge', () => {
  let server: TestServer;
  let client: RegisteredClient;

  before(async () => {
    server = await startAuthorizationServer({
      routes: [{ path: '/mcp', backend: 'http://127.0.0.1:9/', scopes: { 'mcp:tools': 'Use the tools', 'mcp:admin': 'Administer the server' } }],
    });
    const response = await registerClient(server, {
      client_name: 'SDK-like client',
      redirect_uris: [CLIENT_REDIRECT],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'mcp:tools',
    });
    assert.equal(response.status, 201);
    client = (await response.json()) as RegisteredClient;
  });
  after(async () => {
    await server?.close();
  });

  async function tokensFor(browser: TestBrowser, scope: string): Promise<{ scope: string; refresh_token: string }> {
    const { verifier, challenge } = pkcePair();
    const outcome = await authorize(server, browser, authorizationParams(server, client.client_id, challenge, { scope }));
    const code = outcome.url.searchParams.get('code');
    assert.ok(code, `a code, not ${outcome.url.search}`);
    const response = await exchangeCode(server, client, code, verifier);
    assert.equal(response.status, 200);
    return (await response.json()) as { scope: string; refresh_token: string };
  }

  it('is not held to it: a step-up for more of the route\'s scopes is asked of the user and granted', async () => {
    const browser = new TestBrowser();
    const first = await tokensFor(browser, 'mcp:tools');
    assert.equal(first.scope, 'mcp:tools');
    const stepped = await tokensFor(browser, 'mcp:tools mcp:admin');
    assert.deepEqual(stepped.scope.split(' ').sort(), ['mcp:admin', 'mcp:tools']);
    // And a refresh keeps what was granted.
    const refreshed = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: stepped.refresh_token, client_id: client.client_id, resource: server.resource });
    assert.equal(refreshed.status, 200);
    assert.deepEqual(((await refreshed.json()) as { scope: string }).scope.split(' ').sort(), ['mcp:admin', 'mcp:tools']);
  });

  it('still cannot get a scope no route offers: an unknown one is dropped, as before', async () => {
    const tokens = await tokensFor(new TestBrowser(), 'mcp:tools mail:send');
    assert.equal(tokens.scope, 'mcp:tools');
  });
});
