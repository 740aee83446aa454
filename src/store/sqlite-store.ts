import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../runtime/clock.ts';
import { LocalPubSub } from './local-pubsub.ts';
import { startPurgeTimer, type PurgeTimer } from './purge-timer.ts';
import { assertListLimit, assertLockTtl, assertStoreName, parseStoredValue, serializeValue, ttlMilliseconds } from './names.ts';
import { SqliteDatabase } from './sqlite-database.ts';
import { guardStoreHealth } from './store-health.ts';
import type { IndexRangeOptions, ListOptions, ReleaseLock, SetOptions, Store, StoreEntry, StoreWrite, Unsubscribe } from './store.ts';

export interface SqliteStoreOptions {
  /** Database file; its directory is created if missing. `:memory:` gives a private in-memory store for tests. */
  path: string;
  clock: Clock;
  /** How often expired rows are deleted in the background; 0 turns the timer off (purgeExpired() still works). */
  purgeIntervalMs?: number;
  logger?: Logger;
  /** How often the database file is checked to be still the one open (deleted or replaced: the store is down); default 1 s. */
  fileCheckIntervalMs?: number;
}

interface RecordRow {
  key: string;
  value: string;
  expires_at: number | null;
}

/** A live row is one with no expiry or an expiry after `now`; every read filters with this. */
const live = '(expires_at IS NULL OR expires_at > ?)';

/**
 * The embedded, single-node store: node:sqlite in WAL mode. Every change runs whole in a `BEGIN IMMEDIATE`
 * transaction (shared by the writes of one event-loop turn, see sqlite-database.ts) and every single-use read is one
 * `DELETE … RETURNING`, so the guarantees hold even when two processes open the same file. Publish/subscribe stays
 * inside this process (see docs/storage.md).
 */
export async function createSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  const { path, clock, purgeIntervalMs = 60_000, logger, fileCheckIntervalMs } = options;
  const db = SqliteDatabase.open(path, {
    onFileLost: (problem) => logger?.error({ problem }, 'SQLite: the store is down: its file was deleted or replaced under it'),
    ...(fileCheckIntervalMs === undefined ? {} : { fileCheckIntervalMs }),
    onCheckpointFailure: (error, { walKeptForRecovery }) =>
      walKeptForRecovery
        ? logger?.error({ err: error }, 'SQLite: syncing the store to disk failed; its WAL is kept until Gatehouse restarts (restart it, and check the disk)')
        : logger?.error({ err: error }, 'SQLite checkpoints beside the event loop failed; SQLite checkpoints inside its commits again'),
    onDiskFull: (error) =>
      logger?.error({ reason: error instanceof Error ? error.message : String(error) }, 'SQLite: the disk is full; checkpoints pause and resume when it has room (free some space)'),
  });
  return guardStoreHealth(new SqliteStore(db, clock, logger, purgeIntervalMs), { logger });
}

