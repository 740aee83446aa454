import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  authorize,
  authorizationParams,
  authorizeUrl,
  CLIENT_REDIRECT,
  pkcePair,
  registerPublicClient,
  startAuthorizationServer,
  TestBrowser,
  tokenRequest,
  type AuthorizationOutcome,
  type RegisteredClient,
} from './harness.ts';
import { startedForSuite } from '../support/suite-server.ts';

/**
 * An authorization request naming a scope of another route than its `resource`. Every route's scopes are scopes of
 * the provider (provider-configuration.ts), so such a scope stayed on the request the provider checks the grant
 * against, while the consent page (and so the grant) held only the resource's own: after every approval the provider
 * asked for consent again, the remembered approval answered, and the browser went round `/authorize/:uid` →
 * `/interaction/<new uid>` for ever, the client never answered. Now the scope is dropped before consent, as an
 * unknown one is (RFC 6749 §3.3 lets the server issue fewer), and a provider asking again for what it was just given
 * ends the request with an error to the client instead of another round.
 */
describe('a scope of another route than the request\'s resource', () => {
  const server = startedForSuite(() =>
    startAuthorizationServer({
      routes: [
        // As in the demo configuration: an MCP route and a plain HTTP route sharing one scope.
        { path: '/mcp', backend: 'http://127.0.0.1:9/', scopes: { 'mcp:tools': 'Use the MCP tools', 'graph:read': 'Read the graph through MCP' }, requiredScopes: ['mcp:tools', 'graph:read'] },
        { path: '/graph', type: 'http', backend: 'http://127.0.0.1:9/', scopes: { 'graph:read': 'Read the graph' }, requiredScopes: ['graph:read'] },
      ],
    }),
  );
  const graph = () => `${server.publicUrl}/graph`;

  /** The request ends at the client's redirect URI (within the harness's bound of 20 redirects a leg), not in a loop. */
  function assertAnswered(outcome: AuthorizationOutcome): URL {
    assert.equal(outcome.url.origin + outcome.url.pathname, CLIENT_REDIRECT, `the client is answered, not ${outcome.url.href}`);
    assert.equal(outcome.url.searchParams.get('iss'), server.publicUrl);
    return outcome.url;
  }

  async function grantedScope(client: RegisteredClient, browser: TestBrowser, scope: string, extra: Record<string, string> = {}): Promise<string> {
    const { verifier, challenge } = pkcePair();
    const outcome = await authorize(server, browser, authorizationParams({ resource: graph() }, client.client_id, challenge, { scope, ...extra }));
    const code = assertAnswered(outcome).searchParams.get('code');
    assert.ok(code, `a code, not ${outcome.url.search}`);
    const response = await tokenRequest(server, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id: client.client_id, resource: graph() });
    assert.equal(response.status, 200, await response.clone().text());
    return ((await response.json()) as { scope: string }).scope;
  }

  for (const scope of ['mcp:tools', 'graph:read mcp:tools']) {
    it(`drops it before consent and completes with the resource's own scopes (scope=${scope})`, async () => {
      const client = await registerPublicClient(server);
      const browser = new TestBrowser();
      const { challenge } = pkcePair();
      const page = await browser.follow(authorizeUrl(server, authorizationParams({ resource: graph() }, client.client_id, challenge, { scope })), server.publicUrl);
      assert.equal(page.response.status, 200);
      const html = await page.response.text();
      assert.match(html, /Read the graph/);
      assert.doesNotMatch(html, /Use the MCP tools/, 'the page shows only what the resource offers');

      assert.equal(await grantedScope(client, browser, scope), 'graph:read');
      // Again in the same browser: the remembered approval and the session answer without a page, and still end.
      assert.equal(await grantedScope(client, browser, scope), 'graph:read');
      // And with `prompt=consent`, which asks the user again whatever is remembered.
      assert.equal(await grantedScope(client, browser, scope, { prompt: 'consent' }), 'graph:read');
      // And with the remembered approval but no session, the user known only after the (silent) IdP sign-in.
      for (const key of browser.cookies.keys()) if (key.includes('gatehouse-session')) browser.cookies.delete(key);
      assert.equal(await grantedScope(client, browser, scope), 'graph:read');
    });
  }

  it('ends with server_error at the client when the provider asks again for consent it was just given', async () => {
    // Whatever makes the grant fall short of what the provider checks (here: no request-level scopes are recorded),
    // the browser must not go round again with the remembered approval.
    const grantPrototype = (server.provider.Grant as unknown as { prototype: { addOIDCScope: (scope: string) => void } }).prototype;
    const original = grantPrototype.addOIDCScope;
    grantPrototype.addOIDCScope = () => undefined;
    try {
      const client = await registerPublicClient(server);
      const browser = new TestBrowser();
      const { challenge } = pkcePair();
      const signInsBefore = server.upstream.signIns;
      const outcome = await authorize(server, browser, authorizationParams(server, client.client_id, challenge, { state: 'loop-state' }));
      const url = assertAnswered(outcome);
      assert.equal(url.searchParams.get('error'), 'server_error');
      assert.equal(url.searchParams.get('state'), 'loop-state');
      assert.equal(url.searchParams.get('code'), null);
      assert.equal(server.upstream.signIns, signInsBefore + 1, 'one sign-in, no second round');
      assert.ok(server.logs.lines().some((line) => line.msg === 'the provider asked again for what it was just given; ending the request'));
    } finally {
      grantPrototype.addOIDCScope = original;
    }
  });
});
