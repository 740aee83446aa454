import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { WalCheckpointer } from '../../src/store/wal-checkpointer.ts';

/**
 * The SQLite store's checkpoints (wal-checkpointer.ts): the gateway's connection never checkpoints inside a commit
 * (whose fsyncs would stop the event loop), the checkpointer moves the WAL into the database file beside it, the WAL
 * starts over instead of growing, and a checkpointer that fails hands the job back to SQLite.
 */
const size = (path: string): number => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.fail(`timed out waiting until ${what}`);
}

/** ≈ 2 MB of records: half of the 1,000 pages at which SQLite would checkpoint inside a commit by itself. */
async function writeTwoMegabytes(store: Awaited<ReturnType<typeof createSqliteStore>>, round: string): Promise<void> {
  const value = 'v'.repeat(4000);
  for (let i = 0; i < 500; i += 50) {
    await Promise.all(Array.from({ length: 50 }, (_, j) => store.set('bulk', `${round}-${i + j}`, value)));
  }
}

describe('SQLite WAL checkpoints beside the event loop', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-wal-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('moves committed writes into the database file, and the WAL starts over instead of growing', async () => {
    const file = join(dir, 'moves.db');
    const store = await createSqliteStore({ path: file, clock: new ManualClock(), purgeIntervalMs: 0 });
    try {
      const empty = size(file);
      await writeTwoMegabytes(store, 'first');
      // Below SQLite's own threshold, so only the checkpointer can have copied them.
      await until(() => size(file) > empty + 1_500_000, 'the database file holds the first round');
      const walAfterFirst = size(`${file}-wal`);
      await writeTwoMegabytes(store, 'second');
      await until(() => size(file) > empty + 3_000_000, 'the database file holds the second round');
      // Started over from its beginning: about one round's size, not two.
      assert.ok(size(`${file}-wal`) < walAfterFirst * 1.5, `WAL ${size(`${file}-wal`)} bytes after two rounds of ${walAfterFirst}`);
      assert.equal((await store.get<string>('bulk', 'first-0'))?.length, 4000);
    } finally {
      await store.close();
    }
  });

  it('keeps every write when the store closes during a checkpoint, and leaves no WAL behind', async () => {
    const file = join(dir, 'close.db');
    const store = await createSqliteStore({ path: file, clock: new ManualClock(), purgeIntervalMs: 0 });
    await writeTwoMegabytes(store, 'only');
    // The checkpointer's timer fires within its interval; closing now may land before, during or after it.
    await new Promise((resolve) => setTimeout(resolve, 240));
    await store.close();
    assert.equal(size(`${file}-wal`), 0, 'the last connection to close checkpointed and removed the WAL');
    const reopened = await createSqliteStore({ path: file, clock: new ManualClock(), purgeIntervalMs: 0 });
    try {
      assert.equal((await reopened.list('bulk', { limit: 1000 })).length, 500);
    } finally {
      await reopened.close();
    }
  });

  it('hands checkpoints back to SQLite when it cannot do them', async () => {
    // A database file without a WAL (rollback journal): the checkpointer cannot open what it syncs.
    const file = join(dir, 'no-wal.db');
    new DatabaseSync(file).close();
    const failures: unknown[] = [];
    let restored = 0;
    const checkpointer = new WalCheckpointer({ file, restoreAutoCheckpoint: () => restored++, onFailure: (error) => failures.push(error), intervalMs: 60_000 });
    checkpointer.markDirty();
    await checkpointer.checkpoint();
    assert.equal(restored, 1);
    assert.equal(failures.length, 1);
    assert.match(String(failures[0]), /ENOENT/);
    // Stopped: no further attempt, no second report.
    checkpointer.markDirty();
    await checkpointer.checkpoint();
    assert.equal(failures.length, 1);
  });
});