class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly #db: SqliteDatabase;
  readonly #clock: Clock;
  readonly #pubsub: LocalPubSub;
  readonly #purgeTimer: PurgeTimer;

  constructor(db: SqliteDatabase, clock: Clock, logger: Logger | undefined, purgeIntervalMs: number) {
    this.#db = db;
    this.#clock = clock;
    this.#pubsub = new LocalPubSub((error, channel) =>
      logger?.error({ err: error, channel }, 'store subscriber failed'),
    );
    this.#purgeTimer = startPurgeTimer(this, purgeIntervalMs, logger);
  }

  async get<T>(namespace: string, key: string): Promise<T | undefined> {
    assertStoreName('namespace', namespace);
    const row = this.#db.row<{ value: string }>(
      `SELECT value FROM records WHERE namespace = ? AND key = ? AND ${live}`,
      namespace, key, this.#clock.now(),
    );
    return row ? (parseStoredValue(row.value) as T) : undefined;
  }

  async set<T>(namespace: string, key: string, value: T, options: SetOptions = {}): Promise<void> {
    assertStoreName('namespace', namespace);
    await this.#db.write(() => this.#put({ namespace, key, value, options }));
  }

  async setMany(writes: readonly StoreWrite[]): Promise<void> {
    for (const { namespace } of writes) assertStoreName('namespace', namespace);
    if (writes.length === 0) return;
    // One savepoint for the batch: all or none of it lands.
    await this.#db.write(() => {
      for (let start = 0; start < writes.length; start += INSERT_ROWS) {
        const chunk = writes.slice(start, start + INSERT_ROWS);
        if (!this.#insertAllNew(chunk)) for (const write of chunk) this.#put(write);
      }
    });
  }

  /**
   * A batch of new keys (audit records, nearly always) in one INSERT for the records and one for their index rows:
   * the statements' own cost per call was a fifth of an audit record's write. False when some key already existed
   * (or one key comes twice): nothing is wrong then, but which rows went in is not known, so the caller writes each
   * as `set` would — those this INSERT made are overwritten with the same value and their index rows written again.
   */
  #insertAllNew(chunk: readonly StoreWrite[]): boolean {
    const now = this.#clock.now();
    const rows: Array<string | number | null> = [];
    for (const { namespace, key, value, options = {} } of chunk) {
      const ttlMs = ttlMilliseconds(options.ttlSeconds);
      rows.push(namespace, key, serializeValue(value), ttlMs === undefined ? null : now + ttlMs);
    }
    const inserted = this.#db.changes(`INSERT OR IGNORE INTO records (namespace, key, value, expires_at) VALUES ${placeholders(chunk.length)}`, ...rows);
    if (inserted !== chunk.length) return false;
    const indexRows: string[] = [];
    for (const { namespace, key, options } of chunk) {
      for (const name in options?.indexes) {
        if (!Object.hasOwn(options.indexes, name)) continue;
        assertStoreName('index', name);
        indexRows.push(namespace, name, options.indexes[name]!, key);
      }
    }
    for (let start = 0; start < indexRows.length; start += INSERT_ROWS * 4) {
      const part = indexRows.slice(start, start + INSERT_ROWS * 4);
      this.#db.run(`INSERT OR IGNORE INTO record_indexes (namespace, index_name, index_value, key) VALUES ${placeholders(part.length / 4)}`, ...part);
    }
    return true;
  }

  async setIfAbsent<T>(namespace: string, key: string, value: T, options: SetOptions = {}): Promise<boolean> {
    assertStoreName('namespace', namespace);
    const now = this.#clock.now();
    const expiresAt = this.#expiresAt(options.ttlSeconds);
    return this.#db.write(() => {
      // Takes over a row only when it has expired but not been purged yet; a live row is left alone.
      const created = this.#db.row(
        `INSERT INTO records (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
         WHERE records.expires_at IS NOT NULL AND records.expires_at <= ?
         RETURNING key`,
        namespace, key, serializeValue(value), expiresAt, now,
      );
      if (created) this.#replaceIndexes(namespace, key, options.indexes);
      return created !== undefined;
    });
  }

  async delete(namespace: string, key: string): Promise<boolean> {
    assertStoreName('namespace', namespace);
    const now = this.#clock.now();
    return this.#db.write(() => {
      const removed = this.#db.row<{ expires_at: number | null }>(
        'DELETE FROM records WHERE namespace = ? AND key = ? RETURNING expires_at',
        namespace, key,
      );
      this.#db.run('DELETE FROM record_indexes WHERE namespace = ? AND key = ?', namespace, key);
      return removed !== undefined && isLive(removed.expires_at, now);
    });
  }

  async consume<T>(namespace: string, key: string): Promise<T | undefined> {
    assertStoreName('namespace', namespace);
    return this.#db.write(() => {
      // One statement reads and removes: a second consumer, in this process or another, finds nothing.
      const row = this.#db.row<{ value: string }>(
        `DELETE FROM records WHERE namespace = ? AND key = ? AND ${live} RETURNING value`,
        namespace, key, this.#clock.now(),
      );
      if (!row) return undefined;
      this.#db.run('DELETE FROM record_indexes WHERE namespace = ? AND key = ?', namespace, key);
      return parseStoredValue(row.value) as T;
    });
  }

  async addIndexes(namespace: string, key: string, indexes: Record<string, string>): Promise<boolean> {
    assertStoreName('namespace', namespace);
    for (const name of Object.keys(indexes)) assertStoreName('index', name);
    const now = this.#clock.now();
    if (!this.#db.row(`SELECT 1 AS found FROM records WHERE namespace = ? AND key = ? AND ${live}`, namespace, key, now)) return false;
    const present = new Set(
      this.#db.rows<{ index_name: string }>('SELECT index_name FROM record_indexes WHERE namespace = ? AND key = ?', namespace, key).map((row) => row.index_name),
    );
    const added = Object.entries(indexes).filter(([name]) => !present.has(name));
    // Nothing to add is the common case (an upgrade's backfill at every start): a read, no write transaction.
    if (added.length === 0) return true;
    return this.#db.write(() => {
      if (!this.#db.row(`SELECT 1 AS found FROM records WHERE namespace = ? AND key = ? AND ${live}`, namespace, key, now)) return false;
      for (const [name, value] of added) {
        // An index the record has keeps its value: one value per index name, as `set` writes them.
        this.#db.run(
          `INSERT OR IGNORE INTO record_indexes (namespace, index_name, index_value, key)
           SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM record_indexes WHERE namespace = ? AND key = ? AND index_name = ?)`,
          namespace, name, value, key, namespace, key, name,
        );
      }
      return true;
    });
  }

  async findByIndex<T>(namespace: string, index: string, value: string, range: IndexRangeOptions = {}): Promise<StoreEntry<T>[]> {
    assertStoreName('namespace', namespace);
    assertStoreName('index', index);
    // One statement per shape of range (prepared once each): the bounds are parameters, absent ones left out.
    const rows = this.#db.rows<RecordRow>(
      `SELECT r.key, r.value, r.expires_at FROM record_indexes i
       JOIN records r ON r.namespace = i.namespace AND r.key = i.key
       WHERE i.namespace = ? AND i.index_name = ? AND i.index_value = ?
         AND (r.expires_at IS NULL OR r.expires_at > ?)${range.after === undefined ? '' : ' AND i.key > ?'}${range.before === undefined ? '' : ' AND i.key < ?'}
       ORDER BY i.key${range.descending === true ? ' DESC' : ''}${range.limit === undefined ? '' : ' LIMIT ?'}`,
      namespace, index, value, this.#clock.now(),
      ...(range.after === undefined ? [] : [range.after]),
      ...(range.before === undefined ? [] : [range.before]),
      ...(range.limit === undefined ? [] : [range.limit]),
    );
    return rows.map(toEntry<T>);
  }

  async deleteByIndex(namespace: string, index: string, value: string): Promise<number> {
    assertStoreName('namespace', namespace);
    assertStoreName('index', index);
    const now = this.#clock.now();
    return this.#db.write(() => {
      const removed = this.#db.rows<{ key: string; expires_at: number | null }>(
        `DELETE FROM records WHERE namespace = ? AND key IN (
           SELECT key FROM record_indexes WHERE namespace = ? AND index_name = ? AND index_value = ?
         ) RETURNING key, expires_at`,
        namespace, namespace, index, value,
      );
      for (const { key } of removed) {
        this.#db.run('DELETE FROM record_indexes WHERE namespace = ? AND key = ?', namespace, key);
      }
      return removed.filter((row) => isLive(row.expires_at, now)).length;
    });
  }

  async list<T>(namespace: string, options: ListOptions = {}): Promise<StoreEntry<T>[]> {
    assertStoreName('namespace', namespace);
    assertListLimit(options.limit);
    const { limit = -1, after } = options;
    // Keys compare as bytes (SQLite's BINARY collation), the same order Redis's ZRANGEBYLEX gives.
    const rows = this.#db.rows<RecordRow>(
      `SELECT key, value, expires_at FROM records
       WHERE namespace = ? AND ${live} AND (? IS NULL OR key > ?)
       ORDER BY key LIMIT ?`,
      namespace, this.#clock.now(), after ?? null, after ?? null, limit,
    );
    return rows.map(toEntry<T>);
  }

  async increment(namespace: string, key: string, ttlSeconds: number, by = 1): Promise<number> {
    assertStoreName('namespace', namespace);
    const now = this.#clock.now();
    const expiresAt = now + (ttlMilliseconds(ttlSeconds) ?? Number.MAX_SAFE_INTEGER - now);
    // An expired counter starts over with a fresh window; a live one keeps the expiry it was created with.
    const row = await this.#db.write(() => this.#db.row<{ value: number }>(
      `INSERT INTO counters (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (namespace, key) DO UPDATE SET
         value = CASE WHEN counters.expires_at <= ? THEN excluded.value ELSE counters.value + excluded.value END,
         expires_at = CASE WHEN counters.expires_at <= ? THEN excluded.expires_at ELSE counters.expires_at END
       RETURNING value`,
      namespace, key, by, expiresAt, now, now,
    ));
    return Number(row?.value);
  }

  async acquireLock(name: string, ttlMs: number): Promise<ReleaseLock | undefined> {
    assertStoreName('lock', name);
    assertLockTtl(ttlMs);
    const now = this.#clock.now();
    const token = randomUUID();
    // Insert, or take over a lock whose holder let it expire; both in one statement so two takers cannot both win.
    const taken = await this.#db.write(() => this.#db.row(
      `INSERT INTO locks (name, token, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
       WHERE locks.expires_at <= ?
       RETURNING token`,
      name, token, now + ttlMs, now,
    ));
    if (!taken) return undefined;
    return async () => {
      // Only the holder's token deletes the row: a late release cannot free a lock someone else now holds.
      await this.#db.write(() => this.#db.run('DELETE FROM locks WHERE name = ? AND token = ?', name, token));
    };
  }

  async publish(channel: string, message: string): Promise<void> {
    assertStoreName('channel', channel);
    this.#db.assertOpen();
    this.#pubsub.publish(channel, message);
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<Unsubscribe> {
    assertStoreName('channel', channel);
    this.#db.assertOpen();
    return this.#pubsub.subscribe(channel, onMessage);
  }

  async purgeExpired(): Promise<number> {
    const now = this.#clock.now();
    return this.#db.write(() => {
      const removed = this.#db.rows<{ namespace: string; key: string }>(
        'DELETE FROM records WHERE expires_at <= ? RETURNING namespace, key',
        now,
      );
      for (const { namespace, key } of removed) {
        this.#db.run('DELETE FROM record_indexes WHERE namespace = ? AND key = ?', namespace, key);
      }
      this.#db.run('DELETE FROM counters WHERE expires_at <= ?', now);
      this.#db.run('DELETE FROM locks WHERE expires_at <= ?', now);
      return removed.length;
    });
  }

  async ping(): Promise<void> {
    this.#db.row('SELECT 1 AS ok');
    // Up means writable: a read answers while another process holds the write lock (sqlite-database.ts).
    this.#db.probeWriteLock();
  }

  async close(): Promise<void> {
    this.#purgeTimer.stop();
    this.#pubsub.clear();
    this.#db.close();
  }

  /**
   * The body of `set`, run inside the caller's write. Most writes are of new keys (audit records, new codes and
   * tokens): one INSERT, with no index rows to clear. An existing key is updated and its old index rows go.
   */
  #put({ namespace, key, value, options = {} }: StoreWrite): void {
    const serialized = serializeValue(value);
    const expiresAt = this.#expiresAt(options.ttlSeconds);
    const inserted = this.#db.changes(
      'INSERT OR IGNORE INTO records (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)',
      namespace, key, serialized, expiresAt,
    );
    if (inserted > 0) return this.#insertIndexes(namespace, key, options.indexes);
    this.#db.run('UPDATE records SET value = ?, expires_at = ? WHERE namespace = ? AND key = ?', serialized, expiresAt, namespace, key);
    this.#replaceIndexes(namespace, key, options.indexes);
  }

  #expiresAt(ttlSeconds: number | undefined): number | null {
    const ttlMs = ttlMilliseconds(ttlSeconds);
    return ttlMs === undefined ? null : this.#clock.now() + ttlMs;
  }

  #replaceIndexes(namespace: string, key: string, indexes: Record<string, string> | undefined): void {
    this.#db.run('DELETE FROM record_indexes WHERE namespace = ? AND key = ?', namespace, key);
    this.#insertIndexes(namespace, key, indexes);
  }

  #insertIndexes(namespace: string, key: string, indexes: Record<string, string> | undefined): void {
    for (const [name, value] of Object.entries(indexes ?? {})) {
      assertStoreName('index', name);
      this.#db.run(
        'INSERT OR IGNORE INTO record_indexes (namespace, index_name, index_value, key) VALUES (?, ?, ?, ?)',
        namespace, name, value, key,
      );
    }
  }
}

/**
 * Rows per multi-row INSERT of setMany: its statements are cached per row count, so at most this many of each (and
 * 4 parameters a row stays far below SQLite's limit of 32,766).
 */
const INSERT_ROWS = 32;

/** `(?, ?, ?, ?), …` for `rows` rows of four columns. */
const placeholders = (rows: number): string => Array.from({ length: rows }, () => '(?, ?, ?, ?)').join(', ');

function isLive(expiresAt: number | null, now: number): boolean {
  return expiresAt === null || expiresAt > now;
}

function toEntry<T>(row: RecordRow): StoreEntry<T> {
  const entry: StoreEntry<T> = { key: row.key, value: parseStoredValue(row.value) as T };
  if (row.expires_at !== null) entry.expiresAt = row.expires_at;
  return entry;
}
