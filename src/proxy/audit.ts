import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from 'pino';
import type { Random } from '../runtime/random.ts';
import type { Store, StoreWrite } from '../store/store.ts';
import { createAuditStoreWriter } from './audit-store-writer.ts';
import { auditRecord, type AuditRecord } from '../records/audit.ts';
import { recordWrite } from '../store/record-access.ts';
export { AUDIT_NAMESPACE, AUDIT_OUTCOMES, type AuditOutcome, type AuditRecord } from '../records/audit.ts';



export interface AuditLog {
  /** Queues the record; it reaches the sink and the store with the next batch (at most `flushIntervalMs` later). */
  record(entry: AuditRecord): void;
  /** Writes everything queued now. */
  flush(): Promise<void>;
  /** Flushes what is queued, then stops the timer and closes the file; records arriving later are written at once. */
  close(): Promise<void>;
}

export interface AuditLogOptions {
  store: Store;
  random: Random;
  logger: Logger;
  /** `store`, `stdout`, or a file path. */
  output: string;
  retentionDays: number;
  /** Tests and embedders can pass their own sink for the JSON lines. */
  sink?: { write(line: string): unknown; end?(callback: () => void): unknown };
  /** How long a record may wait in the queue (default 100 ms). */
  flushIntervalMs?: number;
  /** A queue this long is written at once, whatever the interval (default 512). */
  maxBatch?: number;
  /** Most records held in memory while the store is down (default 100 000); past it they are dropped and counted. */
  maxBuffered?: number;
  /** Called with the number of records dropped (`gatehouse_audit_records_dropped_total`). */
  onDropped?: (count: number) => void;
}

export function createAuditLog(options: AuditLogOptions): AuditLog {
  const { store, random, logger, output, retentionDays, flushIntervalMs = 100, maxBatch = 512, maxBuffered, onDropped } = options;
  const storeWriter = createAuditStoreWriter({ store, logger, maxBuffered, onDropped });
  let sink = options.sink;
  let file: WriteStream | undefined;
  if (!sink && output === 'stdout') sink = process.stdout;
  else if (!sink && output !== 'store') {
    sink = file = createWriteStream(output, { flags: 'a', mode: 0o600 });
    // A full disk or a removed directory must not take the gateway down: the store still has every record.
    file.on('error', (error) => logger.error({ err: error }, 'audit file cannot be written'));
  }
  const ttlSeconds = retentionDays * 24 * 3600;
  // Keys sort by time (zero-padded ms) so `list` pages through records in order; an instance id and a sequence
  // number keep records of the same millisecond apart across replicas without drawing randomness per request.
  const instance = random.token(6);
  let sequence = 0;
  // Records are queued and written in batches off the request path: one sink write per batch instead of one per
  // request (stdout and files cost a syscall per write), and the store writes run outside any request's handling.
  let queue: AuditRecord[] = [];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  function storeWrite(entry: AuditRecord): StoreWrite {
    sequence = (sequence + 1) % 1_000_000_000;
    const key = `${String(entry.time).padStart(15, '0')}-${instance}-${String(sequence).padStart(9, '0')}`;
    // Indexed by what the admin CLI filters on; each index is an extra write per record.
    const indexes: { user?: string; tool?: string } = {};
    if (entry.user) indexes.user = entry.user;
    if (entry.tool) indexes.tool = entry.tool;
    return recordWrite(auditRecord, key, entry, { ttlSeconds, indexes });
  }

  function flush(): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = queue;
    queue = [];
    if (batch.length > 0) {
      if (sink) {
        let lines = '';
        for (const entry of batch) lines += `${JSON.stringify(entry)}\n`;
        sink.write(lines);
      }
      // A store failure is never surfaced to a client (the request has long been answered): the writer buffers
      // the batch and retries it until the store is back.
      storeWriter.add(batch.map(storeWrite));
    }
    return storeWriter.drain();
  }

  return {
    record(entry) {
      queue.push(entry);
      if (closed || queue.length >= maxBatch) void flush();
      // unref: a pending batch must not keep a stopping process alive; close() flushes it.
      else timer ??= setTimeout(() => void flush(), flushIntervalMs).unref();
    },
    flush,
    async close() {
      closed = true;
      await flush();
      await storeWriter.close();
      if (!file) return;
      const ended = file;
      // Later records (a stream that outlived the server's close) still reach the store, not an ended file.
      sink = file = undefined;
      await new Promise<void>((resolve) => ended.end(resolve));
    },
  };
}
