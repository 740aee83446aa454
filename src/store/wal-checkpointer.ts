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
 * Starting the WAL over. The first writer after a round that copied everything (no reader left on the WAL) writes
 * its frames from the start of the file again, behind a new header, and SQLite syncs that header before any frame
 * follows it: otherwise a power loss could keep the old header and a prefix of the old frames, which recovery would
 * replay over the newer pages already in the database file. Left to the gateway's connection, that fsync ran inside
 * the first commit after nearly every round at a moderate load (four times a second, ≈ 1 ms each here, tens of ms on
 * a slower disk), on the event loop: the largest cause of the proxy's p99 latency. So the round starts the WAL over
 * itself:
 *
 * 6. When the copy took every frame and no write of ours has been committed since, the gateway's writes are held,
 *    and `copier` (`synchronous = OFF`, so SQLite does not sync) makes the write that starts the WAL over: it sets
 *    `application_id` to the value it already has, which changes no data but writes page 1 as the new WAL's first
 *    frame, behind the new header.
 * 7. The WAL is synced (async); only then are the held writes let go. That is SQLite's own order — the new header is
 *    durable before any later frame is written — with the fsync on libuv's thread pool. These writes wait for the
 *    sync however long it takes (a hung fsync holds writes, not the event loop, as the commit's own fsync did);
 *    letting them outrun it would reopen the power-loss hazard above. If the sync fails, they go on (the store keeps
 *    working, as after any failed fsync below: durability is already in doubt, the WAL is kept for recovery, and
 *    the error log asks for a restart), and the pin is taken again, so no writer starts the WAL over again.
 *
 * Under a steady load some commit always lands during a round's fsyncs, so the copy never takes every frame, the WAL
 * would never start over and would grow without bound. So once it holds QUIET_ROUND_FRAMES frames, the next round is
 * a quiet one: the gateway's new writes wait (queued, in order; the event loop and reads go on) until the round has
 * copied and synced everything, and steps 6 and 7 start the WAL over. A quiet round holds them for
 * QUIET_HOLD_LIMIT_MS at most while it copies: a disk whose fsync hangs must not hang every request that writes with
 * it. Past the limit they go on (safely: every other round runs beside writes), and the WAL starts over in a later
 * round instead.
 *
 * Closing: the helper connections close before the gateway's own, so the last connection to close — which
 * checkpoints and removes the WAL — is one with `synchronous = NORMAL`; the database file is synced first, since
 * that last checkpoint, finding nothing left to copy after a round of ours (or of another process) caught between
 * its copy and its sync, would remove the WAL without syncing.
 *
 * The limits of copying without SQLite's own syncs: the copy marks the frames copied in the shared `-shm` before step
 * 4 has synced them, and only this process's pin stands between that mark and a restart. If the process dies in
 * that window (tens of milliseconds per round) while another process keeps the file open — the admin CLI beside the
 * gateway — that process's next write may start the WAL over; the pages then exist only in the kernel's cache until
 * it writes them back (seconds), and a power loss inside that window loses them. Likewise only this process's
 * writes wait for step 7: another process that writes in that window (as long as an fsync, per restart: a
 * millisecond here, more on a slow disk) writes behind a header not yet synced. A crash alone is harmless (the next
 * open recovers from the WAL), and so is a single process. Closing those windows needs the copy, the restart and
 * their syncs in one thread that is not the event loop: a worker, ≈ 18 MB.
 *
 * Failures: a full disk pauses the rounds for a few seconds (see DISK_FULL_PAUSE_MS). One that syncs nothing (the
 * files cannot be opened) hands checkpoints back to SQLite and stops. A failed
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
  /** A round found the disk full; rounds pause (DISK_FULL_PAUSE_MS) and resume. Called once per such stretch. */
  onDiskFull?: (error: unknown) => void;
  diskFullPauseMs?: number;
  /** Makes the gateway's new writes wait (after committing the open batch); the function returned lets them go. */
  holdWrites: () => () => void;
  /** How many commits the gateway's connection has made: one after a round's copy means the WAL was not all copied. */
  commits: () => number;
  intervalMs?: number;
  quietRoundFrames?: number;
  quietHoldLimitMs?: number;
}

export const CHECKPOINT_INTERVAL_MS = 250;

/** 4,000 pages of 4 KiB: a quiet round about every 16 MB of WAL. */
export const QUIET_ROUND_FRAMES = 4000;

/** A quiet round takes ≈ 0.1 s (the copy of 4,000 pages and two fsyncs); writes wait for it this long at most. */
export const QUIET_HOLD_LIMIT_MS = 2000;

/** A WAL that grew past this (checkpoints held back by a long read) is truncated to it when it starts over. */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/** SQLITE_BUSY, SQLITE_LOCKED: another process holds the file for a moment; the next round tries again. */
const TRANSIENT_CODES = new Set([5, 6]);

/**
 * SQLITE_FULL: the disk filled up under a copy (or under step 6's frame). A checkpoint that fails part-way is one
 * SQLite can run again — the WAL stays the authority for every page until it starts over, which only a copy that
 * finished allows — so rounds pause this long and resume, rather than handing checkpoints back to SQLite (inside
 * commits, on the event loop) for the rest of the process's life after one full disk.
 */
