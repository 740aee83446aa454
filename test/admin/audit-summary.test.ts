import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { denialReason, summarizeAudit } from '../../src/admin/audit-summary.ts';
import { niceCeiling, renderTrafficChart } from '../../src/admin/pages/chart.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { auditRecord, BOB, seedAudit } from './seed.ts';

/** The overview's figures: counted from the audit records in a time window, bounded, and drawn with labelled axes. */
describe('audit summary', () => {
  const clock = new ManualClock(Date.UTC(2026, 4, 1, 12));
  let store: Store;
  before(async () => {
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    const now = clock.now();
    await seedAudit(store, [
      auditRecord({ time: now - 2 * 3_600_000, tool: 'outside_the_hour' }),
      auditRecord({ time: now - 50 * 60_000, tool: 'hello' }),
      auditRecord({ time: now - 40 * 60_000, tool: 'hello', user: BOB.subject }),
      auditRecord({ time: now - 30 * 60_000, tool: 'me', outcome: 'denied', status: 200, reason: 'policy: weekdays only' }),
      // Another call of the same (batch) request: a call of its tool, not a second request, denial or user's request.
      auditRecord({ time: now - 30 * 60_000, tool: 'echo', outcome: 'denied', status: 200, reason: 'policy: weekdays only', batchCall: true }),
      // A refused token names whose it was: not that user's traffic.
      auditRecord({ time: now - 20 * 60_000, method: 'initialize', tool: undefined, outcome: 'denied', status: 401, reason: 'invalid_token' }),
      auditRecord({ time: now - 10 * 60_000, method: 'initialize', tool: undefined, outcome: 'denied', status: 401, user: undefined }),
      auditRecord({ time: now - 15 * 60_000, method: 'initialize', tool: undefined, outcome: 'denied', status: 401, reason: 'no token', user: undefined }),
      auditRecord({ time: now - 5 * 60_000, tool: 'echo', outcome: 'error', status: 502, route: '/other' }),
      auditRecord({ time: now - 1_000, tool: 'hello', outcome: 'client_closed' }),
      // A grant's end is in the trail, not in the traffic.
      auditRecord({ time: now - 2_000, method: 'grant/end', tool: undefined, reason: 'refresh_reuse' }),
    ]);
  });
  after(async () => {
    await store.close();
  });

  it('counts requests, denials by status and reason, errors, routes and the top tools and users of the window', async () => {
    const summary = await summarizeAudit(store, '1h', clock.now());
    assert.equal(summary.buckets.length, 12);
    // A request without a token (a client's discovery step) is listed by its reason but not counted as denied.
    assert.deepEqual([summary.requests, summary.denied, summary.errors, summary.truncated], [8, 3, 1, false]);
    assert.equal(summary.buckets.reduce((total, bucket) => total + bucket.denied, 0), 3);
    assert.deepEqual(summary.denials, [
      { status: 401, reason: 'invalid_token', count: 1 },
      { status: 401, reason: 'no token', count: 1 },
      { status: 401, reason: 'no valid token', count: 1 },
      { status: 200, reason: 'policy', count: 1 },
    ].sort((a, b) => b.count - a.count || a.status - b.status));
    assert.deepEqual(summary.topTools, [{ name: 'hello', count: 3 }, { name: 'echo', count: 2 }, { name: 'me', count: 1 }]);
    assert.equal(summary.topUsers[0]?.count, 4);
    assert.deepEqual(summary.routes.get('/other'), { requests: 1, errors: 1 });
    assert.equal(summary.routes.get('/mcp')?.requests, 7);
    const day = await summarizeAudit(store, '24h', clock.now());
    assert.equal(day.requests, 9, 'the 24-hour window includes the older call');
  });

  it('marks a window whose buckets held more than the cap, so its figures read as lower bounds', async () => {
    const summary = await summarizeAudit(store, '1h', clock.now(), { cap: 0 });
    assert.equal(summary.truncated, true);
    assert.equal(summary.requests, 0);
  });

  it('names a denial by the recorded reason, else by its status', () => {
    assert.equal(denialReason({ status: 200, reason: 'tool pinning: changed' }), 'tool pinning');
    assert.equal(denialReason({ status: 403, reason: 'insufficient_scope' }), 'insufficient_scope');
    assert.equal(denialReason({ status: 429 }), 'rate limited');
    assert.equal(denialReason({ status: 418 }), 'HTTP 418');
    assert.equal(denialReason({ status: 0 }), 'no answer sent');
  });

  it('draws the chart with labelled axes and round ticks', async () => {
    assert.deepEqual([0, 1, 3, 7, 12, 180, 999].map(niceCeiling), [1, 1, 5, 10, 20, 200, 1000]);
    const summary = await summarizeAudit(store, '1h', clock.now());
    const svg = renderTrafficChart(summary.buckets, { bucketLabel: '5 min', withDate: false });
    assert.match(svg, />requests per 5 min<\/text>/);
    assert.match(svg, />time \(UTC\)<\/text>/);
    assert.match(svg, />11:00<\/text>/);
    assert.match(svg, />12:00<\/text>/);
    assert.doesNotMatch(svg, /style=|<script/);
  });
});
