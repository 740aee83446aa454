import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { auditQueryFor, parseAuditFilter, resolveClient, resolveUser } from '../../src/admin/audit-filter.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { signInTo, startConsoleHarness, type ConsoleBrowser, type ConsoleHarness } from './console-harness.ts';
import { ALICE, BOB, auditRecord, CIMD_CLIENT, DCR_CLIENT, RESOURCE, seedAudit } from './seed.ts';

/**
 * The console's tool-call filter: what people type (names, e-mails, app names) finds the records (subjects, client
 * ids); a bad filter is the styled 400 page naming the field, never a 500; and the pages show names, ids on hover.
 */
const accounts = new Map([
  [ALICE.subject, { ...ALICE, firstSeenAt: 0, lastSeenAt: 0 }],
  [BOB.subject, { ...BOB, firstSeenAt: 0, lastSeenAt: 0 }],
]);

describe('audit filter: parsing and resolving', () => {
  it('defaults to the last 24 hours and drops empty fields', () => {
    assert.deepEqual(parseAuditFilter({ user: '', tool: ' hello ', outcome: '' }), { window: '24h', tool: 'hello' });
  });

  for (const [name, query, words] of [
    ['an unknown window', { window: '2y' }, /window: choose one of 1h, 24h, 7d, 30d/],
    ['an unknown outcome', { outcome: 'maybe' }, /outcome: choose one of allowed/],
    ['a repeated field', { user: ['a', 'b'] }, /user:/],
    ['an over-long user', { user: 'x'.repeat(513) }, /user: at most 512 characters/],
    // Named as what the filter takes, not echoed: the name is the requester's text ("Call the helpdesk at …").
    ['an unknown field', { 'colour Call the helpdesk': 'red' }, /^(?!.*helpdesk).*unknown parameter; the filter takes user, client, tool, outcome, window/],
  ] as const) {
    it(`refuses ${name} with invalid_request naming it`, () => {
      assert.throws(
        () => parseAuditFilter(query),
        (error: unknown) => error instanceof ProtocolError && error.code === 'invalid_request' && error.status === 400 && words.test(error.description),
      );
    });
  }

  it('resolves an e-mail or a name (any case) to the subject, and an app name to its client id', () => {
    assert.equal(resolveUser('ALICE@example.com', accounts), ALICE.subject);
    assert.equal(resolveUser('bob user', accounts), BOB.subject);
    assert.equal(resolveUser(BOB.subject, accounts), BOB.subject);
    assert.equal(resolveUser('nobody', accounts), 'nobody');
    const names = new Map([[DCR_CLIENT, 'Inspector'], ['other', 'Inspector 2']]);
    assert.equal(resolveClient('inspector', names), DCR_CLIENT);
    assert.equal(resolveClient(CIMD_CLIENT, names), CIMD_CLIENT);
  });

  it('finds every client of a name someone registered again, and refuses to guess between two people of one name', () => {
    // Anyone may register "Inspector" too: the filter by that name then found nothing at all.
    assert.deepEqual(resolveClient('Inspector', new Map([[DCR_CLIENT, 'Inspector'], ['copycat', 'inspector']])), [DCR_CLIENT, 'copycat']);
    const twins = new Map([...accounts, ['tenant/alice-2', { ...ALICE, subject: 'tenant/alice-2', email: 'alice2@example.com', firstSeenAt: 0, lastSeenAt: 0 }]]);
    assert.throws(() => resolveUser(ALICE.name!, twins), (error: unknown) => error instanceof ProtocolError && error.status === 400 && /2 people match/.test(error.description));
    assert.equal(resolveUser('alice2@example.com', twins), 'tenant/alice-2', 'an e-mail still picks one');
  });

  it('turns the window into a time range ending now', () => {
    const query = auditQueryFor({ window: '1h', user: 'alice@example.com' }, { accounts, clientNames: new Map() }, 10_000_000, 100);
    assert.deepEqual(query, { limit: 100, since: 10_000_000 - 3_600_000, until: 10_000_001, user: ALICE.subject });
  });
});

