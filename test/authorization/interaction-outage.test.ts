import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { authorizeUrl, consentForm, pkcePair, registerPublicClient, startAuthorizationServer, TestBrowser, type RegisteredClient, type TestServer } from './harness.ts';

/**
 * The sign-in's interaction pages when the store fails under them. Finishing an interaction (deny, approve, a
 * remembered decision, the upstream sign-in's end) saved the result after the reply had been hijacked for the
 * provider: a failing save left the browser with no answer at all. And reading the interaction during an outage said
 * "expired, start again" (400) about a request that completes once the store is back.
 */
describe('interaction pages during a store outage', () => {
  let sqlite: Store;
  let server: TestServer;
  let client: RegisteredClient;
  const failing = { reads: false, writes: false, vanishAfterReads: -1 };
  const outage = () => Promise.reject(new StoreUnavailableError('the store is unavailable: test outage'));

  before(async () => {
    sqlite = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    const store = new Proxy(sqlite, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (namespace: unknown, ...rest: unknown[]) => {
          const interaction = namespace === 'oidc:Interaction';
          if (interaction && failing.reads && property === 'get') return outage();
          // Found so many times more, then gone (expired, or finished in another tab).
          if (interaction && property === 'get' && failing.vanishAfterReads >= 0 && failing.vanishAfterReads-- === 0) return Promise.resolve(undefined);
          if (interaction && failing.writes && (property === 'set' || property === 'setIfAbsent')) return outage();
          return (value as (...args: unknown[]) => unknown).call(target, namespace, ...rest);
        };
      },
    });
    server = await startAuthorizationServer({ store });
    client = await registerPublicClient(server);
  });
  after(async () => {
    await server.close();
    await sqlite.close();
  });

  const consentPage = async (browser: TestBrowser) => {
    const { challenge } = pkcePair();
    const first = await browser.follow(
      authorizeUrl(server, { client_id: client.client_id, redirect_uri: client.redirect_uris[0], response_type: 'code', code_challenge: challenge, code_challenge_method: 'S256', resource: server.resource, scope: 'mcp:tools' }),
      server.publicUrl,
    );
    assert.equal(first.response.status, 200);
    return { url: first.url, form: consentForm(await first.response.text()) };
  };

  /** Denies on a fresh consent page with the store failing as `fault` sets it, until the answer (bounded: it hung). */
  const denyDuring = async (fault: () => () => void): Promise<Response> => {
    const browser = new TestBrowser();
    const { form } = await consentPage(browser);
    const restore = fault();
    try {
      return await browser.request(new URL(form.action, server.publicUrl).href, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.publicUrl },
        body: new URLSearchParams({ consent_state: form.consentState, csrf_token: form.csrf, decision: 'deny' }).toString(),
        signal: AbortSignal.timeout(10_000),
      });
    } finally {
      restore();
    }
  };

  it('answers a decision whose save fails with the 503 page, not with silence', async () => {
    const denied = await denyDuring(() => ((failing.writes = true), () => (failing.writes = false)));
    assert.equal(denied.status, 503);
    assert.ok(denied.headers.get('retry-after'));
    assert.match(denied.headers.get('content-type') ?? '', /text\/html/);
    await denied.text();
  });

  it('shows the expired page for a sign-in that vanished between its check and its finish', async () => {
    const denied = await denyDuring(() => ((failing.vanishAfterReads = 1), () => (failing.vanishAfterReads = -1)));
    assert.equal(denied.status, 400);
    assert.match(await denied.text(), /has expired or belongs to another browser/);
  });

  it('answers an interaction it cannot read during an outage with 503, and serves it once the store is back', async () => {
    const browser = new TestBrowser();
    const { url } = await consentPage(browser);
    failing.reads = true;
    let during: Response;
    try {
      during = await browser.request(url);
    } finally {
      failing.reads = false;
    }
    assert.equal(during.status, 503, 'not "expired, start again"');
    await during.text();
    const after = await browser.request(url);
    assert.equal(after.status, 200);
    assert.notEqual(consentForm(await after.text()).consentState, '', 'the same request, still good');
  });
});
