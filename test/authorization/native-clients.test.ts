import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { allowTestHost, startCimdServer, testResolve, type CimdServer } from './cimd-server.ts';
import {
  authorize,
  authorizeUrl,
  exchangeCode,
  pkcePair,
  registerClient,
  startAuthorizationServer,
  TestBrowser,
  type RegisteredClient,
  type TestServer,
  authorizationParams,
} from './harness.ts';

/**
 * Native MCP clients (Cursor, VS Code, …) receive the authorization response on a private-use URI scheme
 * (RFC 8252 §7.1): registered by DCR or named in a CIMD document, matched exactly, shown on the consent page as the
 * scheme and authority (there is no web host), never verified unless the operator allow-listed the CIMD domain.
 */
const CURSOR_REDIRECT = 'cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback';

const cursorMetadata = {
  client_name: 'Cursor',
  redirect_uris: [CURSOR_REDIRECT],
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
};

/** An ordinary authorization request (the harness's), sent back to the native client's private-use scheme. */
function nativeAuthorizationParams(server: TestServer, clientId: string, challenge: string, redirectUri = CURSOR_REDIRECT) {
  return authorizationParams(server, clientId, challenge, { redirect_uri: redirectUri, state: 'native-state' });
}

describe('native clients with a private-use redirect URI, registered dynamically', () => {
  let server: TestServer;
  let client: RegisteredClient;
  before(async () => {
    server = await startAuthorizationServer();
    const response = await registerClient(server, cursorMetadata);
    assert.equal(response.status, 201, await response.clone().text());
    client = (await response.json()) as RegisteredClient;
  });
  after(async () => {
    await server.close();
  });

  it('registers them as native clients with the redirect URI exactly as sent', () => {
    assert.deepEqual(client.redirect_uris, [CURSOR_REDIRECT]);
    assert.equal(client.application_type, 'native');
  });

  it('shows the scheme and authority on the consent page, unverified, and lets the form redirect to the app', async () => {
    const { challenge } = pkcePair();
    const { response } = await new TestBrowser().follow(authorizeUrl(server, nativeAuthorizationParams(server, client.client_id, challenge)), server.publicUrl);
    assert.equal(response.status, 200);
    const html = await response.text();
    assert.match(html, /class="redirect-host">cursor:\/\/anysphere\.cursor-retrieval</);
    assert.match(html, /Unverified application/);
    assert.match(html, /goes to an <strong>app on this device<\/strong>/);
    assert.doesNotMatch(html, /program on <strong>this computer<\/strong>/, 'no loopback warning');
    assert.equal(html.match(/class="notice warning"/g)?.length, 1, 'every warning in one box');
    // A dynamically registered client named "Cursor" proves nothing about being Cursor.
    assert.match(html, /Cursor<\/bdi><\/span> <span class="badge unverified">unverified<\/span>/);
    const formAction = /form-action ([^;]+)/.exec(response.headers.get('content-security-policy') ?? '')?.[1] ?? '';
    assert.ok(formAction.split(' ').includes('cursor:'), formAction);
  });

  it('authorizes end to end: the code goes to the private-use URI with iss, and the token request succeeds', async () => {
    const { verifier, challenge } = pkcePair();
    const outcome = await authorize(server, new TestBrowser(), nativeAuthorizationParams(server, client.client_id, challenge));
    assert.equal(`${outcome.url.protocol}//${outcome.url.host}${outcome.url.pathname}`, CURSOR_REDIRECT);
    assert.equal(outcome.url.searchParams.get('iss'), server.publicUrl);
    assert.equal(outcome.url.searchParams.get('state'), 'native-state');
    const code = outcome.url.searchParams.get('code');
    assert.ok(code, outcome.url.href);
    const tokens = await exchangeCode(server, client, code, verifier);
    assert.equal(tokens.status, 200, await tokens.clone().text());
  });

  it("skips the page when this browser approved the app before, but not on the user's server-side grant alone (RFC 8252 §8.6)", async () => {
    const browser = new TestBrowser();
    const first = await authorize(server, browser, nativeAuthorizationParams(server, client.client_id, pkcePair().challenge));
    assert.ok(first.url.searchParams.get('code'));
    const again = await browser.follow(authorizeUrl(server, nativeAuthorizationParams(server, client.client_id, pkcePair().challenge)), server.publicUrl);
    assert.ok(again.url.startsWith(`${CURSOR_REDIRECT}?code=`), again.url);

    for (const key of browser.cookies.keys()) if (key.endsWith(' gatehouse-approvals')) browser.cookies.delete(key);
    const asked = await browser.follow(authorizeUrl(server, nativeAuthorizationParams(server, client.client_id, pkcePair().challenge)), server.publicUrl);
    assert.equal(asked.response.status, 200);
    assert.match(await asked.response.text(), /class="redirect-host">cursor:/, 'anyone can claim the scheme, so the user is asked again');
  });

  it('matches the redirect URI exactly: one character off is an error page, not a redirect', async () => {
    const { challenge } = pkcePair();
    for (const redirectUri of [`${CURSOR_REDIRECT}x`, CURSOR_REDIRECT.replace('cursor:', 'cursorx:'), CURSOR_REDIRECT.toUpperCase()]) {
      const response = await fetch(authorizeUrl(server, nativeAuthorizationParams(server, client.client_id, challenge, redirectUri)), { redirect: 'manual' });
      assert.equal(response.headers.get('location'), null, redirectUri);
      assert.match(await response.text(), /invalid_redirect_uri|redirect_uri/);
    }
  });

  for (const uri of ['javascript:alert(1)', 'ms-msdt:/id', 'search-ms:query=x', 'chrome://settings/', 'vbscript:msgbox(1)', 'cursor://app/cb#frag', 'cursor://user:pw@app/cb']) {
    it(`still refuses ${uri.split(':')[0]}: ${uri}`, async () => {
      const response = await registerClient(server, { ...cursorMetadata, redirect_uris: [uri] });
      assert.equal(response.status, 400);
      const body = (await response.json()) as { error: string; client_id?: string };
      assert.match(body.error, /invalid_redirect_uri|invalid_client_metadata/);
      assert.equal(body.client_id, undefined);
    });
  }
});

