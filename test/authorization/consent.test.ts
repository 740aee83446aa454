import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  authorize,
  authorizeUrl,
  CLIENT_REDIRECT,
  consentForm,
  pkcePair,
  registerPublicClient,
  startAuthorizationServer,
  TestBrowser,
  type RegisteredClient,
  type TestServer,
  authorizationParams,
  grantIdOf,
  TEST_IDENTITY,
  tokenRequest,
} from './harness.ts';
import { revokeGrantById } from '../../src/admin/grants.ts';
import { revokeClient } from '../../src/admin/clients.ts';
import { isWithdrawn } from '../../src/authorization/remembered-decisions.ts';
import { DENIAL_MEMORY_SECONDS } from '../../src/authorization/remembered-decisions.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { startedForSuite } from '../support/suite-server.ts';
import { clearStepUp, rememberStepUp } from '../../src/records/step-up.ts';

/** The consent page and its form: the confused-deputy defence and its CSRF/state protections. */
describe('consent page', () => {
  let server: TestServer;
  let client: RegisteredClient;
  const { verifier, challenge } = pkcePair();
  const params = () => authorizationParams(server, client.client_id, challenge, { state: 'st' });

  before(async () => {
    server = await startAuthorizationServer();
    client = await registerPublicClient(server);
  });
  after(async () => {
    await server.close();
  });

  async function openConsent(browser: TestBrowser, forClient = client): Promise<{ html: string; response: Response; form: ReturnType<typeof consentForm> }> {
    const { response } = await browser.follow(authorizeUrl(server, { ...params(), client_id: forClient.client_id }), server.publicUrl);
    assert.equal(response.status, 200);
    const html = await response.text();
    return { html, response, form: consentForm(html) };
  }

  /** What the consent flow asks the upstream client to start (a sign-in at the IdP), until `restore`. */
  function recordSignInsStarted(): { seen: Array<Record<string, unknown>>; restore: () => void } {
    const seen: Array<Record<string, unknown>> = [];
    const original = server.upstream.beginSignIn;
    server.upstream.beginSignIn = async (input) => {
      seen.push({ ...input });
      return original(input);
    };
    return { seen, restore: () => void (server.upstream.beginSignIn = original) };
  }

  function post(browser: TestBrowser, action: string, body: Record<string, string>, headers: Record<string, string> = { origin: server.publicUrl }) {
    return browser.request(new URL(action, server.publicUrl).href, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(body).toString(),
    });
  }

  it('is shown before any upstream redirect, with the client, redirect host, scopes and protective headers', async () => {
    const { html, response, form } = await openConsent(new TestBrowser());
    assert.equal(server.upstream.signIns, 0);
    assert.match(html, /Test MCP Client/);
    assert.match(html, new RegExp(`Client ID: ${client.client_id}`));
    assert.match(html, /class="redirect-host">127\.0\.0\.1:53682</);
    assert.match(html, /Use the tools of the test server/);
    assert.match(html, /Unverified application/);
    assert.match(html, /program on <strong>this computer<\/strong>/, 'a loopback redirect URI is warned about');
    assert.equal(html.match(/class="notice warning"/g)?.length, 1, 'every warning in one box');
    assert.match(html, /After you approve, you sign in with your organisation account/, 'nobody is signed in yet');
    assert.doesNotMatch(html, /<script/i);
    const csp = response.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /script-src|unsafe-inline/);
    assert.equal(response.headers.get('x-frame-options'), 'DENY');
    assert.match(response.headers.get('cache-control') ?? '', /no-store/);
    assert.ok(form.csrf.length >= 32 && form.consentState.length >= 32);
  });

  it('treats a scope named after an Object.prototype member as unknown, not as one of the route\'s scopes', async () => {
    for (const scope of ['mcp:tools toString', 'constructor __proto__ mcp:tools', 'toString', 'hasOwnProperty']) {
      const { response } = await new TestBrowser().follow(authorizeUrl(server, { ...params(), scope }), server.publicUrl);
      assert.equal(response.status, 200, scope);
      const html = await response.text();
      // Asked for nothing the route knows, the request gets the route's required scopes (provider-middleware.ts).
      assert.match(html, /Use the tools of the test server/, scope);
      assert.doesNotMatch(html, /toString|constructor|__proto__|hasOwnProperty|native code/, scope);
    }
  });

  it('escapes a hostile client_name and refuses a non-https logo', async () => {
    const hostile = await registerPublicClient(server, {
      client_name: '<script>alert(1)</script><img src=x onerror=alert(2)>"\'',
      logo_uri: 'https://logo.example.test/x.png?"><script>alert(3)</script>',
    });
    const { html } = await openConsent(new TestBrowser(), hostile);
    assert.doesNotMatch(html, /<script>alert/);
    assert.doesNotMatch(html, /<img src=x/);
    assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.doesNotMatch(html, /"><script>/);
  });

  it('keeps the CSP one policy when a registered redirect URI host carries CSP syntax (`;`, `*`, quotes)', async () => {
    // WHATWG URL hosts may contain `;`, `*`, `'` and `,`: an origin pasted into the CSP as is would add directives.
    const redirect = "https://evil.example.test;script-src*;report-uri'x'/cb";
    const hostile = await registerPublicClient(server, { redirect_uris: [redirect] });
    const { response } = await new TestBrowser().follow(authorizeUrl(server, { ...params(), client_id: hostile.client_id, redirect_uri: redirect }), server.publicUrl);
    assert.equal(response.status, 200);
    await response.body?.cancel();
    const csp = response.headers.get('content-security-policy') ?? '';
    assert.doesNotMatch(csp, /script-src|report-uri/, csp);
    assert.match(csp, /form-action 'self'[^;]*; frame-ancestors 'none'/, csp);
  });

  it('never passes a client\'s own `claims` request on to the upstream IdP (only a step-up the IdP asked for goes there)', async () => {
    const { seen, restore } = recordSignInsStarted();
    try {
      const claims = JSON.stringify({ id_token: { sub: { value: 'https://idp.test|bob' } }, access_token: { acrs: { essential: true, value: 'c9' } } });
      const browser = new TestBrowser();
      const { response } = await browser.follow(authorizeUrl(server, { ...params(), claims, login_hint: 'alice@example.test' }), server.publicUrl);
      assert.equal(response.status, 200);
      const form = consentForm(await response.text());
      const approved = await post(browser, form.action, { consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' });
      assert.equal(approved.status, 303);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]?.claims, undefined, JSON.stringify(seen[0]));
      assert.doesNotMatch(approved.headers.get('location') ?? '', /claims|acrs/);
    } finally {
      restore();
    }
  });

  it('asks the IdP for the fresh login a client demands (prompt=login, max_age), which it would otherwise skip on its own session', async () => {
    const { seen, restore } = recordSignInsStarted();
    try {
      // max_age comes with `openid` (oidc-provider refuses it without: there is no ID token to carry auth_time); 0 is
      // prompt=login to oidc-provider.
      const openid = `openid ${params().scope ?? ''}`.trim();
      for (const extra of [{ prompt: 'login consent' }, { max_age: '300', scope: openid }, { max_age: '0', scope: openid }, {}]) {
        const browser = new TestBrowser();
        const { response, url } = await browser.follow(authorizeUrl(server, { ...params(), ...extra }), server.publicUrl);
        assert.equal(response.status, 200, `${JSON.stringify(extra)}: ${url} ${response.headers.get('location')}`);
        const form = consentForm(await response.text());
        const approved = await post(browser, form.action, { consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' });
        assert.equal(approved.status, 303);
      }
      assert.deepEqual(
        seen.map((input) => input.reauthenticate),
        [{ prompt: 'login' }, { maxAge: 300 }, { prompt: 'login' }, undefined],
      );
    } finally {
      restore();
    }
  });

  it('asks for the same fresh login again on the step-up round trip that follows it (a Conditional Access challenge owed)', async () => {
    // The grant is made from the second leg's ID token: without prompt=login there, the IdP's session answered it.
    const { seen, restore } = recordSignInsStarted();
    // The tests below count the sign-ins they cause from here.
    const signInsBefore = server.upstream.signIns;
    const claims = JSON.stringify({ access_token: { acrs: { essential: true, value: 'c1' } } });
    await rememberStepUp(server.store, TEST_IDENTITY.subject, { reason: 'claims_challenge', claims, createdAt: Date.now() });
    try {
      const outcome = await authorize(server, new TestBrowser(), { ...params(), prompt: 'login consent' });
      assert.ok(outcome.url.searchParams.get('code'), outcome.url.href);
      assert.deepEqual(
        seen.map((input) => ({ claims: input.claims, reauthenticate: input.reauthenticate })),
        [
          { claims: undefined, reauthenticate: { prompt: 'login' } },
          { claims, reauthenticate: { prompt: 'login' } },
        ],
      );
    } finally {
      restore();
      server.upstream.signIns = signInsBefore;
      await clearStepUp(server.store, TEST_IDENTITY.subject);
    }
  });

  it('refuses a POST without the CSRF cookie/token', async () => {
    const browser = new TestBrowser();
    const { form } = await openConsent(browser);
    const noToken = await post(browser, form.action, { consent_state: form.consentState, csrf_token: 'forged-token-value', decision: 'approve' });
    assert.equal(noToken.status, 403);
    const stranger = new TestBrowser();
    const noCookie = await post(stranger, form.action, { consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' });
    assert.equal(noCookie.status, 403);
    assert.equal(server.upstream.signIns, 0);
  });

  it('lets a browser approve any of several consent pages open at once (an editor connecting two servers)', async () => {
    const browser = new TestBrowser();
    const second = await registerPublicClient(server, { client_name: 'Second editor window' });
    const first = await openConsent(browser);
    const other = await openConsent(browser, second);
    // Approved in the order a person might: the first page opened, then the other.
    for (const { form } of [first, other]) {
      const approved = await post(browser, form.action, { consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' });
      assert.equal(approved.status, 303, `${form.action}: ${await approved.clone().text()}`);
    }
  });

  it('keeps the CSRF cookies of a few open consent pages, not one per page ever opened (the Cookie header outgrew 16 KB)', async () => {
    const browser = new TestBrowser();
    const pages: Array<ReturnType<typeof consentForm>> = [];
    for (let i = 0; i < 8; i++) {
      pages.push((await openConsent(browser)).form);
      // Each page's time is its own: the oldest is the one to go.
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const csrfCookies = [...browser.cookies.keys()].filter((key) => /gatehouse-csrf-/.test(key));
    assert.equal(csrfCookies.length, 5);
    const oldest = pages[0]!;
    const refused = await post(browser, oldest.action, { consent_state: oldest.consentState, csrf_token: oldest.csrf, decision: 'approve' });
    assert.equal(refused.status, 403);
    const newest = pages.at(-1)!;
    const approved = await post(browser, newest.action, { consent_state: newest.consentState, csrf_token: newest.csrf, decision: 'approve' });
    assert.equal(approved.status, 303);
  });

  it('says a consent page was replaced when the same request was opened again, and takes the newest page', async () => {
    const browser = new TestBrowser();
    const { html } = await openConsent(browser);
    const older = consentForm(html);
    const uid = /\/interaction\/([^/]+)\//.exec(older.action)?.[1] ?? '';
    const reloaded = await browser.request(new URL(`/interaction/${uid}`, server.publicUrl).href);
    const newer = consentForm(await reloaded.text());
    const stale = await post(browser, older.action, { consent_state: older.consentState, csrf_token: older.csrf, decision: 'approve' });
    assert.equal(stale.status, 403);
    assert.match(await stale.text(), /replaced by a newer one/);
    const fresh = await post(browser, newer.action, { consent_state: newer.consentState, csrf_token: newer.csrf, decision: 'approve' });
    assert.equal(fresh.status, 303);
  });

  it('refuses a cross-site POST even with a valid token', async () => {
    const browser = new TestBrowser();
    const { form } = await openConsent(browser);
    const body = { consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' };
    const crossOrigin = await post(browser, form.action, body, { origin: 'https://evil.example.test' });
    assert.equal(crossOrigin.status, 403);
    const crossSite = await post(browser, form.action, body, { 'sec-fetch-site': 'cross-site' });
    assert.equal(crossSite.status, 403);
    const nullOrigin = await post(browser, form.action, body, { origin: 'null' });
    assert.equal(nullOrigin.status, 403);
    const sandboxed = await post(browser, form.action, body, { origin: 'null', 'sec-fetch-site': 'cross-site' });
    assert.equal(sandboxed.status, 403);
  });

  it('refuses a missing, replayed or swapped consent state', async () => {
    const browser = new TestBrowser();
    const { form } = await openConsent(browser);
    const missing = await post(browser, form.action, { csrf_token: form.csrf, decision: 'approve' });
    assert.equal(missing.status, 400);

    const first = await post(browser, form.action, { consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' });
    assert.equal(first.status, 303);
    const replay = await post(browser, form.action, { consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' });
    assert.ok(replay.status === 400 || replay.status === 403, `replay answered ${replay.status}`);

    const alice = new TestBrowser();
    const bob = new TestBrowser();
    const aliceConsent = await openConsent(alice);
    const bobConsent = await openConsent(bob);
    const swapped = await post(bob, aliceConsent.form.action, {
      consent_state: aliceConsent.form.consentState,
      csrf_token: aliceConsent.form.csrf,
      decision: 'approve',
    });
    assert.equal(swapped.status, 403, "Bob's browser cannot submit Alice's form");
    const mixed = await post(bob, bobConsent.form.action, {
      consent_state: aliceConsent.form.consentState,
      csrf_token: bobConsent.form.csrf,
      decision: 'approve',
    });
    assert.equal(mixed.status, 403, "Alice's state with Bob's token is refused");
  });

  it('refuses an upstream callback from another browser (state cookie binding) and a replayed callback', async () => {
    const alice = new TestBrowser();
    const { form } = await openConsent(alice);
    const approved = await post(alice, form.action, { consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' });
    const idp = await alice.request(new URL(approved.headers.get('location') ?? '', server.publicUrl).href);
    const callback = new URL(idp.headers.get('location') ?? '', server.publicUrl).href;
    const mallory = new TestBrowser();
    const stolen = await mallory.request(callback);
    assert.equal(stolen.status, 403);
    const replayed = await alice.request(callback);
    assert.equal(replayed.status, 400, 'the state was consumed by the first attempt');
    const missing = await alice.request(`${server.publicUrl}/callback?code=x`);
    assert.equal(missing.status, 400);
  });

  it('sends access_denied with iss to the client when the user denies, and remembers the denial', async () => {
    const browser = new TestBrowser();
    const outcome = await authorize(server, browser, params(), 'deny');
    assert.equal(outcome.url.origin + outcome.url.pathname, CLIENT_REDIRECT);
    assert.equal(outcome.url.searchParams.get('error'), 'access_denied');
    assert.equal(outcome.url.searchParams.get('iss'), server.publicUrl);
    assert.equal(outcome.url.searchParams.get('code'), null);
    const again = await browser.follow(authorizeUrl(server, params()), server.publicUrl);
    assert.match(again.url, /error=access_denied/, 'a remembered denial is not asked again');
  });

  it('remembers a denial for minutes, not a day: after DENIAL_MEMORY_SECONDS the page asks again', async () => {
    const clock = new ManualClock(Date.now());
    const timed = await startAuthorizationServer({ clock });
    try {
      const c = await registerPublicClient(timed);
      const p = { ...params(), client_id: c.client_id, resource: timed.resource };
      const browser = new TestBrowser();
      const outcome = await authorize(timed, browser, p, 'deny');
      assert.equal(outcome.url.searchParams.get('error'), 'access_denied');
      clock.advance((DENIAL_MEMORY_SECONDS - 10) * 1000);
      assert.match((await browser.follow(authorizeUrl(timed, p), timed.publicUrl)).url, /error=access_denied/, 'a client cannot loop the prompt');
      clock.advance(20 * 1000);
      const asked = await browser.follow(authorizeUrl(timed, p), timed.publicUrl);
      assert.equal(asked.response.status, 200, 'the slip is undone within minutes');
      assert.match(await asked.response.text(), /Test MCP Client/);
      assert.ok(DENIAL_MEMORY_SECONDS <= 15 * 60);
    } finally {
      await timed.close();
    }
  });

  it('does not ask again for what this browser approved, and asks when more is requested', async () => {
    const multi = await startAuthorizationServer({
      routes: [{ path: '/mcp', backend: 'http://127.0.0.1:9/', scopes: { 'mcp:tools': 'Use tools', 'mcp:admin': 'Administer' } }],
    });
    try {
      const c = await registerPublicClient(multi);
      const browser = new TestBrowser();
      const p = { ...params(), client_id: c.client_id, resource: multi.resource };
      const first = await authorize(multi, browser, p);
      assert.ok(first.url.searchParams.get('code'));
      const second = await browser.follow(authorizeUrl(multi, p), multi.publicUrl);
      assert.match(second.url, /code=/, 'same client, redirect URI and scopes: no consent page');
      const more = await browser.follow(authorizeUrl(multi, { ...p, scope: 'mcp:tools mcp:admin' }), multi.publicUrl);
      assert.equal(more.response.status, 200);
      assert.match(await more.response.text(), /Administer/);
    } finally {
      await multi.close();
    }
  });

  it('asks again when the client sends prompt=consent, whatever this browser or the grant remembers (OIDC Core §3.1.2.1)', async () => {
    const browser = new TestBrowser();
    assert.ok((await authorize(server, browser, params())).url.searchParams.get('code'));
    assert.match((await browser.follow(authorizeUrl(server, params()), server.publicUrl)).url, /code=/, 'remembered: no page');
    for (const prompt of ['consent', 'login consent']) {
      const asked = await browser.follow(authorizeUrl(server, { ...params(), prompt }), server.publicUrl);
      assert.equal(asked.response.status, 200, `prompt=${prompt}: the consent page, not ${asked.url}`);
      assert.match(await asked.response.text(), /name="consent_state"/);
    }
    // Approved on the page, it completes (the provider takes the answer to the prompt the client asked for).
    assert.ok((await authorize(server, browser, { ...params(), prompt: 'consent' })).url.searchParams.get('code'));
    // Denied on the page, the denial is the client's answer; a remembered denial does not spare the page either.
    const denied = await authorize(server, browser, { ...params(), prompt: 'consent' }, 'deny');
    assert.equal(denied.url.searchParams.get('error'), 'access_denied');
    const askedAfterDenial = await browser.follow(authorizeUrl(server, { ...params(), prompt: 'consent' }), server.publicUrl);
    assert.equal(askedAfterDenial.response.status, 200);
    assert.match(await askedAfterDenial.response.text(), /name="consent_state"/);
  });

  it('asks again once a person ended the grant: a client still running cannot undo a revocation by re-authorizing', async () => {
    const browser = new TestBrowser();
    const first = await authorize(server, browser, params());
    const code = first.url.searchParams.get('code');
    assert.ok(code);
    const tokens = (await (await tokenRequest(server, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id: client.client_id, resource: server.resource })).json()) as { access_token: string };
    const again = await browser.follow(authorizeUrl(server, params()), server.publicUrl);
    assert.match(again.url, /code=/, 'remembered: no page');

    // The user disconnects the app on /account (the same call the page makes).
    const grantId = grantIdOf(tokens.access_token);
    const subject = (await revokeGrantById({ store: server.store, clock: server.ctx.clock, config: server.ctx.config }, grantId, { subject: TEST_IDENTITY.subject })).subject;
    assert.equal(subject, TEST_IDENTITY.subject);
    const afterRevoke = await browser.follow(authorizeUrl(server, params()), server.publicUrl);
    assert.equal(afterRevoke.response.status, 200, 'the consent page, not a silent code');
    assert.match(await afterRevoke.response.text(), /name="consent_state"/);

    // Approving again is remembered again (the new approval is younger than the withdrawal).
    assert.ok((await authorize(server, browser, params())).url.searchParams.get('code'));
    assert.match((await browser.follow(authorizeUrl(server, params()), server.publicUrl)).url, /code=/);

    // A browser with no Gatehouse session (expired, lost): the user is known only after the IdP sign-in, which the
    // IdP may complete silently. The withdrawal is checked there, and the browser lands on the consent page.
    const revokedAgain = grantIdOf(((await (await tokenRequest(server, { grant_type: 'authorization_code', code: (await authorize(server, browser, params())).url.searchParams.get('code') ?? '', code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, client_id: client.client_id, resource: server.resource })).json()) as { access_token: string }).access_token);
    await revokeGrantById({ store: server.store, clock: server.ctx.clock, config: server.ctx.config }, revokedAgain, { subject: TEST_IDENTITY.subject });
    for (const key of browser.cookies.keys()) if (key.includes('gatehouse-session')) browser.cookies.delete(key);
    const signInsBefore = server.upstream.signIns;
    const noSession = await browser.follow(authorizeUrl(server, params()), server.publicUrl);
    assert.equal(server.upstream.signIns, signInsBefore + 1, 'one (silent) sign-in at the IdP');
    assert.equal(noSession.response.status, 200, `the consent page, not ${noSession.url}`);
    assert.match(await noSession.response.text(), /name="consent_state"/);
    assert.ok((await authorize(server, browser, params())).url.searchParams.get('code'), 'approving the page again completes it');

    // An operator revoking the whole client withdraws it too (a configured or CIMD client keeps its registration).
    const before = server.ctx.clock.now() - 1;
    await revokeClient({ store: server.store, clock: server.ctx.clock, config: server.ctx.config }, client.client_id);
    assert.equal(await isWithdrawn(server.store, TEST_IDENTITY.subject, client.client_id, before), true);
    client = await registerPublicClient(server);
  });

  it('asks a signed-in user about a new client without another upstream sign-in, and remembers the grant per user', async () => {
    const browser = new TestBrowser();
    const first = await authorize(server, browser, params());
    assert.ok(first.url.searchParams.get('code'));
    const signInsBefore = server.upstream.signIns;

    const other = await registerPublicClient(server, { client_name: 'Second Client' });
    const consent = await browser.follow(authorizeUrl(server, { ...params(), client_id: other.client_id }), server.publicUrl);
    assert.equal(consent.response.status, 200);
    assert.match(await consent.response.text(), /Second Client/, 'a new client is always asked about');
    const second = await authorize(server, browser, { ...params(), client_id: other.client_id });
    assert.ok(second.url.searchParams.get('code'));
    assert.equal(server.upstream.signIns, signInsBefore, 'the provider session identified the user; no second upstream sign-in');

    for (const key of browser.cookies.keys()) if (key.endsWith(' gatehouse-approvals')) browser.cookies.delete(key);
    const again = await browser.follow(authorizeUrl(server, { ...params(), client_id: other.client_id }), server.publicUrl);
    assert.match(again.url, /code=/, "the user's server-side grant covers it even without the browser's approval cookie");
  });

  it('takes a loopback redirect URI on another port as the same place: a native client on a new port is not asked again', async () => {
    // RFC 8252 §7.3: the app listens on whatever port is free; bound to the port, every start of such a client (one
    // that picks a new port each time) showed the consent page again.
    const native = await registerPublicClient(server, { client_name: 'Native App', redirect_uris: ['http://127.0.0.1:61001/callback', 'http://localhost:61001/callback'] });
    const browser = new TestBrowser();
    const on = (port: number) => ({ ...params(), client_id: native.client_id, redirect_uri: `http://127.0.0.1:${port}/callback` });
    assert.ok((await authorize(server, browser, on(61001))).url.searchParams.get('code'));
    const otherPort = await browser.follow(authorizeUrl(server, on(61002)), server.publicUrl);
    assert.match(otherPort.url, /^http:\/\/127\.0\.0\.1:61002\/callback\?code=/, 'the remembered approval covers it');
    // And the grant's own record of approved redirect URIs, without the browser's cookie.
    for (const key of browser.cookies.keys()) if (key.endsWith(' gatehouse-approvals')) browser.cookies.delete(key);
    const noCookie = await browser.follow(authorizeUrl(server, on(61003)), server.publicUrl);
    assert.match(noCookie.url, /^http:\/\/127\.0\.0\.1:61003\/callback\?code=/, "the grant's approved redirect URIs cover it");
    // Another loopback host is another place.
    const localhost = await browser.follow(authorizeUrl(server, { ...on(61001), redirect_uri: 'http://localhost:61001/callback' }), server.publicUrl);
    assert.equal(localhost.response.status, 200);
    assert.match(await localhost.response.text(), /name="consent_state"/, 'the consent page');
  });

  it('binds an approval to the redirect URI shown: another redirect URI of the same client asks again (RFC 9700 §4.1)', async () => {
    const second = 'https://second.example.test/oauth/callback';
    const twoHosts = await registerPublicClient(server, { client_name: 'Two Hosts', redirect_uris: [CLIENT_REDIRECT, second] });
    const browser = new TestBrowser();
    const first = await authorize(server, browser, { ...params(), client_id: twoHosts.client_id });
    assert.ok(first.url.searchParams.get('code'), 'approved for the first redirect URI');

    const other = await browser.follow(authorizeUrl(server, { ...params(), client_id: twoHosts.client_id, redirect_uri: second }), server.publicUrl);
    assert.equal(other.response.status, 200, `expected the consent page, went to ${other.url}`);
    assert.match(await other.response.text(), /class="redirect-host">second\.example\.test</, 'the page shows the new host');

    for (const key of browser.cookies.keys()) if (key.endsWith(' gatehouse-approvals')) browser.cookies.delete(key);
    const again = await browser.follow(authorizeUrl(server, { ...params(), client_id: twoHosts.client_id, redirect_uri: second }), server.publicUrl);
    assert.equal(again.response.status, 200, "the user's server-side grant does not cover the other redirect URI either");
    await again.response.body?.cancel();

    const approved = await authorize(server, browser, { ...params(), client_id: twoHosts.client_id, redirect_uri: second });
    assert.equal(approved.url.origin, 'https://second.example.test', 'approving it sends the code there');
    assert.ok(approved.url.searchParams.get('code'));
    const back = await browser.follow(authorizeUrl(server, { ...params(), client_id: twoHosts.client_id }), server.publicUrl);
    assert.match(back.url, /code=/, 'the first approval still stands');
  });

  it('returns access_denied with iss to the client when the user cancels at the upstream IdP', async () => {
    const browser = new TestBrowser();
    const { form } = await openConsent(browser);
    server.upstream.nextError = 'access_denied';
    const approved = await post(browser, form.action, { consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' });
    const final = await browser.follow(new URL(approved.headers.get('location') ?? '', server.publicUrl).href, server.publicUrl);
    const url = new URL(final.url);
    assert.equal(`${url.origin}${url.pathname}`, CLIENT_REDIRECT, 'sent only to the redirect URI validated at /authorize');
    assert.equal(url.searchParams.get('error'), 'access_denied');
    assert.equal(url.searchParams.get('iss'), server.publicUrl);
    assert.equal(url.searchParams.get('state'), 'st');
    assert.equal(url.searchParams.get('code'), null);
  });
});

describe('consent cookies on an https public URL', () => {
  const server = startedForSuite(() => startAuthorizationServer({ publicUrlScheme: 'https' }));

  it('are __Host-, Secure, HttpOnly and SameSite=Lax', async () => {
    const client = await registerPublicClient(server);
    const { challenge } = pkcePair();
    const browser = new TestBrowser();
    const url = new URL(authorizeUrl(server, {
      client_id: client.client_id,
      redirect_uri: CLIENT_REDIRECT,
      response_type: 'code',
      code_challenge: challenge,
      code_challenge_method: 'S256',
    }));
    // The test server speaks plain http behind a pretend TLS proxy: request the http address, keep the path.
    const local = (href: string) => `${server.listenUrl}${new URL(href).pathname}${new URL(href).search}`;
    const authorizeResponse = await browser.request(local(url.href));
    const interaction = new URL(authorizeResponse.headers.get('location') ?? '', server.publicUrl).href;
    assert.ok(interaction.startsWith(`${server.publicUrl}/interaction/`));
    const metadata = (await (await fetch(`${server.listenUrl}/.well-known/oauth-authorization-server`)).json()) as Record<string, string>;
    assert.equal(metadata.issuer, server.publicUrl, 'the issuer is the public https URL, not the address the request reached');
    assert.equal(metadata.token_endpoint, `${server.publicUrl}/token`);
    const page = await browser.request(local(interaction));
    assert.equal(page.status, 200);
    const csrf = page.headers.getSetCookie().find((line) => line.startsWith('__Host-gatehouse-csrf-'));
    assert.ok(csrf, 'the CSRF cookie is __Host-');
    assert.match(csrf, /; Secure/i);
    assert.match(csrf, /; HttpOnly/i);
    assert.match(csrf, /; SameSite=Lax/i);
    assert.match(csrf, /; Path=\//);
    assert.doesNotMatch(csrf, /Domain=/i);

    // Through approval, the (fake) IdP and the callback to the client: every cookie set on the way is Secure.
    const html = await page.text();
    const form = consentForm(html);
    const setCookies: string[] = [];
    let response = await browser.request(local(new URL(form.action, server.publicUrl).href), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: server.publicUrl },
      body: new URLSearchParams({ consent_state: form.consentState, csrf_token: form.csrf, decision: 'approve' }).toString(),
    });
    for (let hop = 0; hop < 10; hop += 1) {
      setCookies.push(...response.headers.getSetCookie());
      const next = new URL(response.headers.get('location') ?? '', server.publicUrl);
      if (next.origin !== server.publicUrl) break;
      response = await browser.request(local(next.href));
    }
    assert.match(response.headers.get('location') ?? '', /^http:\/\/127\.0\.0\.1:53682\/callback\?code=/);
    const live = setCookies.filter((line) => !/expires=Thu, 01 Jan 1970/i.test(line) && !/max-age=0/i.test(line));
    assert.ok(live.length > 0);
    for (const line of live) assert.match(line, /; secure/i, line.split('=')[0]);
    assert.ok(live.some((line) => line.startsWith('__Host-gatehouse-session=')), 'the provider session cookie is __Host-');
    assert.ok(live.some((line) => line.startsWith('__Host-gatehouse-approvals=')));
  });
});

describe('the form_post response page', () => {
  let server: TestServer;
  let client: RegisteredClient;
  before(async () => {
    server = await startAuthorizationServer();
    client = await registerPublicClient(server);
  });
  after(async () => {
    await server.close();
  });

  it('sends the form_post page that carries the code with CSP (its inline script by hash) and no framing', async () => {
    // oidc-provider writes this page itself, on a reply Fastify's header hook never sees: it went out framable and
    // without CSP, although it holds an authorization code and runs a script.
    const outcome = await authorize(server, new TestBrowser(), { ...authorizationParams(server, client.client_id, pkcePair().challenge), response_mode: 'form_post' });
    assert.equal(outcome.response.status, 200);
    const html = await outcome.response.text();
    assert.match(html, new RegExp(`<form method="post" action="${CLIENT_REDIRECT}"`));
    assert.match(html, /name="code" value="[^"]+"/);
    const headers = outcome.response.headers;
    assert.equal(headers.get('x-frame-options'), 'DENY');
    assert.equal(headers.get('x-content-type-options'), 'nosniff');
    assert.equal(headers.get('referrer-policy'), 'no-referrer');
    const csp = headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/);
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)?.[1] ?? '';
    assert.ok(script.includes('submit()'));
    assert.ok(csp.includes(`'sha256-${createHash('sha256').update(script).digest('base64')}'`), csp);
    assert.doesNotMatch(csp, /unsafe-inline/);
  });
});
