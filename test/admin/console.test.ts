import assert from 'node:assert/strict';
import { consoleAdminRefusal } from '../../src/admin/console-session.ts';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { GRANT_NAMESPACE } from '../../src/admin/admin-deps.ts';
import { ADMIN_RECHECK_SECONDS, createConsoleSessions } from '../../src/admin/console-session.ts';
import { startMetricsListener } from '../../src/admin/metrics-plugin.ts';
import { CONSOLE_SIGN_IN_NAMESPACE } from '../../src/admin/console-sign-in.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { REVOKED_GRANT_NAMESPACE } from '../../src/grants/revoked-grants.ts';
import type { UpstreamIdentity } from '../../src/upstream/types.ts';
import { consolePost, signInTo, startConsoleHarness, type ConsoleBrowser as Browser } from './console-harness.ts';
import { ALICE, BOB, CIMD_CLIENT, CONFIGURED_CLIENT, DCR_CLIENT, GRANTS, RESOURCE } from './seed.ts';
import { withdrawConsent } from '../../src/authorization/remembered-decisions.ts';
import { startedForSuite } from '../support/suite-server.ts';
import { CLIENTS_PAGE_LIMIT } from '../../src/admin/pages/clients-page.ts';
import { createOidcAdapter } from '../../src/store/oidc-adapter.ts';
import { NAME_DISPLAY_LIMIT } from '../../src/web/html.ts';

const ORIGIN = 'http://127.0.0.1:8080';