describe('native clients with a private-use redirect URI in a client ID metadata document', () => {
  let cimd: CimdServer;
  let caDir: string;
  let caFile: string;
  before(async () => {
    cimd = await startCimdServer();
    caDir = mkdtempSync(join(tmpdir(), 'gatehouse-native-'));
    caFile = join(caDir, 'ca.pem');
    writeFileSync(caFile, cimd.ca);
    cimd.documents.set('/cursor.json', (clientId) => ({ client_id: clientId, ...cursorMetadata }));
  });
  after(async () => {
    await cimd.close();
    rmSync(caDir, { recursive: true, force: true });
  });

  async function start(extra: Record<string, unknown> = {}): Promise<TestServer> {
    return startAuthorizationServer({
      authorization: { clientMetadataDocuments: { trustedCaFile: caFile, ...extra } },
      deps: { clientMetadataFetch: { allowAddress: allowTestHost, resolve: testResolve } },
    });
  }

  it('authorizes one, shown as unverified without an allow-list', async () => {
    const server = await start();
    try {
      const clientId = cimd.url('/cursor.json');
      const { verifier, challenge } = pkcePair();
      const params = nativeAuthorizationParams(server, clientId, challenge);
      const { response } = await new TestBrowser().follow(authorizeUrl(server, params), server.publicUrl);
      const html = await response.text();
      assert.match(html, /class="redirect-host">cursor:\/\/anysphere\.cursor-retrieval</);
      assert.match(html, /Unverified application/);

      const outcome = await authorize(server, new TestBrowser(), params);
      const code = outcome.url.searchParams.get('code');
      assert.ok(code, outcome.url.href);
      assert.ok(outcome.url.href.startsWith(`${CURSOR_REDIRECT}?`));
      const tokens = await exchangeCode(server, { client_id: clientId, redirect_uris: [CURSOR_REDIRECT] }, code, verifier);
      assert.equal(tokens.status, 200, await tokens.clone().text());
    } finally {
      await server.close();
    }
  });

  it('shows it as verified when its domain is allow-listed', async () => {
    const server = await start({ allowDomains: ['cimd.test'] });
    try {
      const { challenge } = pkcePair();
      const { response } = await new TestBrowser().follow(authorizeUrl(server, nativeAuthorizationParams(server, cimd.url('/cursor.json'), challenge)), server.publicUrl);
      const html = await response.text();
      assert.match(html, /<span class="badge">Verified<\/span>/);
      assert.doesNotMatch(html, /Unverified application/);
      assert.match(html, /class="redirect-host">cursor:\/\/anysphere\.cursor-retrieval</);
    } finally {
      await server.close();
    }
  });
});
