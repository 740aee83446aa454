import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createAuditLog, type AuditLog } from '../../src/proxy/audit.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { signInTo, startConsoleHarness, type ConsoleHarness } from './console-harness.ts';
import { ALICE, auditRecord, BOB } from './seed.ts';

/**
 * The overview counts the fleet, not the replica it is served from: two gateway instances, each with its own Redis
 * connection and its own audit writer (the proxy's, src/proxy/audit.ts), record requests; the overview of either
 * instance shows both instances' requests, denials and users.
 */
describe('admin overview across replicas sharing one Redis', () => {
  let redis: RedisServer;
  const stores: Store[] = [];
  const consoles: ConsoleHarness[] = [];
  const audits: AuditLog[] = [];

  before(async () => {
    redis = await startRedisServer();
    for (let replica = 0; replica < 2; replica++) {
      const h = await startConsoleHarness({
        // The harness's clock starts at this instant too, so records and sessions share one notion of now.
        store: await createRedisStore({ url: redis.url, keyPrefix: 'fleet:', clock: new ManualClock(Date.UTC(2026, 4, 1, 12)), purgeIntervalMs: 0 }),
        config: (config) => ({ ...config, routes: config.routes.map((route) => ({ ...route, backend: 'http://127.0.0.1:9/mcp' })) }),
      });
      stores.push(h.store);
      consoles.push(h);
      audits.push(createAuditLog({ store: h.store, random: cryptoRandom, logger: pino({ level: 'silent' }), output: 'store', retentionDays: 1 }));
    }
  });
  after(async () => {
    for (const audit of audits) await audit.close();
    for (const h of consoles) await h.close();
    for (const store of stores) await store.close();
    await redis?.stop();
  });

  it('shows the requests both instances recorded, on either instance', async () => {
    const [first, second] = consoles as [ConsoleHarness, ConsoleHarness];
    const now = first.clock.now();
    for (let i = 0; i < 3; i++) audits[0]?.record(auditRecord({ time: now - 60_000 + i, tool: 'first_replica_tool' }));
    for (let i = 0; i < 2; i++) audits[1]?.record(auditRecord({ time: now - 30_000 + i, tool: 'second_replica_tool', user: BOB.subject, outcome: 'denied', status: 401, reason: 'invalid_token' }));
    await Promise.all(audits.map((audit) => audit.flush()));

    for (const h of [first, second]) {
      const alice = await signInTo(h, { ...ALICE }, '/admin');
      const page = await h.app.inject({ url: '/admin?window=1h', headers: { cookie: alice.cookie } });
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /Requests<\/span><strong>5</, 'five requests from two instances');
      assert.match(page.body, /Denied<\/span><strong>2 · 40\.0 %</);
      assert.match(page.body, /<td data-label="Status">401<\/td><td data-label="Reason">invalid_token<\/td><td data-label="Requests">2<\/td>/);
      assert.match(page.body, /first_replica_tool/);
      assert.match(page.body, /second_replica_tool/);
    }
  });

  it('escapes what callers chose: a tool name, a refusal reason, a route and a subject in the audit records', async () => {
    const h = consoles[0] as ConsoleHarness;
    const now = h.clock.now();
    const hostile = '<img src=x onerror=alert(1)>';
    audits[0]?.record(auditRecord({ time: now - 1_000, tool: hostile, user: `${hostile}user`, route: `/r"${hostile}`, outcome: 'denied', status: 403, reason: `policy: ${hostile}` }));
    await audits[0]?.flush();
    const alice = await signInTo(h, { ...ALICE }, '/admin');
    const page = await h.app.inject({ url: '/admin?window=1h', headers: { cookie: alice.cookie } });
    assert.equal(page.statusCode, 200);
    assert.doesNotMatch(page.body, /<img src=x/);
    assert.match(page.body, /&lt;img src=x onerror=alert\(1\)&gt;/);
  });

  it('answers an unknown window or parameter with the 400 page', async () => {
    const h = consoles[0] as ConsoleHarness;
    const alice = await signInTo(h, { ...ALICE }, '/admin');
    for (const query of ['window=1y', 'window=1h&window=24h', 'zoom=2']) {
      const page = await h.app.inject({ url: `/admin?${query}`, headers: { cookie: alice.cookie, accept: 'text/html' } });
      assert.equal(page.statusCode, 400, query);
      assert.match(page.body, /The overview cannot show that/, query);
    }
  });
});
