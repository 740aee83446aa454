import { closeSync, fdatasyncSync, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { DatabaseSync } from 'node:sqlite';

/**
 * Moves the SQLite store's write-ahead log into the database file without stopping the event loop for the disk.
 *
 * SQLite checkpoints by itself inside the COMMIT that takes the WAL past 1,000 pages, and a checkpoint under
 * `synchronous = NORMAL` syncs the WAL and then the database file: two fsyncs, 20–50 ms on this class of disk, on
 * the event loop, so every request in flight waited for them, and the OAuth endpoints spent about a fifth of their
 * time there. A worker thread would move the whole checkpoint away but costs ≈ 18 MB of memory for an isolate.
 * Instead the gateway's connection never checkpoints (`wal_autocheckpoint = 0`) and this does, in rounds where only
 * the copying runs on the loop (≈ 3 ms per 1,000 pages) and both fsyncs run on libuv's thread pool:
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
 * power loss at any point leaves a database SQLite recovers.
 *
 * A writer starts the WAL over only when everything in it was copied and no reader holds it. Under a steady load
 * some commit always lands during a round's fsyncs, so the WAL would never start over and would grow without bound.
 * So once it holds QUIET_ROUND_FRAMES frames, the next round is a quiet one: the gateway's new writes wait (queued,
 * in order; the event loop and reads go on) until the round has copied and synced everything, and the first write
 * after it starts the WAL over (SQLite syncs the new WAL header then, the one fsync left on the loop, once per
 * quiet round). A quiet round holds them for QUIET_HOLD_LIMIT_MS at most: a disk whose fsync hangs must not hang
 * every request that writes with it. Past the limit they go on (safely: every other round runs beside writes), and
 * the WAL starts over in a later quiet round instead.
 *
 * Closing: the helper connections close before the gateway's own, so the last connection to close — which
 * checkpoints and removes the WAL — is one with `synchronous = NORMAL`; the database file is synced first, since
 * that last checkpoint, finding nothing left to copy after a round of ours (or of another process) caught between
 * its copy and its sync, would remove the WAL without syncing.
 *
 * The limit of copying without SQLite's own syncs: the copy marks the frames copied in the shared `-shm` before step
 * 4 has synced them, and only this process's pin stands between that mark and a restart. If the process dies in
 * that window (tens of milliseconds per round) while another process keeps the file open — the admin CLI beside the
 * gateway — that process's next write may start the WAL over; the pages then exist only in the kernel's cache until
 * it writes them back (seconds), and a power loss inside that window loses them. A crash alone is harmless (the
 * next open recovers from the WAL), and so is a single process. Closing that window needs the copy and its syncs
 * in one thread that is not the event loop: a worker, ≈ 18 MB.
 *
 * Failures: one that syncs nothing (the files cannot be opened) hands checkpoints back to SQLite and stops. A failed
 * fsync is different: the copied pages may never reach the disk, so the WAL must outlive this process for SQLite to
 * recover from it. The pin is then kept for good (no writer can start the WAL over, and the gateway's connection,
 * not being the last one, cannot remove it on close), and the failure is reported: the store keeps working, its WAL
 * grows until the process restarts, and the restart's recovery copies the WAL again.
 */
export interface WalCheckpointerOptions {
  file: string;
  /** Checkpoints were handed back to SQLite, or (`walKeptForRecovery`) stopped with the WAL kept for recovery. */
  onFailure?: (error: unknown, outcome: { walKeptForRecovery: boolean }) => void;
  /** Turns SQLite's own checkpoints back on (the gateway's connection). */
  restoreAutoCheckpoint: () => void;
  /** Makes the gateway's new writes wait; the function returned lets them go. */
  holdWrites: () => () => void;
  intervalMs?: number;
  quietRoundFrames?: number;
  quietHoldLimitMs?: number;
}

export const CHECKPOINT_INTERVAL_MS = 250;

/** 4,000 pages of 4 KiB: a quiet round about every 16 MB of WAL. */
export const QUIET_ROUND_FRAMES = 4000;

/** A quiet round takes ≈ 0.1 s (the copy of 4,000 pages and two fsyncs); writes wait for it this long at most. */
export const QUIET_HOLD_LIMIT_MS = 2000;

/** SQLITE_BUSY, SQLITE_LOCKED: another process holds the file for a moment; the next round tries again. */
const TRANSIENT_CODES = new Set([5, 6]);

class SyncFailedError extends Error {}

export class WalCheckpointer {
  readonly #pin: DatabaseSync;
  readonly #copier: DatabaseSync;
  readonly #options: WalCheckpointerOptions;
  readonly #timer: NodeJS.Timeout;
  #files: Promise<{ wal: FileHandle; db: FileHandle }> | undefined;
  #running: Promise<void> | undefined;
  #dirty = false;
  #quiet = false;
  #stopped = false;
  #walKept = false;

  constructor(options: WalCheckpointerOptions) {
    this.#options = options;
    this.#pin = new DatabaseSync(options.file);
    this.#copier = new DatabaseSync(options.file);
    this.#copier.exec('PRAGMA synchronous = OFF');
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
    this.#running = this.#round().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #round(): Promise<void> {
    let release: (() => void) | undefined;
    let holdLimit: NodeJS.Timeout | undefined;
    try {
      const files = await this.#openFiles();
      if (this.#stopped) return;
      if (this.#quiet) {
        release = this.#options.holdWrites();
        holdLimit = setTimeout(() => release?.(), this.#options.quietHoldLimitMs ?? QUIET_HOLD_LIMIT_MS);
        holdLimit.unref();
      }
      this.#pin.exec('BEGIN');
      let keepPin = false;
      try {
        this.#pin.prepare('SELECT count(*) FROM sqlite_schema').get();
        await this.#sync(files.wal);
        if (this.#stopped) return;
        const result = this.#copier.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number; checkpointed: number };
        await this.#sync(files.db);
        // Frames left behind (written during this round, or held by another reader) need another round even if
        // nothing else is committed; a WAL this long needs a quiet one to start over. A checkpoint that found
        // another process's checkpoint running copied nothing (-1, -1): it is retried too.
        if (result.log < 0 || result.checkpointed < result.log) this.#dirty = true;
        this.#quiet = result.log >= (this.#options.quietRoundFrames ?? QUIET_ROUND_FRAMES) && !this.#quiet;
      } catch (error) {
        keepPin = error instanceof SyncFailedError;
        throw error;
      } finally {
        if (!keepPin && this.#pin.isOpen && this.#pin.isTransaction) this.#pin.exec('COMMIT');
      }
    } catch (error) {
      if (this.#stopped) return;
      if (TRANSIENT_CODES.has(((error as { errcode?: number }).errcode ?? 0) & 0xff)) {
        this.#dirty = true;
        return;
      }
      this.#walKept = error instanceof SyncFailedError;
      // Stopping syncs the database file; if that fails too, the WAL is kept after all, and that failure is the one
      // reported (once): handing checkpoints back while a pin holds the WAL would let it grow without end.
      const stopFailure = this.#halt();
      if (!this.#walKept) this.#options.restoreAutoCheckpoint();
      const reported = stopFailure ?? (error instanceof SyncFailedError ? error.cause : error);
      this.#options.onFailure?.(reported, { walKeptForRecovery: this.#walKept });
    } finally {
      clearTimeout(holdLimit);
      release?.();
    }
  }

  async #sync(file: FileHandle): Promise<void> {
    try {
      await file.datasync();
    } catch (error) {
      throw new SyncFailedError('fsync failed', { cause: error });
    }
  }

  #openFiles(): Promise<{ wal: FileHandle; db: FileHandle }> {
    this.#files ??= Promise.allSettled([open(`${this.#options.file}-wal`, 'r'), open(this.#options.file, 'r')]).then(([wal, db]) => {
      if (wal.status === 'fulfilled' && db.status === 'fulfilled') return { wal: wal.value, db: db.value };
      for (const opened of [wal, db]) if (opened.status === 'fulfilled') void opened.value.close();
      throw (wal.status === 'rejected' ? wal.reason : (db as PromiseRejectedResult).reason) as Error;
    });
    return this.#files;
  }

  /**
   * Stops checkpointing and closes the helper connections at once, before the gateway's own (see above). A round
   * waiting for its WAL sync then finds them closed and ends. The database file is synced here whether or not a round
   * of this process was between its copy and its sync: another process's round may have been (one that died there
   * left pages in the file that only the kernel holds), and the last connection's close, finding everything copied,
   * would remove the WAL without syncing.
   */
  stop(): void {
    const failure = this.#halt();
    if (failure !== undefined) this.#options.onFailure?.(failure, { walKeptForRecovery: true });
  }

  /** What stop() does, returning instead of reporting a failed database sync (the WAL is then kept). */
  #halt(): unknown {
    if (this.#stopped) return undefined;
    this.#stopped = true;
    clearInterval(this.#timer);
    let failure: unknown;
    if (!this.#walKept) {
      try {
        const fd = openSync(this.#options.file, 'r');
        try {
          fdatasyncSync(fd);
        } finally {
          closeSync(fd);
        }
      } catch (error) {
        // The WAL must outlive this connection for SQLite's recovery (see Failures above).
        this.#walKept = true;
        failure = error;
      }
    }
    // With the WAL kept for recovery, the pin stays open to the end of the process.
    if (!this.#walKept) this.#pin.close();
    this.#copier.close();
    const files = this.#files;
    this.#files = undefined;
    void (this.#running ?? Promise.resolve())
      .then(() => files)
      .then(
        (open) => open && Promise.allSettled([open.wal.close(), open.db.close()]),
        () => undefined,
      );
    return failure;
  }
}
