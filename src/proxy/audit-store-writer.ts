import type { Logger } from 'pino';
import { StoreUnavailableError, type Store, type StoreWrite } from '../store/store.ts';

/**
 * Writes audit records to the store in batches (`setMany`: one transaction or MULTI per batch), and rides out a store
 * outage: records wait in a bounded in-memory buffer and are retried with exponential backoff, so an outage the
 * buffer covers loses nothing. Past the bound, new records are dropped, counted (`onDropped`, for
 * `gatehouse_audit_records_dropped_total`) and logged at most once per `lossLogIntervalMs`, so a long outage
 * neither exhausts memory nor floods the log.
 */
export interface AuditStoreWriterOptions {
  store: Store;
  logger: Logger;
  /** Most records held while the store is down (default 100 000, roughly 30 MB). */
  maxBuffered?: number;
  /** Records per `setMany` (default 500). */
  batchSize?: number;
  /** First retry delay after a failed write (default 200 ms); doubles up to `maxRetryMs` (default 5 s). */
  retryMs?: number;
  maxRetryMs?: number;
  /** Shortest time between two "records dropped" log lines (default 60 s). */
  lossLogIntervalMs?: number;
  onDropped?: (count: number) => void;
}

export interface AuditStoreWriter {
  /** Buffers the records and starts writing them (unless a retry is already scheduled). */
  add(writes: readonly StoreWrite[]): void;
  /** Writes everything buffered; resolves when the buffer is empty or the store refused (a retry is then scheduled). */
  drain(): Promise<void>;
  /** One last attempt; whatever is still buffered then is counted as dropped. Later records are written at once. */
  close(): Promise<void>;
}

export function createAuditStoreWriter(options: AuditStoreWriterOptions): AuditStoreWriter {
  const { store, logger, maxBuffered = 100_000, batchSize = 500, retryMs = 200, maxRetryMs = 5_000, lossLogIntervalMs = 60_000 } = options;
  let buffer: StoreWrite[] = [];
  let writing: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let delay = retryMs;
  let closed = false;
  // Records lost since the last report, by why: the report names the cause it is about, not always an outage.
  let unreportedLoss = new Map<string, number>();
  let lossTimer: NodeJS.Timeout | undefined;

  function logLoss(): void {
    lossTimer = undefined;
    if (unreportedLoss.size === 0) return;
    for (const [why, dropped] of unreportedLoss) logger.error({ dropped, buffered: buffer.length }, `audit records dropped: ${why}`);
    unreportedLoss = new Map();
    lossTimer = setTimeout(logLoss, lossLogIntervalMs).unref();
  }

  function drop(count: number, why: string): void {
    if (count <= 0) return;
    options.onDropped?.(count);
    unreportedLoss.set(why, (unreportedLoss.get(why) ?? 0) + count);
    if (lossTimer === undefined) logLoss();
  }

  function scheduleRetry(error: StoreUnavailableError): void {
    if (closed) {
      // After close nothing retries: a record that arrived late and found the store down is lost, and counted.
      const left = buffer.length;
      buffer = [];
      return drop(left, 'the log closed while the store was unavailable');
    }
    if (retryTimer !== undefined) return;
    if (delay === retryMs) logger.warn({ reason: error.detail, buffered: buffer.length }, 'audit records buffered while the store is unavailable');
    // unref: a pending retry must not keep a stopping process alive; close() makes the last attempt.
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void drain();
    }, delay).unref();
    delay = Math.min(delay * 2, maxRetryMs);
  }

  async function writeAll(): Promise<void> {
    while (buffer.length > 0) {
      const batch = buffer.slice(0, batchSize);
      try {
        await store.setMany(batch);
      } catch (error) {
        if (error instanceof StoreUnavailableError) return scheduleRetry(error);
        // Not an outage (a record the store refuses): retrying cannot help, and must not block the records behind it.
        logger.error({ reason: error instanceof Error ? error.message.slice(0, 200) : typeof error }, 'audit records could not be stored');
        buffer.splice(0, batch.length);
        drop(batch.length, 'the store refused them');
        continue;
      }
      buffer.splice(0, batch.length);
      if (delay !== retryMs) logger.info('audit records written again after the store came back');
      delay = retryMs;
    }
  }

  function drain(): Promise<void> {
    writing ??= writeAll().finally(() => {
      writing = undefined;
    });
    return writing;
  }

  return {
    add(writes) {
      const room = Math.max(maxBuffered - buffer.length, 0);
      drop(writes.length - room, 'the store was unavailable longer than the audit buffer covers');
      buffer.push(...writes.slice(0, room));
      if (retryTimer === undefined) void drain();
    },
    drain,
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      retryTimer = undefined;
      await drain();
    },
  };
}
