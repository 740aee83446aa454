import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, mkdirSync, renameSync, statSync, symlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Logger } from 'pino';
import { ManualClock } from '../../src/runtime/clock.ts';
import { SqliteDatabase } from '../../src/store/sqlite-database.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { sqliteSchemaVersion } from '../../src/store/sqlite-schema.ts';
import { StoreUnavailableError } from '../../src/store/store.ts';
import { runStoreContract, waitFor } from './contract.ts';

runStoreContract('sqlite (in memory)', async () => {
  const clock = new ManualClock();
  const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
  return { store, advance: async (ms) => clock.advance(ms), dispose: () => store.close() };
});

runStoreContract('sqlite (file, WAL)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-store-'));
  const clock = new ManualClock();
  const store = await createSqliteStore({ path: join(dir, 'nested', 'gatehouse.db'), clock, purgeIntervalMs: 0 });
  return {
    store,
    advance: async (ms) => clock.advance(ms),
    dispose: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SQLite store on a file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-store-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is readable by its owner only: a new file and its directory, and an old file other users could read', async () => {
    const path = join(dir, 'private', 'gatehouse.db');
    const store = await createSqliteStore({ path, clock: new ManualClock(), purgeIntervalMs: 0 });
    await store.set('grant', 'g1', { user: 'u1' });
    for (const file of [path, `${path}-wal`, `${path}-shm`]) assert.equal(statSync(file).mode & 0o077, 0, `${file}: ${(statSync(file).mode & 0o777).toString(8)}`);
    assert.equal(statSync(join(dir, 'private')).mode & 0o077, 0);
    await store.close();
    // A store made before (or under a lax umask): world-readable, tightened on the next open.
    for (const file of [path, `${path}-wal`, `${path}-shm`]) {
      try {
        chmodSync(file, 0o644);
      } catch {
        // The WAL and shm files may be gone after a clean close.
      }
    }
    const reopened = await createSqliteStore({ path, clock: new ManualClock(), purgeIntervalMs: 0 });
    assert.deepEqual(await reopened.get('grant', 'g1'), { user: 'u1' });
    assert.equal(statSync(path).mode & 0o007, 0, (statSync(path).mode & 0o777).toString(8));
    await reopened.close();
  });

  it('keeps data, indexes and TTLs across closing and reopening the file (a restart)', async () => {
    const path = join(dir, 'restart', 'gatehouse.db');
    const clock = new ManualClock();
    const first = await createSqliteStore({ path, clock, purgeIntervalMs: 0 });
    await first.set('grant', 'g1', { user: 'u1' }, { indexes: { userId: 'u1' } });
    await first.set('state', 's1', { n: 1 }, { ttlSeconds: 60 });
    await first.close();

    const second = await createSqliteStore({ path, clock, purgeIntervalMs: 0 });
    assert.deepEqual(await second.get('grant', 'g1'), { user: 'u1' });
    assert.deepEqual((await second.findByIndex('grant', 'userId', 'u1')).map((e) => e.key), ['g1']);
    assert.deepEqual(await second.get('state', 's1'), { n: 1 });
    clock.advance(61_000);
    assert.equal(await second.get('state', 's1'), undefined);
    await second.close();
  });

  it('lets two instances on one file see each other and keeps consume single-winner across them', async () => {
    const path = join(dir, 'shared.db');
    const clock = new ManualClock();
    const a = await createSqliteStore({ path, clock, purgeIntervalMs: 0 });
    const b = await createSqliteStore({ path, clock, purgeIntervalMs: 0 });
    try {
      await a.set('client', 'c1', { from: 'a' });
      assert.deepEqual(await b.get('client', 'c1'), { from: 'a' });

      for (let round = 0; round < 5; round++) {
        await a.set('code', `k${round}`, { round });
        const results = await Promise.all(
          Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).consume('code', `k${round}`)),
        );
        assert.equal(results.filter((r) => r !== undefined).length, 1);
      }
      const lock = await a.acquireLock('refresh', 10_000);
      assert.ok(lock);
      assert.equal(await b.acquireLock('refresh', 10_000), undefined);
      await lock();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps consume single-winner across processes sharing the file', async () => {
    const path = join(dir, 'processes.db');
    const keys = 1000;
    const store = await createSqliteStore({ path, clock: new ManualClock(Date.now()), purgeIntervalMs: 0 });
    for (let i = 0; i < keys; i++) await store.set('code', `k${i}`, { i }, { ttlSeconds: 600 });
    await store.close();

    const worker = new URL('./support/consume-worker.ts', import.meta.url).pathname;
    const run = promisify(execFile);
    // A common start time makes the workers overlap; the assertions hold however they interleave.
    const startAt = String(Date.now() + 1500);
    const outputs = await Promise.all(
      [1, 2, 3].map(() => run(process.execPath, [worker, path, String(keys), startAt], { timeout: 60_000 })),
    );
    const won = outputs.flatMap(({ stdout }) => JSON.parse(stdout) as string[]);
    assert.equal(won.length, keys, 'every key was consumed exactly once in total');
    assert.equal(new Set(won).size, keys, 'no key was consumed by two processes');
  });

  describe('group commit (the writes of one event-loop turn share a transaction)', () => {
    /** What another connection (another replica or the admin CLI) sees of the file: committed rows only. */
    const committedKeys = async (path: string): Promise<string[]> => {
      const { DatabaseSync } = await import('node:sqlite');
      const db = new DatabaseSync(path, { readOnly: true });
      try {
        return (db.prepare('SELECT key FROM records ORDER BY key').all() as Array<{ key: string }>).map((row) => row.key);
      } finally {
        db.close();
      }
    };

    it('settles a write only after its batch is committed, and commits the writes of one turn together', async () => {
      const path = join(dir, 'group-commit.db');
      const store = await createSqliteStore({ path, clock: new ManualClock(), purgeIntervalMs: 0 });
      try {
        const pending = [store.set('client', 'a', 1), store.set('client', 'b', 2), store.setIfAbsent('client', 'c', 3)];
        // Made, visible to this connection, not yet committed: no other connection sees them yet.
        assert.equal(await store.get('client', 'a'), 1);
        assert.deepEqual(await committedKeys(path), []);
        const settled = await Promise.all(pending);
        assert.deepEqual(settled, [undefined, undefined, true]);
        assert.deepEqual(await committedKeys(path), ['a', 'b', 'c']);
      } finally {
        await store.close();
      }
    });

    it('undoes only the failing write of a batch; the others of the same turn commit', async () => {
      const path = join(dir, 'group-commit-failure.db');
      const store = await createSqliteStore({ path, clock: new ManualClock(), purgeIntervalMs: 0 });
      try {
        const before = store.set('client', 'kept-before', 1);
        // A value that cannot be serialised fails inside the write, after the batch's first record was written.
        const failing = store.setMany([
          { namespace: 'client', key: 'half-written', value: 1 },
          { namespace: 'client', key: 'unserialisable', value: 1n },
        ]);
        const afterwards = store.set('client', 'kept-after', 2);
        await assert.rejects(failing);
        await Promise.all([before, afterwards]);
        assert.deepEqual(await committedKeys(path), ['kept-after', 'kept-before']);
        assert.equal(await store.get('client', 'half-written'), undefined);
      } finally {
        await store.close();
      }
    });

    it('fails every write of a batch SQLite rolled back whole (a full disk) as an outage, and starts a new one after', async () => {
      const path = join(dir, 'group-commit-full.db');
      const db = SqliteDatabase.open(path, { checkpoints: { intervalMs: 60_000 } });
      const insert = (key: string, value: string) =>
        db.write(() => db.run('INSERT OR IGNORE INTO records (namespace, key, value) VALUES (?, ?, ?)', 'n', key, value));
      const outcome = (pending: Promise<unknown>) =>
        pending.then(
          () => 'stored',
          (error: unknown) => (error instanceof StoreUnavailableError ? 'unavailable' : `other: ${String(error)}`),
        );
      try {
        await insert('base', '"0"');
        const pages = db.row<{ page_count: number }>('PRAGMA page_count')!.page_count;
        // A full disk, as SQLite sees one: a single-row insert past the limit rolls back the whole transaction.
        db.run(`PRAGMA max_page_count = ${pages + 3}`);
        const turn = {
          before: outcome(insert('before', '"a"')),
          full: outcome(insert('full', JSON.stringify('x'.repeat(100_000)))),
          after: outcome(insert('after', '"c"')),
        };
        const settled = { before: await turn.before, full: await turn.full, after: await turn.after };
        assert.deepEqual(settled, { before: 'unavailable', full: 'unavailable', after: 'stored' });
        // What was reported stored is on disk, what was reported lost is not.
        assert.deepEqual(await committedKeys(path), ['after', 'base']);
        db.run('PRAGMA max_page_count = 1073741823');
        assert.equal(await outcome(insert('later', '"d"')), 'stored');
        assert.deepEqual(await committedKeys(path), ['after', 'base', 'later']);
      } finally {
        db.close();
      }
    });

    it('opens a second connection to the file while the first holds a batch, without waiting for its lock', async () => {
      const path = join(dir, 'group-commit-second-open.db');
      const first = SqliteDatabase.open(path, { checkpoints: { intervalMs: 60_000 } });
      const pending = first.write(() => first.run("INSERT INTO records (namespace, key, value) VALUES ('n', 'first', '1')"));
      let second: SqliteDatabase | undefined;
      try {
        // The second one's schema check takes the write lock; before, it waited out busy_timeout (5 s) and failed.
        second = SqliteDatabase.open(path, { checkpoints: { intervalMs: 60_000 } });
        await pending;
        assert.equal(second.row<{ key: string }>("SELECT key FROM records WHERE namespace = 'n'")?.key, 'first');
      } finally {
        second?.close();
        first.close();
      }
    });

    it('commits the open batch on close, so writes made before it are kept', async () => {
      const path = join(dir, 'group-commit-close.db');
      const store = await createSqliteStore({ path, clock: new ManualClock(), purgeIntervalMs: 0 });
      const pending = store.set('client', 'written-before-close', 1);
      await store.close();
      await pending;
      assert.deepEqual(await committedKeys(path), ['written-before-close']);
    });
  });

  it('is down while another connection holds the write lock (ping, and a write after a short wait), and up once it is let go', async () => {
    // A read answered while the lock was held, so the health probe marked the store up every second and the next
    // write waited out the busy timeout on the event loop again.
    const path = join(dir, 'locked.db');
    const store = await createSqliteStore({ path, clock: new ManualClock(Date.now()), purgeIntervalMs: 0 });
    const { DatabaseSync } = await import('node:sqlite');
    const other = new DatabaseSync(path);
    try {
      await store.set('code', 'before', { ok: true });
      await store.ping();
      other.exec('BEGIN IMMEDIATE');
      await assert.rejects(store.ping(), StoreUnavailableError);
      await assert.rejects(store.set('code', 'during', { ok: true }), StoreUnavailableError);
      other.exec('ROLLBACK');
      // The store's health gate probes every second and lets calls through once the lock is free.
      while (!(await store.ping().then(() => true, () => false))) await new Promise((resolve) => setTimeout(resolve, 50));
      await store.set('code', 'after', { ok: true });
      assert.deepEqual(await store.get('code', 'after'), { ok: true });
    } finally {
      if (other.isTransaction) other.exec('ROLLBACK');
      other.close();
      await store.close();
    }
  });

  it('records the schema version so an upgrade can migrate the file', async () => {
    const path = join(dir, 'version.db');
    const store = await createSqliteStore({ path, clock: new ManualClock(), purgeIntervalMs: 0 });
    await store.close();
    const { DatabaseSync } = await import('node:sqlite');
    const db = new DatabaseSync(path);
    const row = db.prepare('PRAGMA user_version').get() as { user_version: number };
    const mode = db.prepare('PRAGMA journal_mode').get() as { journal_mode: string };
    db.close();
    assert.equal(row.user_version, sqliteSchemaVersion);
    assert.equal(mode.journal_mode, 'wal');
  });

  it('migrates a schema 1 file (records WITHOUT ROWID) to a rowid records table, keeping every row, expiry and index', async () => {
    const path = join(dir, 'schema-1.db');
    const { DatabaseSync } = await import('node:sqlite');
    const old = new DatabaseSync(path);
    // Schema 1 as it shipped, with a live record, an expired one (not yet purged) and an index row.
    old.exec(`
      CREATE TABLE records (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at INTEGER,
        PRIMARY KEY (namespace, key)) WITHOUT ROWID;
      CREATE INDEX records_expiry ON records (expires_at) WHERE expires_at IS NOT NULL;
      CREATE TABLE record_indexes (namespace TEXT NOT NULL, index_name TEXT NOT NULL, index_value TEXT NOT NULL,
        key TEXT NOT NULL, PRIMARY KEY (namespace, index_name, index_value, key)) WITHOUT ROWID;
      CREATE INDEX record_indexes_by_record ON record_indexes (namespace, key);
      CREATE TABLE counters (namespace TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,
        expires_at INTEGER NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID;
      CREATE TABLE locks (name TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO records VALUES ('grant', 'g1', '{"user":"u1"}', NULL), ('code', 'c1', '{"n":1}', 5000),
        ('code', 'c0', '{"n":0}', 500);
      INSERT INTO record_indexes VALUES ('grant', 'userId', 'u1', 'g1');
      PRAGMA user_version = 1;
    `);
    // Enough rows that the copy spans many pages: it must land in the file at open, not wait in the WAL for the
    // checkpointer's first round (whose copying runs on the event loop).
    const bulk = old.prepare("INSERT INTO records VALUES ('bulk', ?, ?, NULL)");
    for (let i = 0; i < 200; i++) bulk.run(`b${i}`, JSON.stringify({ filler: 'x'.repeat(600) }));
    old.close();
    const sizeBefore = statSync(path).size;

    const clock = new ManualClock(1000);
    const store = await createSqliteStore({ path, clock, purgeIntervalMs: 0 });
    try {
      // The new table's pages (≈ 35 for the bulk rows) are in the database file once the store is open.
      assert.ok(statSync(path).size >= sizeBefore + 30 * 4096, `${statSync(path).size} bytes after, ${sizeBefore} before`);
      assert.deepEqual(await store.get('grant', 'g1'), { user: 'u1' });
      assert.deepEqual(await store.get('code', 'c1'), { n: 1 });
      assert.equal(await store.get('code', 'c0'), undefined, 'an expired row stays expired');
      assert.deepEqual((await store.findByIndex('grant', 'userId', 'u1')).map((e) => e.key), ['g1']);
      // The upsert's ON CONFLICT and the single-use DELETE … RETURNING work on the new table.
      assert.equal(await store.setIfAbsent('grant', 'g1', { user: 'other' }), false);
      assert.deepEqual(await store.consume('code', 'c1'), { n: 1 });
      assert.equal(await store.consume('code', 'c1'), undefined);
      clock.advance(10_000);
      assert.equal(await store.purgeExpired(), 1);
    } finally {
      await store.close();
    }
    const db = new DatabaseSync(path);
    const { sql } = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'records'").get() as { sql: string };
    const expiryIndex = db.prepare("SELECT name FROM sqlite_master WHERE name = 'records_expiry'").get();
    const { user_version: version } = db.prepare('PRAGMA user_version').get() as { user_version: number };
    db.close();
    assert.doesNotMatch(sql, /WITHOUT ROWID/);
    assert.ok(expiryIndex, 'the expiry index is rebuilt on the new table');
    assert.equal(version, sqliteSchemaVersion);
  });

  it('refuses a file written by a newer schema with a clear error', async () => {
    const path = join(dir, 'newer.db');
    const { DatabaseSync } = await import('node:sqlite');
    const db = new DatabaseSync(path);
    db.exec(`PRAGMA user_version = ${sqliteSchemaVersion + 5}`);
    db.close();
    await assert.rejects(
      createSqliteStore({ path, clock: new ManualClock(), purgeIntervalMs: 0 }),
      (error: unknown) => error instanceof StoreUnavailableError && /newer Gatehouse/.test(error.message),
    );
  });

  for (const how of ['deleted', 'replaced'] as const) {
    it(`is down, saying why, once its file is ${how} under it: writes then would land in no file on disk`, async () => {
      const path = join(dir, `lost-${how}.db`);
      const problems: string[] = [];
      const logger = { error: (fields: { problem: string }) => void problems.push(fields.problem), warn: () => undefined, info: () => undefined } as unknown as Logger;
      const store = await createSqliteStore({ path, clock: new ManualClock(), purgeIntervalMs: 0, logger, fileCheckIntervalMs: 10 });
      try {
        await store.set('client', 'before', { ok: true });
        await rm(path);
        if (how === 'replaced') {
          const other = await createSqliteStore({ path, clock: new ManualClock(), purgeIntervalMs: 0 });
          await other.close();
        }
        await waitFor(() => problems.length > 0);
        assert.match(problems[0] ?? '', new RegExp(`file .*lost-${how}\\.db was ${how} while Gatehouse had it open`));
        await assert.rejects(store.set('client', 'after', { ok: true }), StoreUnavailableError);
        await assert.rejects(store.get('client', 'before'), StoreUnavailableError);
        await assert.rejects(store.ping(), StoreUnavailableError);
        assert.equal(problems.length, 1, 'said once');
      } finally {
        await store.close();
      }
    });
  }

  it('stays up when its file cannot be looked at (ELOOP here; EACCES, ESTALE, EIO in the field): the connection still works', async () => {
    const data = join(dir, 'unreadable-data');
    mkdirSync(data);
    const path = join(data, 'gatehouse.db');
    const store = await createSqliteStore({ path, clock: new ManualClock(), purgeIntervalMs: 0, fileCheckIntervalMs: 5 });
    try {
      await store.set('client', 'a', { v: 1 });
      // The data directory's path becomes a symlink loop: a stat of the file throws ELOOP (this used to end the process).
      renameSync(data, `${data}.moved`);
      symlinkSync('unreadable-data', data);
      await new Promise((resolve) => setTimeout(resolve, 60));
      await store.ping();
      assert.deepEqual(await store.get('client', 'a'), { v: 1 });
    } finally {
      await store.close();
    }
  });

  it('fails with StoreUnavailableError once closed', async () => {
    const store = await createSqliteStore({ path: ':memory:', clock: new ManualClock(), purgeIntervalMs: 0 });
    await store.close();
    await assert.rejects(store.get('client', 'c1'), StoreUnavailableError);
    await assert.rejects(store.ping(), StoreUnavailableError);
  });

  it('purges expired rows on its timer without keeping the process alive', async () => {
    const path = join(dir, 'purge.db');
    const clock = new ManualClock();
    const store = await createSqliteStore({ path, clock, purgeIntervalMs: 10 });
    const { DatabaseSync } = await import('node:sqlite');
    const observer = new DatabaseSync(path);
    const rowCount = (): number =>
      (observer.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n;
    try {
      await store.set('state', 'a', 1, { ttlSeconds: 1 });
      await store.set('state', 'b', 2);
      assert.equal(rowCount(), 2);
      clock.advance(1100);
      // Nothing but the timer deletes rows here; the runner's timeout bounds the wait.
      await waitFor(() => rowCount() === 1);
      assert.deepEqual((await store.list('state')).map((e) => e.key), ['b']);
    } finally {
      observer.close();
      await store.close();
    }
  });
});
