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
      await seedAudit(store, [auditRecord({ time: 100 }), auditRecord({ time: 5_000 }), auditRecord({ time: 7_000 }), auditRecord({ time: 6_000, user: BOB.subject }), auditRecord({ time: 20_000 })]);
      const recent = await recentUseSince(store, 1_000, 10_000);
      assert.deepEqual([...recent], [[recentUseKey(ALICE.subject, DCR_CLIENT), 7_000], [recentUseKey(BOB.subject, DCR_CLIENT), 6_000]]);
    } finally {
      await store.close();
    }
  });

  it('cuts a window into equal slices that cover it exactly', () => {
    assert.deepEqual(sliceWindow(0, 90, 3), [{ from: 0, to: 30 }, { from: 30, to: 60 }, { from: 60, to: 90 }]);
  });
});
