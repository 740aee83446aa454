import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { basicAuthorization, registerPublicClient, startAuthorizationServer, type RegisteredClient, type TestServer } from './harness.ts';

/**
 * Every OAuth endpoint body is capped on the bytes read, not the declared length: a chunked body (no
 * `Content-Length`) over the cap is a 413 and nothing of it is parsed or stored.
 */
describe('request body caps hold for chunked bodies', () => {
  let server: TestServer;
  let client: RegisteredClient;
  const CONFIDENTIAL = { clientId: 'introspector', clientSecret: 'an-introspection-secret-0123456789abcdef' };
  before(async () => {
    server = await startAuthorizationServer({
      authorization: { clients: [{ ...CONFIDENTIAL, redirectUris: ['https://backend.example.test/callback'] }] },
    });
    client = await registerPublicClient(server);
  });
  after(async () => {
    await server.close();
  });

  /** Sends `body` in 1 KB chunks with `Transfer-Encoding: chunked` (a stream body has no Content-Length). */
  function chunked(path: string, contentType: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
    const bytes = Buffer.from(body);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let offset = 0; offset < bytes.length; offset += 1024) controller.enqueue(bytes.subarray(offset, offset + 1024));
        controller.close();
      },
    });
    return fetch(`${server.publicUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': contentType, ...headers },
      body: stream,
      duplex: 'half',
    } as RequestInit);
  }

  const countClients = async () => (await server.store.list('oidc:Client')).length;

  it('refuses a 40 KB chunked registration with 413 and stores no client', async () => {
    const before = await countClients();
    const metadata = { client_name: 'x'.repeat(40_000), redirect_uris: ['http://127.0.0.1/cb'], token_endpoint_auth_method: 'none' };
    const response = await chunked('/register', 'application/json', JSON.stringify(metadata));
    assert.equal(response.status, 413);
    assert.equal(((await response.json()) as { error: string }).error, 'payload_too_large');
    assert.equal(await countClients(), before, 'nothing was registered');
  });

  it('still registers a small chunked registration', async () => {
    const metadata = { client_name: 'Chunked', redirect_uris: ['http://127.0.0.1/cb'], token_endpoint_auth_method: 'none' };
    const response = await chunked('/register', 'application/json', JSON.stringify(metadata));
    assert.equal(response.status, 201, await response.clone().text());
  });

  const form = (params: Record<string, string>, padding: number) => new URLSearchParams({ ...params, padding: 'x'.repeat(padding) }).toString();
  const basic = basicAuthorization(CONFIDENTIAL.clientId, CONFIDENTIAL.clientSecret);

  for (const [path, params, headers] of [
    ['/token', { grant_type: 'refresh_token', refresh_token: 'x' }, {}],
    ['/revoke', { token: 'x' }, {}],
    ['/introspect', { token: 'x' }, { authorization: basic }],
  ] as const) {
    it(`refuses a chunked ${path} body over the cap with 413`, async () => {
      const response = await chunked(path, 'application/x-www-form-urlencoded', form({ ...params, client_id: client.client_id }, 100_000), headers);
      assert.equal(response.status, 413);
      await response.body?.cancel();
    });
  }

  it('refuses a chunked POST to /authorize, which the provider does not serve, with 405 before it reaches the provider', async () => {
    const response = await chunked('/authorize', 'application/x-www-form-urlencoded', form({ response_type: 'code', client_id: client.client_id }, 100_000));
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'GET, HEAD');
    await response.body?.cancel();
  });

  it('still answers a small chunked token request (the provider gets the body)', async () => {
    const response = await chunked('/token', 'application/x-www-form-urlencoded', form({ grant_type: 'refresh_token', refresh_token: 'unknown', client_id: client.client_id }, 10));
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: string }).error, 'invalid_grant', 'the provider parsed the body');
  });

  it('refuses a chunked consent form over the cap with 413', async () => {
    const response = await chunked('/interaction/some-uid/decision', 'application/x-www-form-urlencoded', form({ decision: 'approve' }, 40_000), {
      origin: server.publicUrl,
    });
    assert.equal(response.status, 413);
    await response.body?.cancel();
  });
});
