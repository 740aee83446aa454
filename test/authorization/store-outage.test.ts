import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import {
  authorizeUrl,
  consentForm,
  exchangeCode,
  obtainCode,
  pkcePair,
  registerClient,
  registerPublicClient,
  startAuthorizationServer,
  TestBrowser,
  tokenRequest,
  type RegisteredClient,
  type TestServer,
} from './harness.ts';

/**
 * The authorization server while Redis is down: every endpoint — oidc-provider's own (its storage adapter fails),
 * the consent page and registration — answers 503 `temporarily_unavailable` with `Retry-After` in its format (OAuth
 * JSON, or the HTML page for a browser), never a 500 `server_error`.
 */
let redis: RedisServer;
let store: Store;
let server: TestServer;
let client: RegisteredClient;
let pending: { code: string; verifier: string };
let consentHtml: string;
const browser = new TestBrowser();

before(async () => {
  redis = await startRedisServer();
  store = await createRedisStore({ url: redis.url, keyPrefix: 'as-outage:', clock: systemClock, purgeIntervalMs: 0 });
  server = await startAuthorizationServer({ store });
  client = await registerPublicClient(server);
  pending = await obtainCode(server, client);
  const { challenge } = pkcePair();
  const page = await browser.follow(
    authorizeUrl(server, {
      client_id: client.client_id,
      redirect_uri: client.redirect_uris[0],
      response_type: 'code',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: server.resource,
      scope: 'mcp:tools',
    }),
    server.publicUrl,
  );
  consentHtml = await page.response.text();
  await redis.stop();
});
after(async () => {
  await server?.close();
  await store?.close();
  await redis?.stop();
});

function assertUnavailable(response: Response): void {
  assert.equal(response.status, 503);
  assert.match(response.headers.get('retry-after') ?? '', /^\d+$/);
}

async function assertOAuthUnavailable(response: Response): Promise<void> {
  assertUnavailable(response);
  const body = (await response.json()) as { error: string; error_description?: string };
  assert.equal(body.error, 'temporarily_unavailable');
  assert.doesNotMatch(JSON.stringify(body), /127\.0\.0\.1|Redis/);
}

describe('the authorization server while Redis is down', () => {
  it('token endpoint (the storage adapter fails): 503 temporarily_unavailable JSON', async () => {
    await assertOAuthUnavailable(await exchangeCode(server, client, pending.code, pending.verifier));
    await assertOAuthUnavailable(await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: 'x', client_id: client.client_id }));
  });

  it('the replay check of a DPoP proof or client assertion fails closed: a 503, never a pass', async () => {
    const replay = server.provider.ReplayDetection as { unique(iss: string, jti: string, exp: number): Promise<boolean> };
    await assert.rejects(replay.unique('client', 'jti-during-outage', Math.floor(Date.now() / 1000) + 60), (error: { status?: number; error?: string }) => {
      assert.equal(error.status, 503);
      assert.equal(error.error, 'temporarily_unavailable');
      return true;
    });
  });

  it('registration and revocation: 503 temporarily_unavailable JSON', async () => {
    await assertOAuthUnavailable(await registerClient(server, { redirect_uris: ['http://127.0.0.1:1/cb'], token_endpoint_auth_method: 'none' }));
    const revoke = await fetch(`${server.publicUrl}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: 'opaque-token', client_id: client.client_id }).toString(),
    });
    await assertOAuthUnavailable(revoke);
  });

  it('authorization endpoint in a browser: a 503 page, not a 500', async () => {
    const { challenge } = pkcePair();
    const response = await new TestBrowser().request(
      authorizeUrl(server, {
        client_id: client.client_id,
        redirect_uri: client.redirect_uris[0],
        response_type: 'code',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        scope: 'mcp:tools',
      }),
      { headers: { accept: 'text/html' } },
    );
    assertUnavailable(response);
    assert.match(await response.text(), /temporarily_unavailable/);
  });

  it('consent form post: a 503 page with Retry-After', async () => {
    const form = consentForm(consentHtml);
    assert.notEqual(form.consentState, '');
    const response = await browser.request(new URL(form.action, server.publicUrl).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.publicUrl, accept: 'text/html' },
      body: new URLSearchParams({ consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' }).toString(),
    });
    assertUnavailable(response);
    assert.match(response.headers.get('content-type') ?? '', /text\/html/);
  });
});
