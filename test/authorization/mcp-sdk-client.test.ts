import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { auth, type OAuthClientProvider } from '@modelcontextprotocol/client';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { buildProtectedResourceMetadata, PRM_PATH } from '../../src/proxy/protected-resource-metadata.ts';
import { CLIENT_REDIRECT, consentForm, startAuthorizationServer, TestBrowser, type TestServer } from './harness.ts';

type Tokens = Awaited<ReturnType<OAuthClientProvider['tokens']>>;
type ClientInformation = Awaited<ReturnType<OAuthClientProvider['clientInformation']>>;

/** An MCP client's OAuth as the reference SDK (v2) implements it: discovery, DCR, PKCE, resource, iss check, refresh. */
function sdkProvider() {
  const state: { info?: ClientInformation; tokens?: Tokens; verifier?: string; authorizationUrl?: URL } = {};
  const provider: OAuthClientProvider = {
    get redirectUrl() {
      return CLIENT_REDIRECT;
    },
    get clientMetadata() {
      return {
        client_name: 'SDK Test Client',
        redirect_uris: [CLIENT_REDIRECT],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      };
    },
    clientInformation: () => state.info,
    saveClientInformation: (info) => {
      state.info = info;
    },
    tokens: () => state.tokens,
    saveTokens: (tokens) => {
      state.tokens = tokens;
    },
    redirectToAuthorization: (url) => {
      state.authorizationUrl = url;
    },
    saveCodeVerifier: (verifier) => {
      state.verifier = verifier;
    },
    codeVerifier: () => state.verifier ?? '',
  };
  return { provider, state };
}

describe('a real MCP SDK client (v2) against the authorization server', () => {
  let server: TestServer;
  before(async () => {
    server = await startAuthorizationServer({
      deps: {},
    });
    const route = server.ctx.config.routes[0];
    assert.ok(route);
    const document = buildProtectedResourceMetadata(server.publicUrl, route);
    // The MCP proxy serves this document in the gateway; here the test serves it next to the authorization server.
    server.app.server.prependListener('request', (request, response) => {
      if (request.url === `${PRM_PATH}${route.path}` || request.url === PRM_PATH) {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(document));
      }
    });
  });
  after(async () => {
    await server.close();
  });

  it('discovers, registers, authorizes through consent, gets a token for the route and refreshes it', async () => {
    const { provider, state } = sdkProvider();
    const first = await auth(provider, { serverUrl: server.resource });
    assert.equal(first, 'REDIRECT');
    assert.ok(state.info?.client_id, 'the SDK registered dynamically');
    const authorizationUrl = state.authorizationUrl;
    assert.ok(authorizationUrl);
    assert.equal(authorizationUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authorizationUrl.searchParams.get('resource'), server.resource);

    const browser = new TestBrowser();
    const page = await browser.follow(authorizationUrl.href, server.publicUrl);
    const form = consentForm(await page.response.text());
    assert.ok(form.csrf, 'the consent page is shown to the user first');
    const approved = await browser.request(new URL(form.action, server.publicUrl).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.publicUrl },
      body: new URLSearchParams({ consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' }).toString(),
    });
    const back = await browser.follow(new URL(approved.headers.get('location') ?? '', server.publicUrl).href, server.publicUrl);
    const callback = new URL(back.url);
    const code = callback.searchParams.get('code');
    assert.ok(code, back.url);

    const second = await auth(provider, {
      serverUrl: server.resource,
      authorizationCode: code,
      iss: callback.searchParams.get('iss') ?? undefined,
    });
    assert.equal(second, 'AUTHORIZED');
    const tokens = state.tokens;
    assert.ok(tokens?.access_token && tokens.refresh_token);
    const jwks = createLocalJWKSet(server.ctx.keyring.publicJwks());
    const { payload } = await jwtVerify(tokens.access_token, jwks, { issuer: server.publicUrl, audience: server.resource });
    assert.equal(payload.client_id, state.info?.client_id);

    const previousRefresh = tokens.refresh_token;
    const third = await auth(provider, { serverUrl: server.resource });
    assert.equal(third, 'AUTHORIZED');
    assert.notEqual(state.tokens?.refresh_token, previousRefresh, 'the SDK refreshed and received a rotated refresh token');
  });
});
