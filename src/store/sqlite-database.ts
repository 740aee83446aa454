import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { migrateSqliteSchema } from './sqlite-schema.ts';
import { StoreUnavailableError } from './store.ts';

/** SQLite result codes (primary, low byte) that mean "cannot serve now", not "this query is wrong". */
const unavailableCodes = new Set([
  5, // SQLITE_BUSY: another process held the write lock past busy_timeout
  6, // SQLITE_LOCKED
  10, // SQLITE_IOERR
  13, // SQLITE_FULL
  14, // SQLITE_CANTOPEN
]);

/**
 * The plumbing under the SQLite store: opening the file with the right pragmas, cached prepared statements, write
 * transactions, and turning an unreachable database into StoreUnavailableError. Kept apart so sqlite-store.ts reads
 * as the Store's semantics only.
 */
export class SqliteDatabase {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #closed = false;

  /** Opens (creating the directory and migrating the schema), or throws a one-line StoreUnavailableError. */
  static open(path: string): SqliteDatabase {
    const inMemory = path === ':memory:';
    try {
      if (!inMemory) mkdirSync(dirname(path), { recursive: true });
      const db = new DatabaseSync(path);
      // Wait for another process's write transaction instead of failing at once.
      db.exec('PRAGMA busy_timeout = 5000');
      if (!inMemory) {
        db.exec('PRAGMA journal_mode = WAL');
        // NORMAL is durable across a process crash in WAL mode; only a power loss can drop the last commits.
        db.exec('PRAGMA synchronous = NORMAL');
      }
      migrateSqliteSchema(db);
      return new SqliteDatabase(db);
    } catch (error) {
      throw new StoreUnavailableError(`cannot open the SQLite store at ${path}: ${messageOf(error)}`, { cause: error });
    }
  }

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Runs `work` in one write transaction; a throw rolls everything back. */
  transaction<R>(work: () => R): R {
    this.assertOpen();
    // IMMEDIATE takes the write lock up front, so a second process waits (busy_timeout) instead of deadlocking.
    this.#guard(() => this.#db.exec('BEGIN IMMEDIATE'));
    try {
      const result = work();
      this.#db.exec('COMMIT');
      return result;
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  row<R = Record<string, unknown>>(sql: string, ...params: SQLInputValue[]): R | undefined {
    return this.#guard(() => this.#statement(sql).get(...params) as R | undefined);
  }

  rows<R>(sql: string, ...params: SQLInputValue[]): R[] {
    return this.#guard(() => this.#statement(sql).all(...params) as R[]);
  }

  run(sql: string, ...params: SQLInputValue[]): void {
    this.#guard(() => this.#statement(sql).run(...params));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #guard<R>(work: () => R): R {
    this.assertOpen();
    try {
      return work();
    } catch (error) {
      const primaryCode = ((error as { errcode?: number }).errcode ?? 0) & 0xff;
      if (unavailableCodes.has(primaryCode)) {
        throw new StoreUnavailableError(`the SQLite store is unavailable: ${messageOf(error)}`, { cause: error });
      }
      throw error;
    }
  }

  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** Throws StoreUnavailableError after close(), so a late caller learns the store is gone. */
  assertOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('the SQLite store is closed');
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
