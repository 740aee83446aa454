import { makeDirectory } from '../runtime/make-directory.ts';
import { chmodSync, closeSync, constants, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { migrateSqliteSchema } from './sqlite-schema.ts';
import { StoreUnavailableError } from './store.ts';
import { WAL_SIZE_LIMIT_BYTES, WalCheckpointer, type WalCheckpointerOptions } from './wal-checkpointer.ts';

/** SQLite result codes (primary, low byte) that mean "cannot serve now", not "this query is wrong". */
const unavailableCodes = new Set([
  5, // SQLITE_BUSY: another process held the write lock past busy_timeout
  6, // SQLITE_LOCKED
  7, // SQLITE_NOMEM
  8, // SQLITE_READONLY: the file (or its directory, for the WAL) cannot be written
  10, // SQLITE_IOERR
  11, // SQLITE_CORRUPT: not "retry later", but a store that cannot serve, not a request's bug: 503 and readiness down
  13, // SQLITE_FULL
  14, // SQLITE_CANTOPEN
  26, // SQLITE_NOTADB
]);

/**
 * Whether a failure (or any cause of it) is a database file SQLite cannot read as one — corrupt pages
 * (SQLITE_CORRUPT) or not a database (SQLITE_NOTADB): a state no retry ends, where the other codes above pass
 * (a lock held, a full disk, a read-only file). At start, the one is a refusal to start, the others a failed start a
 * supervisor may retry.
 */
export function isDamagedDatabase(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    const primaryCode = ((cause as { errcode?: unknown }).errcode as number | undefined ?? 0) & 0xff;
    if (primaryCode === 11 || primaryCode === 26) return true;
  }
  return false;
}

/** How long a write waits for another process's write lock, on the event loop (see `open`). */
/** How often the database file is looked at (#watchFile). */
const FILE_CHECK_INTERVAL_MS = 1_000;
const BUSY_TIMEOUT_MS = 1_000;

/** The writes of one event-loop turn: one transaction, settled together when it commits. */
interface WriteBatch {
  settle: Array<(failure: unknown) => void>;
}

/**
 * The open batch of each database file in this process. Two connections of one process on one file (two stores in
 * one test process, say) would otherwise deadlock: the second one's `BEGIN IMMEDIATE` blocks the event loop in
 * `busy_timeout` while the first one's commit waits for that same loop. So a connection commits the other one's
 * batch before taking the write lock.
 */
const openBatches = new Map<string, SqliteDatabase>();

/**
 * The plumbing under the SQLite store: opening the file with the right pragmas, cached prepared statements, write
 * batches, and turning an unreachable database into StoreUnavailableError. Kept apart so sqlite-store.ts reads as
 * the Store's semantics only.
 *
 * Writes are committed in groups. The first write of an event-loop turn opens a `BEGIN IMMEDIATE` transaction, every
 * write of that turn (of every request) joins it as a savepoint of its own, and the turn's end (`setImmediate`)
 * commits them together. Each write still runs whole and alone — node:sqlite is synchronous, so nothing interleaves
 * with it — and a write that throws rolls back only its own savepoint. What changes is the cost: a commit appends
 * every page the transaction touched to the WAL and takes and releases the file locks, so one commit per turn
 * instead of one per write cuts the WAL frames and lock calls several times under load (the OAuth endpoints' profile
 * had 42 % of their busy time in the store, half of it in BEGIN and COMMIT). A write's promise settles only after its
 * batch committed, so no caller answers a client before its change is in the WAL (durable across a process crash,
 * as before); if the commit fails, every write of the batch is rejected and none of it is kept. Reads run on the
 * same connection, so between a write and its commit they already see it — a read's answer is no less consistent
 * than with one transaction per write, since the batch either commits whole or fails every write that made the
 * change. Another process waits for the write lock at most one turn longer than before (`busy_timeout` covers it).
 */
export class SqliteDatabase {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  readonly #file: string | undefined;
  readonly #checkpointer: WalCheckpointer | undefined;
  #batch: WriteBatch | undefined;
  /** Writes waiting for a quiet checkpoint round (wal-checkpointer.ts), in order; undefined when writes run. */
  #held: Array<() => void> | undefined;
  #closed = false;
  /** Why the store is down for good (its file deleted or replaced under it), once noticed. */
  #lost: string | undefined;
  #fileCheck: NodeJS.Timeout | undefined;
  #commits = 0;
  #totalChanges = 0;