describe('admin console and connected apps (in-process)', () => {
  const h = startedForSuite(() => startConsoleHarness());

  const signIn = (identity: UpstreamIdentity, returnTo = '/account') => signInTo(h, identity, returnTo);

  const post = (browser: Browser, url: string, form: Record<string, string>, headers: Record<string, string> = { origin: ORIGIN }) => consolePost(h, browser, url, form, headers);

  it('sends a visitor without a session to sign-in and back', async () => {
    const response = await h.app.inject({ url: '/admin/grants' });
    assert.equal(response.statusCode, 303);
    assert.equal(response.headers.location, '/admin/sign-in?return=%2Fadmin%2Fgrants');
  });

  it('never returns to a foreign URL after sign-in (no open redirect)', async () => {
    const begin = await h.app.inject({ url: '/admin/sign-in?return=https://evil.example/' });
    const callback = await h.app.inject({ url: String(begin.headers.location) });
    assert.equal(callback.headers.location, '/account');
  });

  it('refuses a replayed sign-in completion', async () => {
    const begin = await h.app.inject({ url: '/admin/sign-in?return=/admin' });
    const first = await h.app.inject({ url: String(begin.headers.location) });
    assert.equal(first.statusCode, 303);
    const replay = await h.app.inject({ url: String(begin.headers.location) });
    assert.equal(replay.statusCode, 400);
    assert.ok(!replay.headers['set-cookie']?.toString().includes('gatehouse-console='));
    assert.deepEqual(await h.store.list(CONSOLE_SIGN_IN_NAMESPACE), []);
  });

  it('shows a non-admin a 403 page on every /admin page that reveals nothing', async () => {
    const bob = await signIn(BOB);
    for (const url of ['/admin', '/admin/clients', '/admin/grants', '/admin/audit']) {
      const response = await h.app.inject({ url, headers: { cookie: bob.cookie } });
      assert.equal(response.statusCode, 403, url);
      assert.match(response.headers['content-type'] ?? '', /^text\/html/);
      for (const secret of [ALICE.email, ALICE.subject, 'ops', DCR_CLIENT, CIMD_CLIENT, GRANTS.aliceDcr, GRANTS.bobDcr, BOB.subject, 'csrf']) {
        assert.ok(!response.body.includes(secret), `${url} leaks ${secret}`);
      }
      // Not a dead end: the way to another account (signed in with the wrong one, the IdP signs them straight back in).
      assert.match(response.body, /sign out on your account page.*<a href="\/account">Your account<\/a>/);
    }
    const revoke = await post(bob, `/admin/grants/${GRANTS.aliceDcr}/revoke`, { csrf: bob.csrf });
    assert.equal(revoke.statusCode, 403);
    assert.ok(await h.store.get(GRANT_NAMESPACE, GRANTS.aliceDcr));
  });

  it('lists the consent decisions this browser remembers on /account, and forgets one so the page asks again', async () => {
    const bob = await signIn(BOB);
    const until = h.clock.now() + 3600_000;
    const target = (clientId: string) => ({ clientId, redirectUri: 'http://127.0.0.1:5000/cb', resource: 'http://127.0.0.1:8080/mcp' });
    const seal = (kind: string, value: unknown) => `gatehouse-${kind}=${h.ctx.keyring.seal(JSON.stringify(value), `cookie:gatehouse-${kind}`)}`;
    const approvals = [
      { ...target(DCR_CLIENT), scopes: ['mcp:tools'], expiresAt: until },
      { ...target('<b>approved-2</b>'), scopes: ['mcp:tools'], expiresAt: until },
      { ...target('expired'), scopes: ['mcp:tools'], expiresAt: h.clock.now() - 1 },
    ];
    const denials = [{ ...target(CIMD_CLIENT), scopes: ['mcp:tools'], expiresAt: h.clock.now() + 60_000 }];
    const browser = { ...bob, cookie: [bob.cookie, seal('approvals', approvals), seal('denials', denials)].join('; ') };

    const page = await h.app.inject({ url: '/account', headers: { cookie: browser.cookie } });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /Remembered on this browser/);
    assert.ok(page.body.includes(DCR_CLIENT) && page.body.includes(CIMD_CLIENT));
    assert.ok(page.body.includes('&lt;b&gt;approved-2&lt;/b&gt;') && !page.body.includes('<b>approved-2'), 'escaped');
    assert.ok(!page.body.includes('>expired<'), 'an expired decision is not listed');
    assert.equal((page.body.match(/action="\/account\/decisions\/forget"/g) ?? []).length, 3);

    const forgetDenial = await post(browser, '/account/decisions/forget', { kind: 'denials', ...target(CIMD_CLIENT), csrf: bob.csrf });
    assert.equal(forgetDenial.statusCode, 303);
    assert.equal(forgetDenial.headers.location, '/account?done=decision-forgotten');
    assert.match(String(forgetDenial.headers['set-cookie']), /^gatehouse-denials=;.*Max-Age=0/);

    const forgetApproval = await post(browser, '/account/decisions/forget', { kind: 'approvals', ...target(DCR_CLIENT), csrf: bob.csrf });
    assert.equal(forgetApproval.statusCode, 303);
    const rewritten = /^gatehouse-approvals=([^;]+);/.exec(String(forgetApproval.headers['set-cookie']))?.[1];
    assert.ok(rewritten);
    const kept = JSON.parse(h.ctx.keyring.unseal(decodeURIComponent(rewritten), 'cookie:gatehouse-approvals')) as { clientId: string }[];
    assert.deepEqual(kept.map((decision) => decision.clientId), ['<b>approved-2</b>']);

    const noCsrf = await post(browser, '/account/decisions/forget', { kind: 'approvals', ...target(DCR_CLIENT) });
    assert.equal(noCsrf.statusCode, 403);
  });

  it('logs at info why /admin refused someone (subject, email and groups compared), for the operator only', async () => {
    const bob = await signIn(BOB);
    const before = h.logs.lines().length;
    assert.equal((await h.app.inject({ url: '/admin', headers: { cookie: bob.cookie } })).statusCode, 403);
    const refused = h.logs.lines().slice(before).find((line) => line.msg === 'admin console refused');
    assert.ok(refused, 'a log line says the console was refused');
    assert.equal(refused.level, 30);
    assert.equal(refused.subject, BOB.subject);
    assert.match(String(refused.reason), new RegExp(`subject "${BOB.subject}".* not in admin\\.users; .*none in admin\\.groups`));
  });

  it('names at most 20 of the groups of a refused user (one in thousands of groups made a line of megabytes)', () => {
    const groups = Array.from({ length: 5_000 }, (_, i) => `group-${i}`);
    const reason = consoleAdminRefusal({ subject: 's', groups } as unknown as Parameters<typeof consoleAdminRefusal>[0], { users: ['admin@example.test'], groups: ['admins'] });
    assert.match(reason ?? '', /groups \[group-0, .*group-19, and 4980 more\], none in admin\.groups/);
    assert.ok((reason ?? '').length < 600, `${reason?.length} characters`);
  });

  it('shows an admin clients, grants and tool calls with escaped client names', async () => {
    const alice = await signIn(ALICE, '/admin');
    const clients = await h.app.inject({ url: '/admin/clients', headers: { cookie: alice.cookie } });
    assert.equal(clients.statusCode, 200);
    assert.ok(clients.body.includes('Inspector &lt;script&gt;') && !clients.body.includes('<script>'));
    assert.ok(clients.body.includes('>CIMD<') && clients.body.includes('>DCR<') && clients.body.includes('>pre-registered<'));
    assert.equal(clients.headers['content-security-policy']?.includes("default-src 'none'"), true);
    const grants = await h.app.inject({ url: '/admin/grants', headers: { cookie: alice.cookie } });
    for (const id of Object.values(GRANTS)) assert.ok(grants.body.includes(`/admin/grants/${id}/revoke`), id);
    const overview = await h.app.inject({ url: '/admin', headers: { cookie: alice.cookie } });
    assert.equal(overview.statusCode, 200);
    assert.match(overview.body, /<svg class="chart"/);
    assert.match(overview.body, /Active grants<\/span><strong>4</);
  });

  it('refuses an admin revoke without the CSRF token, with a wrong one, or from another origin', async () => {
    const alice = await signIn(ALICE, '/admin');
    const url = `/admin/grants/${GRANTS.bobConfigured}/revoke`;
    const cases = [
      await post(alice, url, {}),
      await post(alice, url, { csrf: 'forged' }),
      await post(alice, url, { csrf: alice.csrf }, { origin: 'https://evil.example' }),
      await post(alice, url, { csrf: alice.csrf }, { 'sec-fetch-site': 'cross-site' }),
    ];
    for (const response of cases) assert.equal(response.statusCode, 403);
    assert.ok(await h.store.get(GRANT_NAMESPACE, GRANTS.bobConfigured), 'grant untouched');
    assert.equal(await h.store.get(REVOKED_GRANT_NAMESPACE, GRANTS.bobConfigured), undefined);
    const noSession = await h.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN },
      payload: `csrf=${encodeURIComponent(alice.csrf)}`,
    });
    assert.equal(noSession.statusCode, 403);
  });

  it('answers a console form sent in another body type with 415 on the error page, changing nothing', async () => {
    const alice = await signIn(ALICE, '/admin');
    for (const url of [`/admin/grants/${GRANTS.bobConfigured}/revoke`, '/admin/clients/revoke', '/admin/sign-out', `/account/grants/${GRANTS.bobConfigured}/revoke`]) {
      for (const [type, payload] of [['text/plain', `csrf=${alice.csrf}`], ['application/json', JSON.stringify({ csrf: alice.csrf })]] as const) {
        const response = await h.app.inject({ method: 'POST', url, headers: { cookie: alice.cookie, origin: ORIGIN, 'content-type': type }, payload });
        assert.equal(response.statusCode, 415, `${url} ${type}`);
        assert.match(response.headers['content-type'] ?? '', /^text\/html/);
      }
    }
    assert.ok(await h.store.get(GRANT_NAMESPACE, GRANTS.bobConfigured), 'grant untouched');
  });

  it('answers a console form larger than any form sends with 413 on the error page, changing nothing', async () => {
    const alice = await signIn(ALICE, '/admin');
    for (const url of [`/admin/grants/${GRANTS.bobConfigured}/revoke`, '/admin/clients/revoke', '/admin/sign-out', `/account/grants/${GRANTS.bobConfigured}/revoke`]) {
      const payload = `csrf=${alice.csrf}&pad=${'x'.repeat(100 * 1024)}`;
      const response = await h.app.inject({ method: 'POST', url, headers: { cookie: alice.cookie, origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' }, payload });
      assert.equal(response.statusCode, 413, url);
      assert.match(response.headers['content-type'] ?? '', /^text\/html/);
    }
    assert.ok(await h.store.get(GRANT_NAMESPACE, GRANTS.bobConfigured), 'grant untouched');
  });

  it('answers 404 for revoking a grant or client that does not exist', async () => {
    const alice = await signIn(ALICE, '/admin');
    const grant = await post(alice, '/admin/grants/no-such-grant/revoke', { csrf: alice.csrf });
    assert.equal(grant.statusCode, 404);
    assert.match(grant.headers['content-type'] ?? '', /^text\/html/);
    const client = await post(alice, '/admin/clients/revoke', { csrf: alice.csrf, client_id: 'no-such-client' });
    assert.equal(client.statusCode, 404);
    const garbage = await post(alice, '/admin/clients/revoke', { csrf: alice.csrf });
    assert.equal(garbage.statusCode, 400);
  });

  it('answers an unknown console address, or one that cannot be routed, with the error page whoever asks, and an API address with JSON', async () => {
    const alice = await signIn(ALICE, '/admin');
    const long = 'a'.repeat(200);
    const answers = [
      [await h.app.inject({ url: '/admin/nonexistent', headers: { cookie: alice.cookie } }), 404],
      [await post(alice, '/admin/nonexistent', { csrf: alice.csrf }), 404],
      [await h.app.inject({ url: '/account/nonexistent', headers: { cookie: alice.cookie, accept: '*/*' } }), 404],
      // Past Fastify's path-parameter limit: refused before routing, by the framework's error handler.
      [await post(alice, `/admin/grants/${long}/revoke`, { csrf: alice.csrf }), 400],
      [await post(alice, `/account/grants/${long}/revoke`, { csrf: alice.csrf }), 400],
    ] as const;
    for (const [answer, status] of answers) {
      assert.equal(answer.statusCode, status);
      assert.match(answer.headers['content-type'] ?? '', /^text\/html/);
      assert.match(String(answer.headers['content-security-policy']), /default-src 'none'/);
      assert.match(answer.body, /<!doctype html>/i);
    }
    for (const url of ['/no-such-page', '/administrator', '/accounts']) {
      const api = await h.app.inject({ url });
      assert.equal(api.statusCode, 404, url);
      assert.match(api.headers['content-type'] ?? '', /^application\/json/, url);
    }
  });

  it('lets a user see only their own apps, and answers 404 when they try to revoke another user\'s grant', async () => {
    const bob = await signIn(BOB);
    const page = await h.app.inject({ url: '/account', headers: { cookie: bob.cookie } });
    assert.ok(page.body.includes(GRANTS.bobDcr) && !page.body.includes(GRANTS.aliceDcr) && !page.body.includes(GRANTS.aliceCimd));
    assert.ok(!page.body.includes('href="/admin"'), 'no admin navigation for a non-admin');
    const other = await post(bob, `/account/grants/${GRANTS.aliceDcr}/revoke`, { csrf: bob.csrf });
    assert.equal(other.statusCode, 404);
    const missing = await post(bob, '/account/grants/does-not-exist/revoke', { csrf: bob.csrf });
    assert.equal(missing.statusCode, 404);
    const comparable = (body: string) => body.replace(/does-not-exist/g, '').replace(/request id <code[^<]*<\/code>/, '');
    assert.equal(comparable(other.body), comparable(missing.body), 'indistinguishable from a missing grant');
    assert.ok(await h.store.get(GRANT_NAMESPACE, GRANTS.aliceDcr));
    assert.equal(await h.store.get(REVOKED_GRANT_NAMESPACE, GRANTS.aliceDcr), undefined);
  });

  it('lets a user revoke their own app: grant gone and marked revoked for every replica', async () => {
    const bob = await signIn(BOB);
    const missingToken = await post(bob, `/account/grants/${GRANTS.bobDcr}/revoke`, {});
    assert.equal(missingToken.statusCode, 403);
    const revoked = await post(bob, `/account/grants/${GRANTS.bobDcr}/revoke`, { csrf: bob.csrf });
    assert.equal(revoked.statusCode, 303);
    assert.equal(revoked.headers.location, '/account?done=grant-revoked');
    assert.equal(await h.store.get(GRANT_NAMESPACE, GRANTS.bobDcr), undefined);
    assert.ok(await h.store.get(REVOKED_GRANT_NAMESPACE, GRANTS.bobDcr));
    const page = await h.app.inject({ url: '/account?done=grant-revoked', headers: { cookie: bob.cookie } });
    assert.match(page.body, /Access revoked/);
    assert.ok(!page.body.includes(GRANTS.bobDcr));
    const notice = await h.app.inject({ url: '/account?done=<b>hi</b>', headers: { cookie: bob.cookie } });
    assert.ok(!notice.body.includes('<b>hi</b>'));
  });

  it('answers two revocations of one grant at once as done, and counts and logs only the one that ended it', async () => {
    const bob = await signIn(BOB);
    const Adapter = createOidcAdapter(h.store, h.clock);
    const now = Math.floor(h.clock.now() / 1000);
    const revocations = async () => Number(/gatehouse_grant_revocations_total\{source="user"\} (\d+)/.exec((await h.app.inject({ url: '/metrics', remoteAddress: '127.0.0.1' })).body)?.[1] ?? 0);
    for (let round = 0; round < 3; round++) {
      const grantId = `grant-bob-twice-${randomUUID()}`;
      await new Adapter('Grant').upsert(grantId, { jti: grantId, kind: 'Grant', accountId: BOB.subject, clientId: CONFIGURED_CLIENT, iat: now, exp: now + 86_400, openid: { scope: 'openid' }, resources: { [RESOURCE]: 'mcp:tools' } }, 86_400);
      const counted = await revocations();
      const answers = await Promise.all([0, 1].map(() => post(bob, `/account/grants/${grantId}/revoke`, { csrf: bob.csrf })));
      // Both found it (the common case here) and both say it is revoked; one that came after the other's end is a 404.
      assert.ok(answers.some((answer) => answer.statusCode === 303));
      assert.ok(answers.every((answer) => answer.statusCode === 303 || answer.statusCode === 404), answers.map((answer) => answer.statusCode).join());
      assert.equal(await h.store.get(GRANT_NAMESPACE, grantId), undefined);
      assert.equal((await revocations()) - counted, 1);
      assert.equal(h.logs.lines().filter((line) => line.msg === 'grant revoked by its user' && line.grantId === grantId).length, 1);
    }
  });

  it("lists no approval on /account that this user withdrew since, and shows names and redirect URIs that cannot hide or reverse", async () => {
    const bob = await signIn(BOB);
    const until = h.clock.now() + 3600_000;
    const Adapter = createOidcAdapter(h.store, h.clock);
    await new Adapter('Client').upsert('invisible-name', { client_id: 'invisible-name', client_name: '\u200b\u2060 ', redirect_uris: ['http://127.0.0.1:5000/cb'], token_endpoint_auth_method: 'none' });
    const approval = (clientId: string, decidedAt: number, redirectUri = 'http://127.0.0.1:5000/cb') => ({ clientId, redirectUri, resource: RESOURCE, scopes: ['mcp:tools'], expiresAt: until, decidedAt });
    const approvals = [approval('withdrawn-app', h.clock.now() - 60_000), approval('invisible-name', h.clock.now() - 1000, 'http://127.0.0.1:5000/cb?x=\u202emoc.elgoog//:sptth')];
    await withdrawConsent(h.store, BOB.subject, 'withdrawn-app', h.clock.now() - 30_000, 30);
    const sealed = h.ctx.keyring.seal(JSON.stringify(approvals), 'cookie:gatehouse-approvals');
    const page = await h.app.inject({ url: '/account', headers: { cookie: `${bob.cookie}; gatehouse-approvals=${sealed}` } });
    assert.equal(page.statusCode, 200);
    assert.ok(!page.body.includes('withdrawn-app'), 'a withdrawn approval no longer answers, so it is not listed as one');
    assert.ok(page.body.includes('invisible-name'));
    assert.doesNotMatch(page.body, /<strong><bdi>[\s\u200b\u2060]*<\/bdi><\/strong>/, 'no empty name in place of the id');
    // The form sends the URI back as it is (a hidden value, to match the cookie's entry); nothing shown holds it raw.
    assert.doesNotMatch(page.body.replaceAll(/ value="[^"]*"/g, ''), /[\u202e\u200b\u2060]/);
    assert.ok(page.body.includes('cb?x=%E2%80%AEmoc.elgoog//:sptth'));
  });

  it("shows the signed-in person's own name in the page header as every other name: invisible characters marked, isolated, shortened", async () => {
    const whoOn = async (identity: UpstreamIdentity) => {
      const browser = await signIn(identity);
      const page = await h.app.inject({ url: '/account', headers: { cookie: browser.cookie } });
      return /class="who">([\s\S]*?)<input/.exec(page.body)?.[1] ?? '';
    };
    const who = await whoOn({ ...BOB, subject: 'tenant-1/hostile', name: `Mallory\u001b[2J\u0007\r\n\u202eppa\u200b${'x'.repeat(200)}` });
    // oxlint-disable-next-line no-control-regex -- the control characters are what must not reach the page
    assert.doesNotMatch(who, /[\u001b\u0007\r\n\u202e\u200b]/);
    assert.ok(who.startsWith('<span><bdi>Mallory<mark class="hidden-char" title="an invisible character">\\x1b</mark>[2J'), who);
    assert.ok(who.includes('<mark class="hidden-char" title="an invisible character">\\u202e</mark>ppa'), who);
    assert.ok(who.includes('x…</bdi>'), 'shortened like every name');
    // A name of nothing visible is not shown as an empty space: the e-mail stands in, as for every person shown.
    assert.match(await whoOn({ ...BOB, subject: 'tenant-1/blank', name: '\u200b\u2060 ', email: 'blank@example.com' }), /^<span><bdi>blank@example\.com<\/bdi><\/span>$/);
  });

  it('shows no notice for a `done` that names an Object.prototype member, on every page that reads it', async () => {
    const alice = await signIn(ALICE, '/admin');
    for (const page of ['/account', '/admin/clients', '/admin/grants']) {
      for (const done of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'valueOf']) {
        const response = await h.app.inject({ url: `${page}?done=${done}`, headers: { cookie: alice.cookie } });
        assert.equal(response.statusCode, 200, `${page}?done=${done}`);
        assert.doesNotMatch(response.body, /class="notice|native code|function/, `${page}?done=${done}`);
      }
    }
  });

  it('ends the session on sign-out (with CSRF) and refuses a tampered session cookie', async () => {
    const bob = await signIn(BOB);
    const out = await post(bob, '/admin/sign-out', { csrf: bob.csrf });
    assert.equal(out.statusCode, 200);
    assert.match(String(out.headers['set-cookie']), /gatehouse-console=;.*Max-Age=0/);
    const tampered = `${bob.cookie.slice(0, -4)}AAAA`;
    const response = await h.app.inject({ url: '/account', headers: { cookie: tampered } });
    assert.equal(response.statusCode, 303);
  });

  it('expires the session after 8 hours', async () => {
    const bob = await signIn(BOB);
    h.clock.advance(8 * 3_600_000 + 1);
    const response = await h.app.inject({ url: '/account', headers: { cookie: bob.cookie } });
    assert.equal(response.statusCode, 303);
  });
});

describe('the clients page when anyone has registered many clients', () => {
  // RFC 7591 registrations are open and never expire: 300 of them with 7,000-character names made a 5.7 MB page.
  it('shows the most recently used clients up to a limit, searchable by id or name, with long names shortened', async () => {
    const h = await startConsoleHarness();
    try {
      const Adapter = createOidcAdapter(h.store, h.clock);
      const now = Math.floor(h.clock.now() / 1000);
      for (let index = 0; index < CLIENTS_PAGE_LIMIT + 20; index++) {
        await new Adapter('Client').upsert(`flood-${index}`, {
          client_id: `flood-${index}`,
          client_name: `Flood ${index} ${'n'.repeat(3000)}`,
          client_id_issued_at: now - index,
          redirect_uris: ['http://127.0.0.1:1/cb'],
          token_endpoint_auth_method: 'none',
        });
      }
      const alice = await signInTo(h, ALICE, '/admin');
      const page = await h.app.inject({ url: '/admin/clients', headers: { cookie: alice.cookie } });
      assert.equal(page.statusCode, 200);
      const rows = page.body.match(/\/admin\/clients\/revoke/g)?.length ?? 0;
      assert.equal(rows, CLIENTS_PAGE_LIMIT, 'one revoke form per row shown');
      assert.match(page.body, new RegExp(`Showing ${CLIENTS_PAGE_LIMIT} of \\d+ clients, the ones in use first`));
      assert.ok(!page.body.includes('n'.repeat(NAME_DISPLAY_LIMIT)), 'no name is shown whole past the limit');
      assert.ok(page.body.length < 400_000, `${page.body.length} bytes`);

      const found = await h.app.inject({ url: '/admin/clients?q=FLOOD-21', headers: { cookie: alice.cookie } });
      assert.equal(found.statusCode, 200);
      assert.match(found.body, /title="flood-21"/);
      assert.match(found.body, /title="flood-210"/);
      assert.doesNotMatch(found.body, /title="flood-3"/);
      const none = await h.app.inject({ url: '/admin/clients?q=nothing-like-it', headers: { cookie: alice.cookie } });
      assert.match(none.body, /No client matches the search/);
      // A search that is not one (given twice, too long) is said so on the console's error page, not ignored.
      for (const query of ['q=a&q=b', `q=${'x'.repeat(201)}`]) {
        const refused = await h.app.inject({ url: `/admin/clients?${query}`, headers: { cookie: alice.cookie, accept: 'text/html' } });
        assert.equal(refused.statusCode, 400, query);
        assert.match(refused.headers['content-type'] ?? '', /^text\/html/);
        assert.match(refused.body, /client search is not valid/);
      }

      const audit = await h.app.inject({ url: '/admin/audit', headers: { cookie: alice.cookie } });
      assert.equal(audit.statusCode, 200);
      assert.ok(audit.body.length < 200_000, `the audit filter's suggestions are bounded: ${audit.body.length} bytes`);
    } finally {
      await h.close();
    }
  });
});

describe('a user in many groups', () => {
  // The sealed cookie carried every group: 150 GUID groups made it 8 KB, which browsers drop (ERR_TOO_MANY_REDIRECTS).
  it('gets a console cookie browsers keep, and admin rights from a group among hundreds', async () => {
    const h = await startConsoleHarness({ config: (config) => ({ ...config, admin: { ...config.admin, users: [], groups: ['ops'] } }) });
    try {
      const groups = [...Array.from({ length: 300 }, () => randomUUID()), 'ops'];
      const identity = { ...BOB, name: `Bob ${'n'.repeat(10_000)}`, groups };
      const bob = await signInTo(h, identity, '/admin');
      assert.ok(bob.cookie.length < 4000, `cookie of ${bob.cookie.length} characters`);
      const page = await h.app.inject({ url: '/admin', headers: { cookie: bob.cookie } });
      assert.equal(page.statusCode, 200, 'the groups were kept server-side and matched admin.groups');
    } finally {
      await h.close();
    }
  });
});

describe('console sessions are revocable server-side', () => {
  it('refuses a copy of the session cookie taken before sign-out', async () => {
    const h = await startConsoleHarness();
    try {
      const bob = await signInTo(h, BOB, '/account');
      const copied = bob.cookie;
      const out = await h.app.inject({
        method: 'POST',
        url: '/admin/sign-out',
        headers: { cookie: bob.cookie, origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ csrf: bob.csrf }).toString(),
      });
      assert.equal(out.statusCode, 200);
      const replayed = await h.app.inject({ url: '/account', headers: { cookie: copied } });
      assert.equal(replayed.statusCode, 303, 'the copied cookie is signed out too');
      assert.match(String(replayed.headers.location), /^\/admin\/sign-in/);
    } finally {
      await h.close();
    }
  });

  it('asks the IdP again for admin rights after a few minutes, so leaving the admin group takes effect', async () => {
    const h = await startConsoleHarness({ config: (config) => ({ ...config, admin: { ...config.admin, users: [], groups: ['ops'] } }) });
    try {
      const alice = await signInTo(h, ALICE, '/admin');
      assert.equal((await h.app.inject({ url: '/admin', headers: { cookie: alice.cookie } })).statusCode, 200);
      // Alice leaves the admin group at the IdP; her console session is still young enough to be trusted.
      h.clock.advance(ADMIN_RECHECK_SECONDS * 1000 + 1);
      const stale = await h.app.inject({ url: '/admin', headers: { cookie: alice.cookie } });
      assert.equal(stale.statusCode, 303);
      assert.equal(stale.headers.location, '/admin/sign-in?return=%2Fadmin');
      const denied = await h.app.inject({
        method: 'POST',
        url: `/admin/grants/${GRANTS.bobDcr}/revoke`,
        headers: { cookie: alice.cookie, origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ csrf: alice.csrf }).toString(),
      });
      assert.equal(denied.statusCode, 403, 'no admin action on stale rights');
      // Back through the IdP, which now reports her without the group.
      const again = await signInTo(h, { ...ALICE, groups: [] }, '/admin');
      assert.equal((await h.app.inject({ url: '/admin', headers: { cookie: again.cookie } })).statusCode, 403);
      // The /account pages do not depend on admin rights: the older session still works there.
      assert.equal((await h.app.inject({ url: '/account', headers: { cookie: alice.cookie } })).statusCode, 200);
    } finally {
      await h.close();
    }
  });
});

