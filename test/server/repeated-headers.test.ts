import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { repeatedSingletonHeader } from '../../src/server/repeated-headers.ts';
import { startConsoleHarness, type ConsoleHarness } from '../admin/console-harness.ts';
import { registerPublicClient, startAuthorizationServer, type TestServer } from '../authorization/harness.ts';
import { rawRequest } from '../support/raw-http.ts';

/**
 * One edge check (src/server/repeated-headers.ts) refuses a singleton header sent twice on every route. The gateway
 * routes are covered in test/proxy/edge-headers.test.ts; here the rule itself, the OAuth endpoints (oidc-provider
 * reads Node's `req.headers`, where a second `Authorization` has already been dropped) and the console pages.
 */
describe('repeatedSingletonHeader', () => {
  const singletons = ['Authorization', 'DPoP', 'Host', 'Origin', 'Content-Type', 'Content-Length', 'Mcp-Session-Id', 'Mcp-Method', 'Mcp-Name', 'Mcp-Protocol-Version'];
  for (const name of singletons) {
    it(`finds ${name} repeated, whatever the case of each copy`, () => {
      assert.equal(repeatedSingletonHeader(['Accept', '*/*', name, 'a', name.toUpperCase(), 'b']), name.toLowerCase());
    });
  }

  it('allows list headers to repeat and singletons to appear once', () => {
    const raw = ['Accept', 'a', 'Accept', 'b', 'X-Forwarded-For', '1', 'X-Forwarded-For', '2', 'Cookie', 'a=1', 'Cookie', 'b=2', 'Authorization', 'Bearer x', 'Host', 'h'];
    assert.equal(repeatedSingletonHeader(raw), undefined);
  });
});

const basic = (user: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(user)}:${encodeURIComponent(secret)}`).toString('base64')}`;

describe('OAuth endpoints refuse a repeated Authorization header', () => {
  let server: TestServer;
  let validBasic: string;
  before(async () => {
    server = await startAuthorizationServer();
    const client = await registerPublicClient(server, { token_endpoint_auth_method: 'client_secret_basic' });
    validBasic = basic(client.client_id, client.client_secret ?? '');
  });
  after(() => server.close());

  const form = 'application/x-www-form-urlencoded';
  for (const [path, body] of [
    ['/token', 'grant_type=refresh_token&refresh_token=x'],
    ['/revoke', 'token=x'],
    ['/introspect', 'token=x'],
  ] as const) {
    it(`${path}: 400 invalid_request, before the provider reads either copy`, async () => {
      // The first copy is the client's real credential: without the edge check the provider would act on it.
      const headers: Array<[string, string]> = [['Content-Type', form], ['Authorization', validBasic], ['Authorization', basic('someone-else', 'x')]];
      const response = await rawRequest(`${server.listenUrl}${path}`, { method: 'POST', headers, body });
      assert.equal(response.status, 400, response.body);
      assert.deepEqual(JSON.parse(response.body), { error: 'invalid_request', error_description: 'The authorization header must not be sent more than once.' });
    });
  }

  it('/register: 400 invalid_request', async () => {
    const headers: Array<[string, string]> = [['Content-Type', 'application/json'], ['Authorization', 'Bearer a'], ['Authorization', 'Bearer b']];
    const body = JSON.stringify({ redirect_uris: ['http://127.0.0.1:53682/callback'], token_endpoint_auth_method: 'none' });
    const response = await rawRequest(`${server.listenUrl}/register`, { method: 'POST', headers, body });
    assert.equal(response.status, 400, response.body);
    assert.equal((JSON.parse(response.body) as { error: string }).error, 'invalid_request');
  });
});

describe('console pages refuse a repeated Authorization header', () => {
  let h: ConsoleHarness;
  before(async () => {
    h = await startConsoleHarness();
  });
  after(() => h.close());

  for (const url of ['/account', '/admin', '/admin/sign-in']) {
    it(`${url}: 400 as an HTML page`, async () => {
      // inject() sends an array as repeated headers (as light-my-request documents); its types only allow strings.
      const headers = { authorization: ['Bearer a', 'Bearer b'] } as unknown as Record<string, string>;
      const response = await h.app.inject({ url, headers });
      assert.equal(response.statusCode, 400);
      assert.match(String(response.headers['content-type']), /^text\/html/);
      assert.match(response.body, /must not be sent more than once/);
    });
  }
});
