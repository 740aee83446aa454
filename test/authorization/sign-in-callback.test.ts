import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyReply } from 'fastify';
import { downstreamCacheKey, readCachedFailure, readCachedToken, writeCachedFailure, writeCachedToken } from '../../src/broker/downstream-cache.ts';
import { accountRecord } from '../../src/records/account.ts';
import { interactionSignedInRecord } from '../../src/records/interaction.ts';
import { upstreamTokensRecord } from '../../src/records/upstream.ts';
import type { CompletedSignIn } from '../../src/upstream/types.ts';
import {
  authorizeUrl,
  CLIENT_REDIRECT,
  consentForm,
  FAKE_REFRESH_TOKEN_LIFETIME_SECONDS,
  obtainCode,
  pkcePair,
  registerPublicClient,
  startAuthorizationServer,
  TEST_IDENTITY,
  TestBrowser,
  type RegisteredClient,
  type TestServer,
} from './harness.ts';
import { startedForSuite } from '../support/suite-server.ts';

/** `/callback`: what a completed sign-in leaves behind, upstream errors answered to the client, console hand-over. */
describe('upstream sign-in callback', () => {
  let server: TestServer;
  let client: RegisteredClient;
  const consoleSignIns: CompletedSignIn[] = [];
  const consoleReturn = 'https://console.example.test/admin';

  before(async () => {
    server = await startAuthorizationServer({
      deps: {
        consoleSignIn: async (completed, _request, reply: FastifyReply) => {
          consoleSignIns.push(completed);
          return reply.redirect(consoleReturn, 303);
        },
      },
    });
    client = await registerPublicClient(server);
  });
  after(async () => {
    await server.close();
  });

  const params = () => ({
    client_id: client.client_id,
    redirect_uri: CLIENT_REDIRECT,
    response_type: 'code',
    code_challenge: pkcePair().challenge,
    code_challenge_method: 'S256',
    resource: server.resource,
    scope: 'mcp:tools',
    state: 'client-state',
  });

  /** Opens the consent page in `browser`, approves, and returns the uid and where the approval sent the browser. */
  async function approve(browser: TestBrowser): Promise<{ uid: string; next: string }> {
    const { response } = await browser.follow(authorizeUrl(server, params()), server.publicUrl);
    const form = consentForm(await response.text());
    const uid = /\/interaction\/([^/]+)\/decision/.exec(form.action)?.[1] ?? '';
    const posted = await browser.request(new URL(form.action, server.publicUrl).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.publicUrl },
      body: new URLSearchParams({ consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' }).toString(),
    });
    return { uid, next: new URL(posted.headers.get('location') ?? '', server.publicUrl).href };
  }

  /** Follows redirects until the browser reaches a URL matching `stop`, which is not requested. */
  async function followUntil(browser: TestBrowser, url: string, stop: RegExp): Promise<string> {
    let current = url;
    for (let hop = 0; hop < 10 && !stop.test(current); hop += 1) {
      const response = await browser.request(current);
      await response.body?.cancel();
      current = new URL(response.headers.get('location') ?? '', current).href;
    }
    return current;
  }

  it("keeps the upstream tokens the upstream client saved, with the IdP's refresh-token lifetime", async () => {
    const before = Date.now();
    await obtainCode(server, client);
    const after = Date.now();
    const entry = (await server.store.list<unknown>(upstreamTokensRecord.namespace)).find((item) => item.key === TEST_IDENTITY.subject);
    assert.ok(entry?.expiresAt, 'the sealed upstream tokens are stored with a TTL');
    const lifetime = FAKE_REFRESH_TOKEN_LIFETIME_SECONDS * 1000;
    assert.ok(entry.expiresAt >= before + lifetime - 1000 && entry.expiresAt <= after + lifetime + 1000, 'not overwritten with the default lifetime');
  });

  it("forgets the user's remembered downstream failures and tokens after a sign-in, and nobody else's", async () => {
    const deps = { store: server.store, keyring: server.ctx.keyring };
    const failureKey = downstreamCacheKey(TEST_IDENTITY.subject, { grant: 'on-behalf-of', audience: 'https://graph.example.test', scopes: ['User.Read'] });
    const tokenKey = downstreamCacheKey(TEST_IDENTITY.subject, { grant: 'token-exchange', audience: 'https://api.example.test', scopes: ['read'] });
    const otherKey = downstreamCacheKey('https://idp.test|bob', { grant: 'on-behalf-of', audience: 'https://graph.example.test', scopes: ['User.Read'] });
    const failure = { code: 'interaction_required' as const, description: 'consent is needed' };
    await writeCachedFailure(server.store, failureKey, TEST_IDENTITY.subject, failure, 600);
    await writeCachedFailure(server.store, otherKey, 'https://idp.test|bob', failure, 600);
    await writeCachedToken({ ...deps, now: Date.now() }, tokenKey, TEST_IDENTITY.subject, { accessToken: 'downstream', expiresAt: Date.now() + 600_000, scopes: ['read'] });

    await obtainCode(server, client);
    assert.equal(await readCachedFailure(server.store, failureKey), undefined, 'a failure remembered before the re-consent is gone');
    assert.equal(await readCachedToken(deps, tokenKey), undefined);
    assert.deepEqual(await readCachedFailure(server.store, otherKey), failure, "another user's record stays");
  });

  it('answers temporarily_unavailable with iss when the IdP could not complete the sign-in, with our own description', async () => {
    const browser = new TestBrowser();
    const { next } = await approve(browser);
    server.upstream.nextError = 'server_error';
    const final = await browser.follow(next, server.publicUrl);
    const url = new URL(final.url);
    assert.equal(`${url.origin}${url.pathname}`, CLIENT_REDIRECT);
    assert.equal(url.searchParams.get('error'), 'temporarily_unavailable');
    assert.equal(url.searchParams.get('iss'), server.publicUrl);
    assert.equal(url.searchParams.get('state'), 'client-state');
    assert.equal(url.searchParams.get('error_description'), 'The identity provider could not complete the sign-in; try again later.');
    // The operator's line names the failure: a field called `code` is redacted wherever it appears (it is the
    // authorization code's name), so the line said `[REDACTED]`.
    const line = server.logs.lines().find((entry) => entry.msg === 'upstream sign-in failed; returning the error to the client');
    assert.equal(line?.errorCode, 'temporarily_unavailable', JSON.stringify(line));
  });

  it('completes two sign-ins one browser started together, in either order, and keeps its binding cookie after a bogus callback', async () => {
    // An editor connecting two servers: both authorizations reach the IdP before either comes back. (The second is
    // the same client, whose approval this browser now remembers, so it goes to the IdP without a consent page.)
    const browser = new TestBrowser();
    const toIdp = /\/fake-idp\/authorize/;
    const first = await followUntil(browser, (await approve(browser)).next, toIdp);
    const second = await followUntil(browser, authorizeUrl(server, params()), toIdp);
    assert.match(first, toIdp);
    assert.match(second, toIdp);
    // A stray callback (an old tab reloaded) must not take the binding the sign-ins in progress need.
    await (await browser.request(`${server.publicUrl}/callback?code=x&state=bogus`)).body?.cancel();
    for (const idp of [second, first]) {
      const final = await browser.follow(idp, server.publicUrl);
      const url = new URL(final.url);
      assert.equal(`${url.origin}${url.pathname}`, CLIENT_REDIRECT, final.url);
      assert.ok(url.searchParams.get('code'), final.url);
    }
  });

  it('answers an error only once: a replayed sign-in-failed step is a page', async () => {
    const browser = new TestBrowser();
    const { next } = await approve(browser);
    server.upstream.nextError = 'access_denied';
    const failed = await followUntil(browser, next, /\/sign-in-failed$/);
    assert.match(failed, /\/interaction\/[^/]+\/sign-in-failed$/);
    const first = await browser.follow(failed, server.publicUrl);
    assert.equal(new URL(first.url).searchParams.get('error'), 'access_denied');
    const again = await browser.request(failed);
    assert.equal(again.headers.get('location'), null);
    assert.ok(again.status >= 400 && again.status < 500, String(again.status));
  });

  it('shows a page, not a redirect, when the interaction is gone by the time the IdP answers', async () => {
    const browser = new TestBrowser();
    const { uid, next } = await approve(browser);
    server.upstream.nextError = 'access_denied';
    await server.store.delete('oidc:Interaction', uid);
    assert.equal(await server.provider.Interaction.find(uid), undefined);
    const final = await browser.follow(next, server.publicUrl);
    assert.ok(final.url.startsWith(server.publicUrl), final.url);
    assert.equal(final.response.status, 403);
    assert.match(await final.response.text(), /access_denied/);
  });

  it('hands a console sign-in to the console hook, without touching OAuth interactions', async () => {
    const browser = new TestBrowser();
    const interactionId = 'console:test-nonce';
    const { authorizationUrl, stateCookie } = await server.upstream.beginSignIn({ interactionId });
    browser.cookies.set(`${new URL(server.publicUrl).origin} gatehouse-upstream`, stateCookie);
    const accountsBefore = await server.store.list(accountRecord.namespace);
    const final = await browser.follow(authorizationUrl, server.publicUrl);
    assert.equal(final.url, consoleReturn);
    assert.equal(consoleSignIns.length, 1);
    assert.equal(consoleSignIns[0]?.interactionId, interactionId);
    assert.equal(consoleSignIns[0]?.identity.subject, TEST_IDENTITY.subject);
    assert.equal(await server.store.get(interactionSignedInRecord.namespace, interactionId), undefined);
    assert.equal((await server.store.list(accountRecord.namespace)).length, accountsBefore.length);
  });

  it('shows a console sign-in the IdP refused as a page (there is no client to tell)', async () => {
    const browser = new TestBrowser();
    const { authorizationUrl, stateCookie } = await server.upstream.beginSignIn({ interactionId: 'console:refused' });
    browser.cookies.set(`${new URL(server.publicUrl).origin} gatehouse-upstream`, stateCookie);
    server.upstream.nextError = 'access_denied';
    const before = consoleSignIns.length;
    const final = await browser.follow(authorizationUrl, server.publicUrl);
    assert.equal(final.response.status, 403);
    assert.equal(consoleSignIns.length, before);
  });
});

describe('upstream sign-in callback without a console hook', () => {
  const server = startedForSuite(() => startAuthorizationServer());

  it('answers a console sign-in with a 404 page', async () => {
    const browser = new TestBrowser();
    const { authorizationUrl, stateCookie } = await server.upstream.beginSignIn({ interactionId: 'console:nobody' });
    browser.cookies.set(`${new URL(server.publicUrl).origin} gatehouse-upstream`, stateCookie);
    const final = await browser.follow(authorizationUrl, server.publicUrl);
    assert.equal(final.response.status, 404);
    assert.equal(await server.store.get(interactionSignedInRecord.namespace, 'console:nobody'), undefined);
  });
});