describe('audit, grants and clients pages (in-process): names, filters, bad filters', () => {
  let h: ConsoleHarness;
  let alice: ConsoleBrowser;
  before(async () => {
    h = await startConsoleHarness();
    const now = h.clock.now();
    await seedAudit(h.store, [
      auditRecord({ time: now - 2 * 86_400_000, tool: 'old_tool' }),
      auditRecord({ time: now - 600_000, tool: 'hello', user: BOB.subject }),
      auditRecord({ time: now - 300_000, tool: 'me', outcome: 'denied', status: 403, reason: 'policy: weekdays only' }),
      auditRecord({ time: now - 60_000, tool: 'echo', client: CIMD_CLIENT }),
    ]);
    alice = await signInTo(h, ALICE, '/admin');
  });
  after(async () => {
    await h.close();
  });
  const get = (url: string) => h.app.inject({ url, headers: { cookie: alice.cookie, accept: 'text/html' } });
  const rows = (body: string) => (body.match(/<tr><td/g) ?? []).length;

  it('shows people and apps by name, with the ids on hover', async () => {
    const page = await get('/admin/audit');
    assert.equal(page.statusCode, 200);
    assert.equal(rows(page.body), 3, 'the last 24 hours by default');
    assert.ok(page.body.includes(`<span class="named" title="${ALICE.subject}"><bdi>${ALICE.name}</bdi></span><br><span class="muted"><bdi>${ALICE.email}</bdi></span>`));
    assert.ok(page.body.includes(`<span class="named" title="${DCR_CLIENT}"><bdi>Inspector &lt;script&gt;</bdi></span>`));
    assert.ok(page.body.includes('policy: weekdays only'), 'the denial says why');
    assert.ok(!page.body.includes(`<code>${ALICE.subject}</code>`), 'no bare subject where a name is known');
    const grants = await get('/admin/grants');
    assert.ok(grants.body.includes(`<span class="named" title="${BOB.subject}"><bdi>${BOB.name}</bdi></span>`));
    assert.ok(grants.body.includes(`<span class="named" title="configured-app"><bdi>Configured App</bdi></span>`));
    const clients = await get('/admin/clients');
    assert.ok(clients.body.includes(`<span class="named" title="${DCR_CLIENT}"><bdi>Inspector &lt;script&gt;</bdi></span>`));
  });

  it('filters by user (e-mail), client (name), tool, outcome and window', async () => {
    assert.equal(rows((await get('/admin/audit?user=bob%40example.com')).body), 1);
    assert.equal(rows((await get('/admin/audit?client=Inspector+%3Cscript%3E')).body), 2);
    assert.equal(rows((await get(`/admin/audit?client=${encodeURIComponent(CIMD_CLIENT)}`)).body), 1);
    assert.equal(rows((await get('/admin/audit?outcome=denied')).body), 1);
    assert.equal(rows((await get('/admin/audit?tool=echo&window=1h')).body), 1);
    assert.equal(rows((await get('/admin/audit?window=7d')).body), 4);
    const none = await get('/admin/audit?window=1h&tool=old_tool');
    assert.match(none.body, /No matching tool calls in the last hour/);
    assert.match(none.body, /<option value="1h" selected>/);
  });

  it('answers a bad filter with the styled 400 page naming the field, never a 500', async () => {
    for (const query of ['window=forever', 'outcome=%3Cscript%3E', 'user=a&user=b', `tool=${'t'.repeat(300)}`, 'sort=time']) {
      const page = await get(`/admin/audit?${query}`);
      assert.equal(page.statusCode, 400, query);
      assert.match(page.headers['content-type'] ?? '', /^text\/html/);
      assert.match(page.body, /The tool-call filter is not valid/, query);
      // The console's advice, not the OAuth pages' ("go back to the application").
      assert.match(page.body, /What to do next:<\/strong> Change the filter and try again\. <a href="\/admin\/audit">Tool calls<\/a>/, query);
      assert.match(page.body, /request id/);
      assert.ok(!page.body.includes('<script>'), query);
      // In the form's words, not the validator's ("expected string, received array").
      assert.doesNotMatch(page.body, /expected string|received array/, query);
      if (query === 'user=a&user=b') assert.match(page.body, /user: given once, as text/);
    }
  });

  it('shows /account the scope descriptions the consent page showed', async () => {
    const bob = await signInTo(h, BOB, '/account');
    const page = await h.app.inject({ url: '/account', headers: { cookie: bob.cookie } });
    const description = h.ctx.config.routes[0]?.scopes['mcp:tools'];
    assert.ok(description && RESOURCE === `${h.ctx.publicUrl}/mcp`);
    assert.ok(page.body.includes(`<li>${description} <code class="scope">mcp:tools</code></li>`), 'described as on the consent page');
  });
});
