import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { queryAuditBounded, recentUseSince } from '../../src/admin/audit-query.ts';
import { recentUseKey } from '../../src/admin/grants.ts';
import { readAuditSlice, sliceWindow } from '../../src/admin/audit-range.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { ALICE, auditRecord, BOB, DCR_CLIENT, seedAudit } from './seed.ts';

/** Time-range reads of the audit log stay bounded and say when they were cut. */
describe('audit range reads', () => {
  it('reads a slice up to its cap, and says when more records fell inside it', async () => {
    const clock = new ManualClock(1_000_000);
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    try {
      await seedAudit(store, [999, 1000, 1001, 1002, 1003, 2000].map((time) => auditRecord({ time })));
      const capped = await readAuditSlice(store, 1000, 2000, 3);
      assert.deepEqual(capped.entries.map(({ value }) => value.time), [1000, 1001, 1002]);
      assert.equal(capped.truncated, true);
      const whole = await readAuditSlice(store, 1000, 2000, 4);
      assert.equal(whole.truncated, false, 'a record past the end does not count as cut');
      assert.deepEqual(whole.entries.map(({ value }) => value.time), [1000, 1001, 1002, 1003]);
      const newest = await queryAuditBounded(store, { since: 0, until: 3000, limit: 2 });
      assert.deepEqual(newest.entries.map((entry) => entry.time), [2000, 1003]);
    } finally {
      await store.close();
    }
  });

  it('finds the latest use per user and client inside the window only', async () => {
    const clock = new ManualClock(1_000_000);
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    try {
      // A grant's end (an operator revoking one) is no use of its client.
      const grantEnded = auditRecord({ time: 8_000, user: BOB.subject, method: 'grant/end', tool: undefined, reason: 'admin' });
      // Nor is a refused token, which names its user and client (a revoked grant's token, still sent).
      const refused = auditRecord({ time: 9_000, outcome: 'denied', status: 401, reason: 'invalid_token' });
      await seedAudit(store, [auditRecord({ time: 100 }), auditRecord({ time: 5_000 }), auditRecord({ time: 7_000 }), auditRecord({ time: 6_000, user: BOB.subject }), grantEnded, refused, auditRecord({ time: 20_000 })]);
      const recent = await recentUseSince(store, 1_000, 10_000);
      assert.deepEqual([...recent], [[recentUseKey(ALICE.subject, DCR_CLIENT), 7_000], [recentUseKey(BOB.subject, DCR_CLIENT), 6_000]]);
    } finally {
      await store.close();
    }
  });

  it("reads a user's or a tool's records through the index newest first, bounded to the window and the page", async () => {
    // It read every record of the user at once: half a million for a busy agent, for a page of fifty.
    const clock = new ManualClock(1_000_000);
    const sqlite = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    let read = 0;
    const store = new Proxy(sqlite, {
      get(target, property, receiver) {
        if (property === 'findByIndex') {
          return async (...args: Parameters<typeof sqlite.findByIndex>) => {
            const found = await target.findByIndex(...args);
            read += found.length;
            return found;
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    try {
      const writes = Array.from({ length: 5_000 }, (_, i) => {
        const record = auditRecord({ time: i + 1, ...(i % 10 === 0 ? { user: BOB.subject, tool: 'other' } : {}) });
        return { namespace: 'audit', key: `${String(record.time).padStart(15, '0')}-r${i}`, value: record, options: { indexes: { user: record.user!, tool: record.tool! }, ttlSeconds: 86_400 } };
      });
      await sqlite.setMany(writes);
      const byUser = await queryAuditBounded(store, { user: ALICE.subject, since: 1_000, until: 4_000, limit: 3 });
      assert.deepEqual(byUser.entries.map((entry) => entry.time), [4_000 - 1, 4_000 - 2, 4_000 - 3]);
      assert.equal(byUser.truncated, false);
      assert.ok(read <= 2_000, `one page read, not the user's ${4_500} records (${read})`);
      read = 0;
      const byTool = await queryAuditBounded(store, { tool: 'other', since: 0, until: 10_000, limit: 2 });
      assert.deepEqual(byTool.entries.map((entry) => entry.time), [4_991, 4_981]);
      read = 0;
      // Nothing matches the other filters: the pages go on through the window, and stop at its start.
      const none = await queryAuditBounded(store, { user: ALICE.subject, outcome: 'denied', since: 2_000, until: 4_000, limit: 3 });
      assert.deepEqual(none.entries, []);
      assert.ok(read <= 2_000, `only the window's records (${read})`);
      // A record that does not parse in the newest page does not end the paging early: an old match is still found.
      await sqlite.set('audit', `${String(4_999).padStart(15, '0')}-broken`, { not: 'an audit record' }, { indexes: { user: ALICE.subject } });
      await sqlite.set('audit', `${String(5).padStart(15, '0')}-old`, auditRecord({ time: 5, outcome: 'denied' }), { indexes: { user: ALICE.subject } });
      const old = await queryAuditBounded(store, { user: ALICE.subject, outcome: 'denied', since: 0, until: 10_000, limit: 3 });
      assert.deepEqual(old.entries.map((entry) => entry.time), [5]);
      assert.equal(old.truncated, false);
    } finally {
      await sqlite.close();
    }
  });

  it('cuts a window into equal slices that cover it exactly', () => {
    assert.deepEqual(sliceWindow(0, 90, 3), [{ from: 0, to: 30 }, { from: 30, to: 60 }, { from: 60, to: 90 }]);
  });
});