const SQLITE_FULL = 13;
export const DISK_FULL_PAUSE_MS = 5_000;

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
  /** While the disk is full: no round before this (performance.now()); rounds run again once it has passed. */
  #pausedUntil = 0;
  /** The disk-full stretch was reported; cleared by a round that finished whole. */
  #diskFullReported = false;

  constructor(options: WalCheckpointerOptions) {
    this.#options = options;
    this.#pin = new DatabaseSync(options.file);
    this.#copier = new DatabaseSync(options.file);
    this.#copier.exec('PRAGMA synchronous = OFF');
    // The copier starts the WAL over (step 6): the writer that does is the one that cuts an overgrown WAL back.
    this.#copier.exec(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    this.#timer = setInterval(() => void this.checkpoint(), options.intervalMs ?? CHECKPOINT_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Something was committed since the last checkpoint. */
  markDirty(): void {
    this.#dirty = true;
  }

  /** Checkpoints now if anything was committed since the last time; resolves when done (or failed and stopped). */
  checkpoint(): Promise<void> {
    if (this.#stopped || this.#running || !this.#dirty || performance.now() < this.#pausedUntil) return this.#running ?? Promise.resolve();
    this.#dirty = false;
    this.#running = this.#round().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #round(): Promise<void> {
    // The hold of the gateway's writes: a quiet round's, for its copy (limited), then step 6's, for the restart.
    let hold: { release: () => void } | undefined;
    const holdWrites = () => {
      if (hold) return;
      const release = this.#options.holdWrites();
      hold = {
        release: () => {
          hold = undefined;
          release();
        },
      };
    };
    let holdLimit: NodeJS.Timeout | undefined;
    try {
      const files = await this.#openFiles();
      if (this.#stopped) return;
      if (this.#quiet) {
        holdWrites();
        holdLimit = setTimeout(() => hold?.release(), this.#options.quietHoldLimitMs ?? QUIET_HOLD_LIMIT_MS);
        holdLimit.unref();
      }
      this.#pinWal();
      let keepPin = false;
      let copiedAll = false;
      let commitsAtCopy = 0;
      try {
        await this.#sync(files.wal);
        if (this.#stopped) return;
        const result = this.#copier.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number; checkpointed: number };
        commitsAtCopy = this.#options.commits();
        await this.#sync(files.db);
        // Frames left behind (written during this round, or held by another reader) need another round even if
        // nothing else is committed; a WAL this long needs a quiet one to start over. A checkpoint that found
        // another process's checkpoint running copied nothing (-1, -1): it is retried too.
        if (result.log < 0 || result.checkpointed < result.log) this.#dirty = true;
        copiedAll = result.log > 0 && result.checkpointed === result.log;
        this.#quiet = result.log >= (this.#options.quietRoundFrames ?? QUIET_ROUND_FRAMES) && !this.#quiet;
        if (copiedAll) {
          // Steps 6 and 7 wait for the restart's sync however long it takes (see above): no limit from here. The
          // hold is taken while the pin still holds the WAL: a batch of ours opened since the copy is committed
          // now, behind the pin, so it appends instead of starting the WAL over itself (with its fsync).
          clearTimeout(holdLimit);
          holdWrites();
        }
      } catch (error) {
        keepPin = error instanceof SyncFailedError;
        throw error;
      } finally {
        if (!keepPin && this.#pin.isOpen && this.#pin.isTransaction) this.#pin.exec('COMMIT');
      }
      // A write of ours committed after the copy: not everything is copied, and the next round tries again.
      if (!copiedAll || this.#stopped || this.#options.commits() !== commitsAtCopy) {
        this.#diskFullReported = false;
        return;
      }
      this.#startWalOver();
      this.#quiet = false;
      try {
        await this.#sync(files.wal);
      } catch (error) {
        // The new header may never reach the disk: no writer may start the WAL over again (the pin, kept for good).
        if (this.#pin.isOpen) this.#pinWal();
        throw error;
      }
      // A round done whole: a full disk met later is a new stretch, reported again.
      this.#diskFullReported = false;
    } catch (error) {
      if (this.#stopped) return;
      const code = ((error as { errcode?: number }).errcode ?? 0) & 0xff;
      if (TRANSIENT_CODES.has(code)) {
        this.#dirty = true;
        return;
      }
      if (code === SQLITE_FULL) {
        if (!this.#diskFullReported) this.#options.onDiskFull?.(error);
        this.#diskFullReported = true;
        this.#pausedUntil = performance.now() + (this.#options.diskFullPauseMs ?? DISK_FULL_PAUSE_MS);
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
      hold?.release();
    }
  }

  /** Step 1: a read transaction on `pin`, whose snapshot no checkpoint copies past and no writer starts over. */
  #pinWal(): void {
    this.#pin.exec('BEGIN');
    try {
      this.#pin.prepare('SELECT count(*) FROM sqlite_schema').get();
    } catch (error) {
      // A read that could not start (another process busy with the file) leaves no transaction for the next round.
      if (this.#pin.isTransaction) this.#pin.exec('ROLLBACK');
      throw error;
    }
  }

  /**
   * Step 6: a write by `copier` that changes nothing (`application_id` set to its own value) but is a frame, so SQLite
   * starts the WAL over for it — without an fsync, `copier` being `synchronous = OFF`. Another process's reader
   * on the WAL makes SQLite append the frame instead, which is harmless: the next round copies it. Another
   * process's write lock makes it fail at once with SQLITE_BUSY (no busy timeout here), a transient failure.
   */
  #startWalOver(): void {
    const { application_id: id } = this.#copier.prepare('PRAGMA application_id').get() as { application_id: number };
    this.#copier.exec('BEGIN IMMEDIATE');
    try {
      this.#copier.exec(`PRAGMA application_id = ${Math.trunc(Number(id))}`);
      this.#copier.exec('COMMIT');
    } catch (error) {
      if (this.#copier.isTransaction) this.#copier.exec('ROLLBACK');
      throw error;
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