  /** Opens (creating the directory and migrating the schema), or throws a one-line StoreUnavailableError. */
  static open(
    path: string,
    options: {
      onCheckpointFailure?: WalCheckpointerOptions['onFailure'];
      onDiskFull?: WalCheckpointerOptions['onDiskFull'];
      checkpoints?: Pick<WalCheckpointerOptions, 'intervalMs' | 'quietRoundFrames' | 'quietHoldLimitMs' | 'diskFullPauseMs'>;
      /** Told once when the file was deleted or replaced under the open connection (see #watchFile). */
      onFileLost?: (problem: string) => void;
      /** How often the file is looked at for that; default 1 s. */
      fileCheckIntervalMs?: number;
    } = {},
  ): SqliteDatabase {
    const inMemory = path === ':memory:';
    let db: DatabaseSync | undefined;
    try {
      if (!inMemory) {
        makeDirectory(dirname(path), 0o700);
        keepPrivate(path);
      }
      // The migration below takes the write lock: a batch another connection of this process holds on the file
      // would block it for the whole busy_timeout (see openBatches).
      if (!inMemory) openBatches.get(resolve(path))?.commitNow();
      db = new DatabaseSync(path);
      // Wait for another process's write transaction instead of failing at once — briefly: node:sqlite waits on the
      // event loop, so every request waits with it (5 s here froze /healthz for seconds while another process held
      // the lock). The admin CLI's writes hold it for milliseconds; past the timeout the store is down (503) and
      // stays down, failing fast, until probeWriteLock sees the lock free.
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      if (inMemory) {
        migrateSqliteSchema(db);
        return new SqliteDatabase(db, undefined, undefined);
      }
      db.exec('PRAGMA journal_mode = WAL');
      // NORMAL is durable across a process crash in WAL mode; only a power loss can drop the last commits.
      db.exec('PRAGMA synchronous = NORMAL');
      // Checkpoints run beside this connection, their fsyncs off the event loop (wal-checkpointer.ts); a WAL that
      // grew while they could not run is cut back to this size once it starts over.
      db.exec('PRAGMA wal_autocheckpoint = 0');
      db.exec(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
      // A migration can write the whole store into the WAL (schema 2 copies every record). Copied into the file now,
      // at start-up, it is not left for the checkpointer's first round, whose copying runs on the event loop (≈ 3 ms
      // per 1,000 pages: seconds for a large store). PASSIVE: it waits for no other process's reader.
      if (migrateSqliteSchema(db) > 0) db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get();
      let opened: SqliteDatabase | undefined;
      const connection = db;
      const checkpointer = new WalCheckpointer({
        file: resolve(path),
        restoreAutoCheckpoint: () => connection.isOpen && connection.exec('PRAGMA wal_autocheckpoint = 1000'),
        holdWrites: () => opened!.holdWrites(),
        commits: () => opened!.commits,
        onFailure: options.onCheckpointFailure,
        onDiskFull: options.onDiskFull,
        ...options.checkpoints,
      });
      opened = new SqliteDatabase(db, resolve(path), checkpointer);
      opened.#watchFile(options.fileCheckIntervalMs ?? FILE_CHECK_INTERVAL_MS, options.onFileLost);
      return opened;
    } catch (error) {
      if (db?.isOpen) db.close();
      throw new StoreUnavailableError(`cannot open the SQLite store at ${path}: ${messageOf(error)}`, { cause: error });
    }
  }

  private constructor(db: DatabaseSync, file: string | undefined, checkpointer: WalCheckpointer | undefined) {
    this.#db = db;
    this.#file = file;
    this.#checkpointer = checkpointer;
  }

  /**
   * Runs `work` now, inside this turn's write batch; resolves with its result once the batch has committed. A throw
   * from `work` undoes its own changes only and rejects at once.
   */
  write<R>(work: () => R): Promise<R> {
    const held = this.#held;
    if (held) return new Promise<R>((resolve, reject) => held.push(() => this.write(work).then(resolve, reject)));
    let batch: WriteBatch;
    let result: R;
    try {
      batch = this.#openBatch();
      this.#run('SAVEPOINT write');
      try {
        result = work();
        this.#run('RELEASE write');
      } catch (error) {
        if (!this.#db.isTransaction) {
          // SQLite rolled the whole transaction back (a full disk, an I/O error, out of memory): every write of the
          // batch is gone, not this one's only.
          this.#abandon(batch, error);
          throw error;
        }
        this.#run('ROLLBACK TO write');
        this.#run('RELEASE write');
        throw error;
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<R>((resolve, reject) => {
      batch.settle.push((failure) => (failure === undefined ? resolve(result) : reject(failure)));
    });
  }

  #openBatch(): WriteBatch {
    if (this.#batch) return this.#batch;
    this.assertOpen();
    if (this.#file !== undefined) openBatches.get(this.#file)?.commitNow();
    // IMMEDIATE takes the write lock up front, so a second process waits (busy_timeout) instead of deadlocking.
    this.#run('BEGIN IMMEDIATE');
    const batch: WriteBatch = { settle: [] };
    this.#batch = batch;
    if (this.#file !== undefined) openBatches.set(this.#file, this);
    setImmediate(() => this.#commit(batch));
    return batch;
  }

  /** Forgets the open batch: the next write opens a transaction of its own. */
  #forgetBatch(): void {
    this.#batch = undefined;
    if (this.#file !== undefined && openBatches.get(this.#file) === this) openBatches.delete(this.#file);
  }

  /**
   * The batch's transaction is gone (SQLite rolled it back on its own): its earlier writes, each already through its
   * savepoint, are rejected as not stored — an outage, which callers handle as such — and the next write opens a new
   * transaction. Without this, the next writes' savepoints ran outside any transaction, each committed on its own, and
   * the batch's COMMIT then failed and rejected them too: writes on disk but reported lost.
   */
  #abandon(batch: WriteBatch, cause: unknown): void {
    this.#forgetBatch();
    const failure =
      cause instanceof StoreUnavailableError
        ? cause
        : new StoreUnavailableError(`the SQLite store is unavailable: ${messageOf(cause)}`, { cause });
    for (const settle of batch.settle) settle(failure);
  }

  /** Commits `batch` (if still open) and settles its writes: all fulfilled, or all rejected with the failure. */
  #commit(batch: WriteBatch): void {
    if (this.#batch !== batch) return;
    this.#forgetBatch();
    let failure: unknown;
    try {
      this.#run('COMMIT');
      // Counted only when rows changed: a batch that changed none (a purge with nothing expired) wrote no frame, and
      // must not keep the checkpointer from starting the WAL over (its next writer would then, with an fsync).
      this.#countCommit();
      // The store writes only through batches, so a commit is the one place the WAL grows.
      this.#checkpointer?.markDirty();
    } catch (error) {
      failure = error;
      try {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      } catch {
        // This runs from setImmediate, where a throw would end the process; the commit's failure is what callers get.
      }
    }
    for (const settle of batch.settle) settle(failure);
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

  /** A statement without parameters (the batch's own BEGIN, SAVEPOINT, COMMIT …), an outage mapped like any other. */
  #run(sql: string): void {
    this.#guard(() => this.#statement(sql).run());
  }

  /** Runs a statement and returns how many rows it changed. */
  changes(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.#guard(() => this.#statement(sql).run(...params)).changes);
  }

  /**
   * Makes new writes wait, after committing the open batch, until the returned function is called: a quiet round of
   * the checkpointer copies the whole WAL, and the checkpointer starts the WAL over and syncs its new header before
   * any write of ours follows it. Reads go on meanwhile (and do not see the waiting writes, whose promises have not
   * settled).
   */
  holdWrites(): () => void {
    this.commitNow();
    const held: Array<() => void> = [];
    this.#held = held;
    return () => {
      if (this.#held !== held) return;
      this.#held = undefined;
      for (const write of held) write();
    };
  }

  #countCommit(): void {
    let total = Number.NaN;
    try {
      total = Number((this.#statement('SELECT total_changes() AS n').get() as { n: number }).n);
    } catch {
      // The commit stands whatever this read does; counting it is the safe side (the checkpointer then waits a round).
    }
    if (total === this.#totalChanges) return;
    this.#totalChanges = total;
    this.#commits++;
  }

  /** How many batches that changed rows this connection has committed (the checkpointer's "written since my copy?"). */
  get commits(): number {
    return this.#commits;
  }

  /** Commits the open batch now instead of at the end of the turn. */
  commitNow(): void {
    if (this.#batch) this.#commit(this.#batch);
  }

  /**
   * Whether a write could take the write lock now, without waiting: the store's health probe. `SELECT 1` answered
   * while another process held the lock, so the store was marked up every second and the next write waited out the
   * busy timeout on the event loop again. Throws StoreUnavailableError (SQLITE_BUSY) while the lock is held elsewhere.
   */
  probeWriteLock(): void {
    this.assertOpen();
    // Our own open batch holds the lock: a write would join it.
    if (this.#batch !== undefined || this.#db.isTransaction) return;
    if (this.#file !== undefined) openBatches.get(this.#file)?.commitNow();
    this.#db.exec('PRAGMA busy_timeout = 0');
    try {
      this.#run('BEGIN IMMEDIATE');
      this.#run('ROLLBACK');
    } finally {
      this.#db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  close(): void {
    if (this.#closed) return;
    // Writes already made are committed, not lost with the connection.
    this.commitNow();
    // Writes waiting for a quiet checkpoint round: the store is closing, they fail as after close (assertOpen).
    const held = this.#held;
    this.#held = undefined;
    this.#closed = true;
    clearInterval(this.#fileCheck);
    for (const write of held ?? []) write();
    // The helpers first: the last connection to close checkpoints and removes the WAL, and it must be this one.
    this.#checkpointer?.stop();
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
    if (this.#lost !== undefined) throw new StoreUnavailableError(this.#lost);
  }

  /**
   * Watches that the path still names the file this connection has open. A database file deleted (or replaced) under
   * a running gateway went on taking writes — into a file no longer on disk, lost at the next restart, which the
   * checkpointer's error line advised — while readiness said ok. From the moment it is noticed, every store call is
   * an outage (503, readiness down) and one line says why; only a restart opens the file again.
   */
  #watchFile(intervalMs: number, onLost: ((problem: string) => void) | undefined): void {
    const file = this.#file;
    if (file === undefined) return;
    const opened = statSync(file);
    const check = (): void => {
      if (this.#closed || this.#lost !== undefined) return;
      let now: ReturnType<typeof statSync>;
      try {
        now = statSync(file, { throwIfNoEntry: false });
      } catch {
        // Cannot tell (a directory made unreadable, NFS's ESTALE, an I/O error): the open connection may well still
        // work, so nothing is concluded; a throw here, in a timer, ended the process.
        return;
      }
      if (now !== undefined && now.ino === opened.ino && now.dev === opened.dev) return;
      this.#lost =
        `the SQLite store's file ${file} was ${now === undefined ? 'deleted' : 'replaced'} while Gatehouse had it open: ` +
        `what it holds is in no file on disk (until this process exits it can still be copied out of /proc/${process.pid}/fd); ` +
        'put the file (or a backup) back and restart Gatehouse';
      clearInterval(this.#fileCheck);
      onLost?.(this.#lost);
    };
    this.#fileCheck = setInterval(check, intervalMs);
    this.#fileCheck.unref();
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The store holds the keyring's private keys (`keys.source: store`), sealed tokens and client records: it is the
 * gateway's alone. A new file is created readable by its owner only (SQLite gives its `-wal` and `-shm` the same
 * mode), and one found readable by every local user (a store made before this, or under a lax umask) loses that:
 * no deployment needs other users to read it, and any of them could copy the signing key and mint tokens.
 */
function keepPrivate(path: string): void {
  try {
    closeSync(openSync(path, constants.O_CREAT | constants.O_WRONLY, 0o600));
  } catch {
    return; // Not ours to create (read-only, a directory): opening it says why.
  }
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      const { mode } = statSync(file);
      if ((mode & 0o007) !== 0) chmodSync(file, mode & 0o770);
    } catch {
      // Absent (no WAL yet) or not ours to change: nothing to tighten.
    }
  }
}
