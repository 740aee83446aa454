import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  authorize,
  authorizeUrl,
  CLIENT_REDIRECT,
  pkcePair,
  registerPublicClient,
  startAuthorizationServer,
  TestBrowser,
  tokenRequest,
  type RegisteredClient,
  type TestServer,
  authorizationParams,
} from './harness.ts';

/**
 * Bad authorization requests. Until the client and redirect URI are validated nothing is redirected (an error page
 * instead: no open redirector); after that, errors go back to the client with `iss` (RFC 9207).
 */
describe('authorization endpoint: bad input', () => {
  let server: TestServer;
  let client: RegisteredClient;
  const { challenge } = pkcePair();
  const base = () => authorizationParams(server, client.client_id, challenge, { state: 's1' });

  before(async () => {
    server = await startAuthorizationServer();
    client = await registerPublicClient(server, {
      redirect_uris: [CLIENT_REDIRECT, 'https://app.example.test/oauth/callback'],
    });
  });
  after(async () => {
    await server.close();
  });

  async function expectErrorPage(params: Record<string, string | undefined>, code: RegExp): Promise<void> {
    const response = await fetch(authorizeUrl(server, params), { redirect: 'manual' });
    assert.equal(response.headers.get('location'), null, 'must not redirect before the redirect URI is validated');
    assert.equal(response.status, 400);
    assert.match(response.headers.get('content-type') ?? '', /text\/html/);
    const html = await response.text();
    assert.match(html, code);
    assert.match(response.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
  }

  async function expectRedirectedError(params: Record<string, string | undefined>, error: string): Promise<URL> {
    const response = await fetch(authorizeUrl(server, params), { redirect: 'manual' });
    assert.equal(response.status, 303);
    const location = new URL(response.headers.get('location') ?? '');
    assert.equal(location.origin + location.pathname, params.redirect_uri);
    assert.equal(location.searchParams.get('error'), error);
    assert.equal(location.searchParams.get('iss'), server.publicUrl, 'RFC 9207 iss on error responses too');
    assert.equal(location.searchParams.get('state'), 's1');
    assert.equal(location.searchParams.get('code'), null);
    return location;
  }

  it('shows a page for an unknown client', async () => {
    await expectErrorPage({ ...base(), client_id: 'no-such-client' }, /invalid_client/);
  });

  it('shows a page for an unregistered redirect URI', async () => {
    await expectErrorPage({ ...base(), redirect_uri: 'https://evil.example.test/callback' }, /invalid_redirect_uri/);
  });

  it('shows a page for a redirect URI one character off', async () => {
    await expectErrorPage({ ...base(), redirect_uri: 'https://app.example.test/oauth/callbacK' }, /invalid_redirect_uri/);
    await expectErrorPage({ ...base(), redirect_uri: 'https://app.example.test/oauth/callback/' }, /invalid_redirect_uri/);
  });

  it('shows a page for a non-loopback redirect URI on another port', async () => {
    await expectErrorPage({ ...base(), redirect_uri: 'https://app.example.test:8443/oauth/callback' }, /invalid_redirect_uri/);
  });

  it('accepts a loopback redirect URI on another port (RFC 8252 §7.3) but not another path', async () => {
    const response = await fetch(authorizeUrl(server, { ...base(), redirect_uri: 'http://127.0.0.1:61000/callback' }), { redirect: 'manual' });
    assert.equal(response.status, 303);
    assert.match(response.headers.get('location') ?? '', /\/interaction\//);
    await expectErrorPage({ ...base(), redirect_uri: 'http://127.0.0.1:61000/callbackx' }, /invalid_redirect_uri/);
  });

  const normalisedLoopbackVariants = [
    'http://2130706433:61000/callback',
    'http://127.1:61000/callback',
    'http://127.0.0.1:61000/x/../callback',
    'http://127.0.0.1:61000/callback\t',
    'http://127.0.0.1:61000/callback\n',
    'http://127.0.0.1:61000/%63allback',
    'http://127.0.0.1:61000/callback/.',
  ];
  for (const redirectUri of normalisedLoopbackVariants) {
    it(`shows a page for ${JSON.stringify(redirectUri)}: only the loopback port may differ (RFC 8252 §7.3)`, async () => {
      await expectErrorPage({ ...base(), redirect_uri: redirectUri }, /invalid_redirect_uri/);
    });
  }

  it('refuses a request without PKCE', async () => {
    const location = await expectRedirectedError({ ...base(), code_challenge: undefined, code_challenge_method: undefined }, 'invalid_request');
    assert.match(location.searchParams.get('error_description') ?? '', /PKCE/);
  });

  it('refuses PKCE plain', async () => {
    await expectRedirectedError({ ...base(), code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }, 'invalid_request');
  });

  it('refuses a resource of another server with invalid_target', async () => {
    await expectRedirectedError({ ...base(), resource: 'https://other.example.test/mcp' }, 'invalid_target');
    await expectRedirectedError({ ...base(), resource: `${server.publicUrl}/not-a-route` }, 'invalid_target');
  });

  it('accepts the resource with an upper-case scheme/host or a trailing slash, and issues the canonical audience', async () => {
    const url = new URL(server.resource);
    const variants = [`${url.protocol.toUpperCase()}//${url.host.toUpperCase()}${url.pathname}`, `${server.resource}/`];
    for (const resource of variants) {
      const response = await fetch(authorizeUrl(server, { ...base(), resource }), { redirect: 'manual' });
      assert.equal(response.status, 303);
      assert.match(response.headers.get('location') ?? '', /\/interaction\//, `${resource} is this server's resource`);
    }
    await expectRedirectedError({ ...base(), resource: `${server.resource.toUpperCase().replace('HTTP://', 'http://')}` }, 'invalid_target');
  });

  it('ends the flow for a non-canonical resource: a code for the canonical audience, no redirect loop', async () => {
    const url = new URL(server.resource);
    for (const resource of [`${server.resource}/`, `${url.protocol.toUpperCase()}//${url.host.toUpperCase()}${url.pathname}`]) {
      const { verifier, challenge: pkce } = pkcePair();
      const outcome = await authorize(server, new TestBrowser(), { ...base(), resource, code_challenge: pkce });
      const code = outcome.url.searchParams.get('code');
      assert.ok(code, `expected a code for ${resource}, got ${outcome.url.href}`);
      const response = await tokenRequest(server, {
        grant_type: 'authorization_code',
        code,
        code_verifier: verifier,
        redirect_uri: CLIENT_REDIRECT,
        client_id: client.client_id,
        resource,
      });
      assert.equal(response.status, 200, await response.clone().text());
      const { access_token: token } = (await response.json()) as { access_token: string };
      const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { aud: string };
      assert.equal(payload.aud, server.resource, 'the audience is the canonical resource');
    }
  });

  it('reads a percent-encoded parameter name as the name: `%72esource=` in a non-canonical spelling ends the flow too', async () => {
    // The provider decodes names; the canonicalisation looked for `resource=` in the raw text and missed this one, so
    // the grant held the canonical resource, the request the other, and each approval sent the browser round again.
    const { verifier, challenge: pkce } = pkcePair();
    const { resource: _none, ...withoutResource } = base();
    const spelled = `&%72esource=${encodeURIComponent(`${server.resource}/`)}`;
    const outcome = await authorize(server, new TestBrowser(), { ...withoutResource, code_challenge: pkce }, 'approve', spelled);
    const code = outcome.url.searchParams.get('code');
    assert.ok(code, `expected a code, got ${outcome.url.href}`);
    const body = `${new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id: client.client_id })}${spelled}`;
    const response = await fetch(`${server.publicUrl}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    assert.equal(response.status, 200, await response.clone().text());
    const { access_token: token } = (await response.json()) as { access_token: string };
    assert.equal((JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { aud: string }).aud, server.resource);
  });

  it('redirects two resource indicators to the client as invalid_target, not to a page where the client waits for ever', async () => {
    // RFC 8707 §2, RFC 6749 §4.1.2.1: the client and redirect URI are valid, so the error goes back to the client.
    // Two routes of this gateway: the provider accepts both; one grant per resource is what Gatehouse serves.
    const scopes = { 'mcp:tools': 'Use the tools' };
    const two = await startAuthorizationServer({ routes: [{ path: '/mcp', backend: 'http://127.0.0.1:9/', scopes }, { path: '/other', backend: 'http://127.0.0.1:9/other', scopes }] });
    try {
      const twoClient = await registerPublicClient(two);
      const url = `${authorizeUrl(two, authorizationParams(two, twoClient.client_id, challenge, { state: 's1' }))}&resource=${encodeURIComponent(`${two.publicUrl}/other`)}`;
      const { url: final } = await new TestBrowser().follow(url, two.publicUrl);
      const location = new URL(final);
      assert.equal(location.origin + location.pathname, CLIENT_REDIRECT);
      assert.equal(location.searchParams.get('error'), 'invalid_target');
      assert.equal(location.searchParams.get('state'), 's1');
      assert.equal(location.searchParams.get('iss'), two.publicUrl);
    } finally {
      await two.close();
    }
  });

  it('takes the resource in any spelling of its route at each step: authorized as `…/mcp/`, exchanged and refreshed as others', async () => {
    // oidc-provider compares indicators as strings: a grant approved for `…/mcp/` refused the canonical `…/mcp` at
    // /token, so a client normalising at only one step got no tokens.
    const url = new URL(server.resource);
    const upperHost = `${url.protocol}//${url.host.toUpperCase()}${url.pathname}`;
    const { verifier, challenge: pkce } = pkcePair();
    const outcome = await authorize(server, new TestBrowser(), { ...base(), resource: `${server.resource}/`, code_challenge: pkce });
    const code = outcome.url.searchParams.get('code');
    assert.ok(code, outcome.url.href);
    const exchanged = await tokenRequest(server, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id: client.client_id, resource: server.resource });
    assert.equal(exchanged.status, 200, await exchanged.clone().text());
    const { refresh_token: refreshToken } = (await exchanged.json()) as { refresh_token: string };
    const refreshed = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id, resource: upperHost });
    assert.equal(refreshed.status, 200, await refreshed.clone().text());
    const { access_token: token } = (await refreshed.json()) as { access_token: string };
    assert.equal((JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { aud: string }).aud, server.resource);
  });

  it('keeps refreshing a token stored under another spelling of the resource (written before requests were canonicalized)', async () => {
    // Such a grant and refresh token hold `…/mcp/`; the request now reaches oidc-provider as `…/mcp`, and its string
    // comparison refused the client's next refresh with invalid_target.
    const { verifier, challenge: pkce } = pkcePair();
    const outcome = await authorize(server, new TestBrowser(), { ...base(), code_challenge: pkce });
    const exchanged = await tokenRequest(server, { grant_type: 'authorization_code', code: outcome.url.searchParams.get('code') ?? '', code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id: client.client_id, resource: server.resource });
    assert.equal(exchanged.status, 200);
    const { refresh_token: refreshToken, access_token: accessToken } = (await exchanged.json()) as { refresh_token: string; access_token: string };
    const grantId = (JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as { gid: string }).gid;
    const old = `${server.resource}/`;
    for (const entry of await server.store.list<Record<string, unknown>>('oidc:RefreshToken')) {
      if (entry.value.grantId === grantId) await server.store.set('oidc:RefreshToken', entry.key, { ...entry.value, resource: old }, { ttlSeconds: 3_600 });
    }
    const grant = await server.store.get<Record<string, unknown>>('oidc:Grant', grantId);
    const resources = (grant?.resources ?? {}) as Record<string, string>;
    await server.store.set('oidc:Grant', grantId, { ...grant, resources: { [old]: resources[server.resource] } }, { ttlSeconds: 3_600 });

    // The client sends the spelling it always sent; then the rotated token, with the canonical one.
    const refreshed = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id, resource: old });
    assert.equal(refreshed.status, 200, await refreshed.clone().text());
    const rotated = ((await refreshed.json()) as { refresh_token: string }).refresh_token;
    const again = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: rotated, client_id: client.client_id, resource: server.resource });
    assert.equal(again.status, 200, await again.clone().text());
  });

  it('refuses response types other than code', async () => {
    const response = await fetch(authorizeUrl(server, { ...base(), response_type: 'token' }), { redirect: 'manual' });
    const location = response.headers.get('location') ?? '';
    assert.doesNotMatch(location, /access_token=/);
    assert.match(location, /error=unsupported_response_type/);
  });

  it('defaults the resource to the only route and the scope to its required scopes', async () => {
    const outcome = await authorize(server, new TestBrowser(), { ...base(), resource: undefined, scope: undefined });
    assert.ok(outcome.url.searchParams.get('code'), `expected a code, got ${outcome.url.href}`);
  });
});