describe('console session cookie attributes', () => {
  it('uses __Host- with Secure, HttpOnly, SameSite=Lax, Path=/ and no Domain when secure', async () => {
    const h = await startConsoleHarness();
    try {
      const sessions = createConsoleSessions({ keyring: h.ctx.keyring, clock: new ManualClock(), random: cryptoRandom, secure: true, store: h.store });
      const headers: string[] = [];
      const reply = { header: (_name: string, value: string) => headers.push(value) } as unknown as Parameters<typeof sessions.start>[0];
      await sessions.start(reply, BOB);
      assert.equal(sessions.cookieName, '__Host-gatehouse-console');
      assert.match(headers[0] ?? '', /^__Host-gatehouse-console=[^;]+; Max-Age=28800; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
      assert.ok(!(headers[0] ?? '').includes(BOB.email), 'the value is sealed, not readable');
    } finally {
      await h.close();
    }
  });
});

describe('/metrics', () => {
  it('is open to loopback in demo mode and lists the Gatehouse metrics', async () => {
    const h = await startConsoleHarness();
    try {
      await h.app.inject({ url: '/admin' });
      h.metrics.tokenIssued('access_token');
      // One channel for the broker: 4 hits of 6 lookups served (a failure is no lookup answered).
      for (let i = 0; i < 4; i++) h.metrics.downstreamToken('cache_hit', 'graph');
      h.metrics.downstreamToken('exchanged', 'graph');
      h.metrics.downstreamToken('waited', 'graph');
      h.metrics.downstreamToken('failed', 'graph');
      const response = await h.app.inject({ url: '/metrics', remoteAddress: '127.0.0.1' });
      assert.equal(response.statusCode, 200);
      assert.match(response.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
      assert.match(response.body, /gatehouse_http_requests_total\{route="\/admin",method="GET",status="303"\} 1/);
      assert.match(response.body, /gatehouse_tokens_issued_total\{kind="access_token"\} 1/);
      assert.match(response.body, /gatehouse_downstream_cache_hit_ratio 0\.666/);
      const alice = await signInTo(h, ALICE, '/admin');
      const overview = await h.app.inject({ url: '/admin', headers: { cookie: alice.cookie } });
      assert.match(overview.body, /graph: 6 tokens served, 1 failed/);
      for (const name of ['gatehouse_http_request_duration_seconds_bucket', 'gatehouse_open_streams', 'gatehouse_store_operation_duration_seconds', 'gatehouse_rate_limit_rejections_total', 'gatehouse_upstream_errors_total']) {
        assert.ok(response.body.includes(name), name);
      }
      const remote = await h.app.inject({ url: '/metrics', remoteAddress: '203.0.113.9' });
      assert.equal(remote.statusCode, 404);
    } finally {
      await h.close();
    }
  });

  it('requires the configured bearer token when admin.metricsToken is set', async () => {
    const h = await startConsoleHarness({ config: (config) => ({ ...config, admin: { ...config.admin, metricsToken: 'scrape-token-123' } }) });
    try {
      for (const authorization of [undefined, 'Bearer wrong', 'Basic c2NyYXBl', 'Bearer scrape-token-1234']) {
        const response = await h.app.inject({ url: '/metrics', headers: authorization === undefined ? {} : { authorization } });
        assert.equal(response.statusCode, 401, String(authorization));
        assert.match(String(response.headers['www-authenticate']), /^Bearer/);
      }
      const ok = await h.app.inject({ url: '/metrics', headers: { authorization: 'bearer scrape-token-123' }, remoteAddress: '203.0.113.9' });
      assert.equal(ok.statusCode, 200);
    } finally {
      await h.close();
    }
  });

  it('is served only on the separate admin.metricsPort listener when one is set', async () => {
    const h = await startConsoleHarness({ config: (config) => ({ ...config, admin: { ...config.admin, metricsPort: 0, metricsToken: 'scrape-token-123' } }) });
    const listener = await startMetricsListener(h.ctx, h.metrics, 0);
    try {
      const main = await h.app.inject({ url: '/metrics', headers: { authorization: 'Bearer scrape-token-123' }, remoteAddress: '127.0.0.1' });
      assert.equal(main.statusCode, 404, 'not on the main port');
      const { port } = listener.server.address() as { port: number };
      const denied = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(denied.status, 401);
      await denied.text();
      const ok = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: 'Bearer scrape-token-123' } });
      assert.equal(ok.status, 200);
      assert.match(await ok.text(), /gatehouse_http_requests_total/);
      const other = await fetch(`http://127.0.0.1:${port}/admin`);
      assert.equal(other.status, 404);
      await other.text();
    } finally {
      await listener.close();
      await h.close();
    }
  });
});
