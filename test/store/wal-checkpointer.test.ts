import assert from 'node:assert/strict';
import { closeSync, openSync, readlinkSync, readSync, realpathSync, statSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/runtime/clock.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { WalCheckpointer } from '../../src/store/wal-checkpointer.ts';

/**
 * The SQLite store's checkpoints (wal-checkpointer.ts): the gateway's connection never checkpoints inside a commit
 * (whose fsyncs would stop the event loop), the checkpointer moves the WAL into the database file beside it, the WAL
 * starts over instead of growing — also under a steady load on a slow disk —, a checkpointer that cannot open the
 * files hands the job back to SQLite, and one whose fsync fails keeps the WAL for SQLite's recovery.
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

/** The salts of the WAL's header (https://www.sqlite.org/walformat.html, offset 16): new ones each time it starts over. */
function walSalt(file: string): string {
  const fd = openSync(`${file}-wal`, 'r');
  try {
    const salt = Buffer.alloc(8);
    readSync(fd, salt, 0, 8, 16);
    return salt.toString('hex');
  } finally {
    closeSync(fd);
  }
}

/** The WAL's last valid frame, from the wal-index header (mxFrame, offset 16 of the `-shm`). */
function lastFrame(file: string): number {
  const fd = openSync(`${file}-shm`, 'r');
  try {
    const header = Buffer.alloc(4);
    readSync(fd, header, 0, 4, 16);
    return header.readUInt32LE(0);
  } finally {
    closeSync(fd);
  }
}

/** The rows of a namespace as a new connection finds them (SQLite recovers from a WAL left behind). */
function rowsAfterReopening(file: string, namespace: string): number {
  const reopened = new DatabaseSync(file);
  try {
    return (reopened.prepare('SELECT count(*) AS n FROM records WHERE namespace = ?').get(namespace) as { n: number }).n;
  } finally {
    reopened.close();
  }
}

/** A store checkpointed every 20 ms whose checkpoint failures are collected. */
function openReportingFailures(file: string): { db: SqliteDatabase; failures: Array<{ error: unknown; walKeptForRecovery: boolean }> } {
  const failures: Array<{ error: unknown; walKeptForRecovery: boolean }> = [];
  const db = SqliteDatabase.open(file, {
    checkpoints: { intervalMs: 20 },
    onCheckpointFailure: (error, { walKeptForRecovery }) => failures.push({ error, walKeptForRecovery }),
  });
  return { db, failures };
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

  it('moves committed writes into the database file', async () => {
    const file = join(dir, 'moves.db');
    const store = await createSqliteStore({ path: file, clock: new ManualClock(), purgeIntervalMs: 0 });
    try {
      const empty = size(file);
      await writeTwoMegabytes(store, 'first');
      // Below SQLite's own threshold, so only the checkpointer can have copied them.
      await until(() => size(file) > empty + 1_500_000, 'the database file holds what was written');
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

  it('syncs the database file when it closes, whether or not a round of its own was in flight', async () => {
    // Another process's round may have died between its copy and its sync; the last connection's close, finding
    // nothing left to copy, would remove the WAL without syncing the pages that copy left in the kernel's cache.
    const file = join(dir, 'close-sync.db');
    const db = SqliteDatabase.open(file, { checkpoints: { intervalMs: 60_000 } });
    await db.write(() => db.run('INSERT INTO records (namespace, key, value) VALUES (?, ?, ?)', 'close', 'k', '"1"'));
    const synced: string[] = [];
    await withFdatasyncSync(
      (fd, real) => {
        synced.push(readlinkSync(`/proc/self/fd/${fd}`));
        real(fd);
      },
      () => db.close(),
    );
    assert.deepEqual(synced, [realpathSync(file)]);
  });

  it('keeps the WAL, and reports once, when the database sync of a failed checkpointer fails as it stops', async () => {
    // As in the next test, the checkpointer cannot open what it syncs; stopping then cannot sync the file either.
    const file = join(dir, 'no-wal-no-sync.db');
    new DatabaseSync(file).close();
    const failures: Array<{ error: unknown; walKeptForRecovery: boolean }> = [];
    let restored = 0;
    const checkpointer = new WalCheckpointer({
      file,
      restoreAutoCheckpoint: () => restored++,
      holdWrites: () => () => {},
      commits: () => 0,
      onFailure: (error, { walKeptForRecovery }) => failures.push({ error, walKeptForRecovery }),
      intervalMs: 60_000,
    });
    checkpointer.markDirty();
    await withFdatasyncSync(() => {
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    }, () => checkpointer.checkpoint());
    // Not handed back to SQLite: the kept pin would stop its checkpoints from ever starting the WAL over.
    assert.equal(restored, 0);
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.walKeptForRecovery, true);
    assert.match(String(failures[0]!.error), /EIO/);
  });

  it('pauses on a full disk and resumes when it has room, instead of handing checkpoints back to SQLite for good', async () => {
    const file = join(dir, 'disk-full.db');
    const failures: unknown[] = [];
    const diskFull: unknown[] = [];
    const db = SqliteDatabase.open(file, {
      checkpoints: { intervalMs: 20, diskFullPauseMs: 100 },
      onCheckpointFailure: (error) => failures.push(error),
      onDiskFull: (error) => diskFull.push(error),
    });
    // The copy fails as SQLite's does when the disk fills up under it (SQLITE_FULL), while `full`.
    let full = true;
    let refusedCopies = 0;
    const prototype = DatabaseSync.prototype as { prepare: DatabaseSync['prepare'] };
    const realPrepare = prototype.prepare;
    prototype.prepare = function (this: DatabaseSync, sql: string) {
      if (full && sql === 'PRAGMA wal_checkpoint(PASSIVE)') {
        refusedCopies++;
        return { get: () => { throw Object.assign(new Error('database or disk is full'), { errcode: 13 }); } } as unknown as ReturnType<DatabaseSync['prepare']>;
      }
      return realPrepare.call(this, sql);
    };
    const row = 'f'.repeat(4000);
    const writeRows = async (prefix: string) => {
      for (let i = 0; i < 500; i += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, j) => db.write(() => db.run('INSERT OR REPLACE INTO records (namespace, key, value) VALUES (?, ?, ?)', 'full', `${prefix}-${i + j}`, row))));
      }
    };
    try {
      const empty = size(file);
      await writeRows('during');
      await until(() => refusedCopies >= 2, 'rounds tried to copy on the full disk');
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.ok(refusedCopies <= 4, `rounds paused between tries (${refusedCopies} copies tried in ≈ 0.2 s at a 20 ms interval)`);
      assert.equal(diskFull.length, 1, 'reported once for the stretch');
      assert.deepEqual(failures, [], 'not handed back to SQLite');
      assert.ok(size(file) < empty + 1_000_000, 'nothing was copied while the disk was full');
      full = false;
      // Below SQLite's own threshold (1,000 pages), so only the resumed checkpointer can have copied these.
      await until(() => size(file) > empty + 1_500_000, 'the resumed checkpointer copied the WAL into the database file');
      assert.deepEqual(failures, []);
    } finally {
      prototype.prepare = realPrepare;
      db.close();
    }
    assert.equal(rowsAfterReopening(file, 'full'), 500);
  });

  it('hands checkpoints back to SQLite when it cannot do them', async () => {
    // A database file without a WAL (rollback journal): the checkpointer cannot open what it syncs.
    const file = join(dir, 'no-wal.db');
    new DatabaseSync(file).close();
    const failures: unknown[] = [];
    let restored = 0;
    const checkpointer = new WalCheckpointer({
      file,
      restoreAutoCheckpoint: () => restored++,
      holdWrites: () => () => {},
      commits: () => 0,
      onFailure: (error) => failures.push(error),
      intervalMs: 60_000,
    });
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

  /** `fs.fdatasyncSync` (what stopping syncs the database file with) replaced while `run` runs. */
  async function withFdatasyncSync(replacement: (fd: number, real: (fd: number) => void) => void, run: () => unknown): Promise<void> {
    const fs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');
    const real = fs.fdatasyncSync;
    fs.fdatasyncSync = (fd: number) => replacement(fd, real);
    syncBuiltinESMExports();
    try {
      await run();
    } finally {
      fs.fdatasyncSync = real;
      syncBuiltinESMExports();
    }
  }

  /** Every fsync of a FileHandle (what the checkpointer syncs with) made slower, or failing, for one test. */
  async function withDatasync(replacement: (real: () => Promise<void>) => Promise<void>, run: () => Promise<void>): Promise<void> {
    const probe = await open(join(dir, 'probe'), 'w');
    const prototype = Object.getPrototypeOf(probe) as { datasync: FileHandle['datasync'] };
    await probe.close();
    const real = prototype.datasync;
    prototype.datasync = function (this: FileHandle) {
      return replacement(() => real.call(this));
    };
    try {
      await run();
    } finally {
      prototype.datasync = real;
    }
  }

  it('starts the WAL over under a steady load on a slow disk (a quiet round holds writes back)', async () => {
    const file = join(dir, 'steady.db');
    // 500 frames (2 MB) before a quiet round, rounds every 50 ms: the same logic as the defaults, at test scale.
    const db = SqliteDatabase.open(file, { checkpoints: { quietRoundFrames: 500, intervalMs: 50 } });
    const row = 'r'.repeat(1000);
    let written = 0;
    // The WAL's last valid frame, from the wal-index header (https://www.sqlite.org/walformat.html: mxFrame, offset
    // 16); it falls when a writer starts the WAL over.
    const shm = openSync(`${file}-shm`, 'r');
    const header = Buffer.alloc(4);
    const lastFrame = () => (readSync(shm, header, 0, 4, 16), header.readUInt32LE(0));
    let restarts = 0;
    let previous = 0;
    await withDatasync(
      // A disk whose fsync takes 20 ms: some commit always lands during a round.
      async (real) => {
        await real();
        await new Promise((resolve) => setTimeout(resolve, 20));
      },
      async () => {
        // 16 MB in all, eight times the quiet-round size.
        while (written < 16_000) {
          await Promise.all(
            Array.from({ length: 20 }, () =>
              db.write(() => db.run('INSERT OR REPLACE INTO records (namespace, key, value) VALUES (?, ?, ?)', 'steady', `k${written++ % 20_000}`, row)),
            ),
          );
          const frame = lastFrame();
          if (frame < previous) restarts++;
          previous = frame;
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      },
    );
    closeSync(shm);
    db.close();
    // Without quiet rounds the WAL never starts over here: it ends about as large as everything written.
    assert.ok(restarts >= 1, `the WAL never started over in ${written} rows of 1 KB (last frame ${previous})`);
  });

  it('lets writes held by a quiet round go on when its fsync hangs, instead of hanging them with it', async () => {
    const file = join(dir, 'hung.db');
    // A quiet round after 20 frames; writes wait for one 300 ms at most.
    const db = SqliteDatabase.open(file, { checkpoints: { quietRoundFrames: 20, intervalMs: 20, quietHoldLimitMs: 300 } });
    const insert = (key: string) => db.write(() => db.run('INSERT INTO records (namespace, key, value) VALUES (?, ?, ?)', 'hung', key, JSON.stringify('r'.repeat(1000))));
    let syncs = 0;
    let hung = false;
    let unhang: () => void = () => {};
    const stuck = new Promise<void>((resolve) => (unhang = resolve));
    await withDatasync(
      async (real) => {
        syncs++;
        // A write lands during the first round's WAL sync, past the frames the round copies: the WAL is not all
        // copied, so it does not start over, and, 60 frames long, makes the next round a quiet one.
        if (syncs === 1) await insert('during-the-first-round');
        // From the second round on (the quiet one), the disk hangs.
        if (syncs > 2) {
          hung = true;
          await stuck;
        }
        await real();
      },
      async () => {
        // ≈ 60 frames (rows of 1 KB) in one commit.
        await Promise.all(Array.from({ length: 200 }, (_, i) => insert(`a${i}`)));
        await until(() => hung, 'the quiet round waits for its fsync');
        // The quiet round holds this write (a write that is not held runs at once: its row would be readable now);
        // it must go on once the hold's limit has passed.
        const held = insert('during-the-hang');
        assert.equal(db.row("SELECT 1 FROM records WHERE namespace = 'hung' AND key = 'during-the-hang'"), undefined, 'held');
        const outcome = await Promise.race([held.then(() => 'stored'), new Promise((resolve) => setTimeout(resolve, 10_000, 'still held'))]);
        assert.equal(outcome, 'stored');
        assert.equal(db.row<{ n: number }>("SELECT count(*) AS n FROM records WHERE namespace = 'hung'")?.n, 202);
        unhang();
      },
    );
    db.close();
  });

  it('starts the WAL over itself after a round that copied everything, so no commit of the gateway has to', async () => {
    // The first writer after such a round starts the WAL over and SQLite syncs the new header inside that commit:
    // on the event loop, when the writer is the gateway's connection. The checkpointer's helper does it instead.
    const file = join(dir, 'restart.db');
    const db = SqliteDatabase.open(file, { checkpoints: { intervalMs: 20 } });
    try {
      const insert = (key: string) => db.write(() => db.run('INSERT INTO records (namespace, key, value) VALUES (?, ?, ?)', 'restart', key, '"1"'));
      await insert('first');
      const before = walSalt(file);
      // No write of ours after this: only the checkpointer can start the WAL over (new salts in its header).
      await until(() => walSalt(file) !== before, 'the checkpointer starts the WAL over');
      const restarted = walSalt(file);
      const framesAfterRestart = lastFrame(file);
      await insert('second');
      // The gateway's commit appended to the new WAL: it did not start it over again.
      assert.equal(walSalt(file), restarted);
      assert.ok(lastFrame(file) > framesAfterRestart, 'the commit appended its frames');
      assert.equal(db.row<{ n: number }>("SELECT count(*) AS n FROM records WHERE namespace = 'restart'")?.n, 2);
    } finally {
      db.close();
    }
  });

  it('holds the gateway\'s writes until the new WAL header is synced', async () => {
    // A frame written behind a header that a power loss can still undo could let recovery replay stale frames.
    const file = join(dir, 'restart-order.db');
    const db = SqliteDatabase.open(file, { checkpoints: { intervalMs: 20 } });
    const insert = (key: string) => db.write(() => db.run('INSERT INTO records (namespace, key, value) VALUES (?, ?, ?)', 'order', key, '"1"'));
    await insert('first');
    const initial = walSalt(file);
    const events: string[] = [];
    let paused = false;
    let resume: () => void = () => {};
    const gate = new Promise<void>((resolve) => (resume = resolve));
    try {
      await withDatasync(
        async (real) => {
          // The sync that follows the restart: the WAL's header already has its new salts.
          if (!paused && walSalt(file) !== initial) {
            paused = true;
            await gate;
            await real();
            events.push('new header synced');
            return;
          }
          await real();
        },
        async () => {
          await until(() => paused, 'the checkpointer syncs the new WAL header');
          const held = insert('during-the-sync').then(() => events.push('write committed'));
          assert.equal(db.row("SELECT 1 FROM records WHERE namespace = 'order' AND key = 'during-the-sync'"), undefined, 'held');
          resume();
          await held;
        },
      );
      assert.deepEqual(events, ['new header synced', 'write committed']);
    } finally {
      db.close();
    }
  });

  it('counts only commits that changed rows as written since a copy (an empty batch writes no frame)', async () => {
    const db = SqliteDatabase.open(join(dir, 'count.db'), { checkpoints: { intervalMs: 60_000 } });
    try {
      const before = db.commits;
      await db.write(() => db.run("DELETE FROM records WHERE namespace = 'nothing-here'"));
      assert.equal(db.commits, before, 'a batch that changed nothing');
      await db.write(() => db.run('INSERT INTO records (namespace, key, value) VALUES (?, ?, ?)', 'count', 'k', '"1"'));
      assert.equal(db.commits, before + 1);
    } finally {
      db.close();
    }
  });

  it('keeps the WAL for recovery when the new header\'s sync fails, and lets the held writes go on', async () => {
    const file = join(dir, 'restart-eio.db');
    const { db, failures } = openReportingFailures(file);
    const insert = (key: string) => db.write(() => db.run('INSERT INTO records (namespace, key, value) VALUES (?, ?, ?)', 'restart-eio', key, '"1"'));
    await insert('before');
    const initial = walSalt(file);
    let held: Promise<void> | undefined;
    await withDatasync(
      async (real) => {
        // Only the sync after the restart fails; a write issued while it runs is held, then goes on.
        if (walSalt(file) === initial) return real();
        held ??= insert('during-the-failed-sync');
        throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      },
      async () => {
        await until(() => failures.length > 0, 'the checkpointer reports the failed sync');
        await held;
      },
    );
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.walKeptForRecovery, true);
    await insert('after');
    assert.equal(db.row<{ n: number }>("SELECT count(*) AS n FROM records WHERE namespace = 'restart-eio'")?.n, 3);
    db.close();
    // The WAL outlived the gateway's connection (the re-taken pin kept it from being the last), for SQLite's recovery.
    assert.ok(size(`${file}-wal`) > 0, 'the WAL is kept');
    assert.equal(rowsAfterReopening(file, 'restart-eio'), 3);
  });

  it('keeps the WAL for recovery when an fsync fails, and the store goes on working', async () => {
    const file = join(dir, 'eio.db');
    const { db, failures } = openReportingFailures(file);
    await withDatasync(
      () => Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })),
      async () => {
        await db.write(() => db.run('INSERT INTO records (namespace, key, value) VALUES (?, ?, ?)', 'eio', 'before', '"1"'));
        await until(() => failures.length > 0, 'the checkpointer reports the failed fsync');
      },
    );
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.walKeptForRecovery, true);
    assert.match(String(failures[0]!.error), /EIO/);
    // The store still takes writes and reads them back.
    await db.write(() => db.run('INSERT INTO records (namespace, key, value) VALUES (?, ?, ?)', 'eio', 'after', '"2"'));
    assert.equal(db.row<{ value: string }>('SELECT value FROM records WHERE namespace = ? AND key = ?', 'eio', 'after')?.value, '"2"');
    db.close();
    // Closing did not remove the WAL (the gateway's connection was not the last one): SQLite recovers from it.
    assert.ok(size(`${file}-wal`) > 0, 'the WAL outlives the connection for recovery');
    assert.equal(rowsAfterReopening(file, 'eio'), 2);
  });
});
