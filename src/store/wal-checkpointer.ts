import { open, type FileHandle } from 'node:fs/promises';
import { DatabaseSync } from 'node:sqlite';

/**
 * Moves the SQLite store's write-ahead log into the database file without stopping the event loop for the disk.
 *
 * SQLite checkpoints by itself inside the COMMIT that takes the WAL past 1,000 pages, and a checkpoint under
 * `synchronous = NORMAL` syncs the WAL and then the database file: two fsyncs, 20–50 ms on this class of disk, on
 * the event loop, so every request in flight waited for them, and the OAuth endpoints spent about a fifth of their
 * time there (measured: DCR 1,950 → 2,390 per second, refresh grants 780 → 980 with checkpoints off the loop). A
 * worker thread would move the whole checkpoint away but costs ≈ 18 MB of memory for an isolate. Instead the
 * gateway's connection never checkpoints (`wal_autocheckpoint = 0`) and this does, in steps where only the copying
 * runs on the loop (≈ 3 ms per 1,000 pages) and both fsyncs run on libuv's thread pool:
 *
 * 1. `pin` opens a read transaction: its snapshot ends at the WAL's last frame F. While it lasts, a checkpoint copies
 *    no frame after F (a reader of that snapshot must not see newer pages in the database file) and no writer can
 *    start the WAL over (the frames are still read).
 * 2. The WAL is synced (async), so frames up to F are durable before any of them is copied.
 * 3. `copier`, a connection with `synchronous = OFF`, runs a PASSIVE checkpoint: it copies frames up to F into the
 *    database file without syncing and without waiting for anyone.
 * 4. The database file is synced (async).
 * 5. `pin` ends its read transaction; only now may a writer start the WAL over, its frames all safely in the
 *    database file.
 *
 * That is the order SQLite's own checkpoint keeps (sync WAL, copy, sync database, then allow the restart), so a
 * power loss at any point leaves a database SQLite recovers. The helper connections are closed before the gateway's
 * own, so the last connection to close — which checkpoints and removes the WAL — is one with `synchronous = NORMAL`.
 * If a step fails (a disk error), SQLite's own checkpointing is switched back on and this stops: the WAL must never
 * grow without bound.
 */
export interface WalCheckpointerOptions {
  file: string;
  /** Called with a failure that switched the checkpoints back to SQLite's own (once). */
  onFailure?: (error: unknown) => void;
  /** Turns SQLite's own checkpoints back on (the gateway's connection), after a failure. */
  restoreAutoCheckpoint: () => void;
  intervalMs?: number;
}

export const CHECKPOINT_INTERVAL_MS = 250;

const TRANSIENT_CODES = new Set([5, 6]);

export class WalCheckpointer {
  readonly #pin: DatabaseSync;
  readonly #copier: DatabaseSync;
  readonly #options: WalCheckpointerOptions;
  readonly #timer: NodeJS.Timeout;
  #files: Promise<{ wal: FileHandle; db: FileHandle }> | undefined;
  #running: Promise<void> | undefined;
  #dirty = false;
  #stopped = false;

  constructor(options: WalCheckpointerOptions) {
    this.#options = options;
    this.#pin = new DatabaseSync(options.file);
    this.#copier = new DatabaseSync(options.file);
    this.#copier.exec('PRAGMA synchronous = OFF');
    this.#copier.exec('PRAGMA busy_timeout = 0');
    this.#timer = setInterval(() => void this.checkpoint(), options.intervalMs ?? CHECKPOINT_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Something was committed since the last checkpoint. */
  markDirty(): void {
    this.#dirty = true;
  }

  /** Checkpoints now if anything was committed since the last time; resolves when done (or failed and stopped). */
  checkpoint(): Promise<void> {
    if (this.#stopped || this.#running || !this.#dirty) return this.#running ?? Promise.resolve();
    this.#dirty = false;
    this.#running = this.#checkpoint().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #checkpoint(): Promise<void> {
    try {
      const files = await this.#openFiles();
      if (this.#stopped) return;
      this.#pin.exec('BEGIN');
      try {
        this.#pin.prepare('SELECT count(*) FROM sqlite_schema').get();
        await files.wal.datasync();
        if (this.#stopped) return;
        this.#copier.prepare('PRAGMA wal_checkpoint(PASSIVE)').get();
        await files.db.datasync();
      } finally {
        if (this.#pin.isOpen && this.#pin.isTransaction) this.#pin.exec('COMMIT');
      }
    } catch (error) {
      if (this.#stopped) return;
      // Another process holding the file for a moment (SQLITE_BUSY, SQLITE_LOCKED): the next round tries again.
      if (TRANSIENT_CODES.has(((error as { errcode?: number }).errcode ?? 0) & 0xff)) {
        this.#dirty = true;
        return;
      }
      this.stop();
      this.#options.restoreAutoCheckpoint();
      this.#options.onFailure?.(error);
    }
  }

  #openFiles(): Promise<{ wal: FileHandle; db: FileHandle }> {
    this.#files ??= Promise.all([open(`${this.#options.file}-wal`, 'r'), open(this.#options.file, 'r')]).then(([wal, db]) => ({ wal, db }));
    return this.#files;
  }

  /**
   * Stops checkpointing and closes the helper connections at once, before the gateway's own (see above). A
   * checkpoint waiting for an fsync then finds them closed and ends; the gateway's connection, closing last, makes
   * its own synced checkpoint.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#pin.close();
    this.#copier.close();
    const files = this.#files;
    this.#files = undefined;
    void (this.#running ?? Promise.resolve())
      .then(() => files)
      .then(
        (open) => open && Promise.allSettled([open.wal.close(), open.db.close()]),
        () => undefined,
      );
  }
}
