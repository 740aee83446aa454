import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from 'pino';
import type { Random } from '../runtime/random.ts';
import type { Store } from '../store/store.ts';

/**
 * One record per MCP request, for the admin CLI (store namespace `audit`, indexed by user and tool) and for a SIEM
 * (JSON lines on stdout or a file). Records never contain tool arguments, results or tokens: an audit trail that
 * stores secrets becomes the thing an attacker wants to read.
 */
export interface AuditRecord {
  /** Epoch ms when the request arrived. */
  time: number;
  user?: string;
  client?: string;
  route: string;
  method?: string;
  tool?: string;
  outcome: 'allowed' | 'denied' | 'error';
  status: number;
  durationMs: number;
  bytesIn: number;
  bytesOut: number;
}

export const AUDIT_NAMESPACE = 'audit';

export interface AuditLog {
  record(entry: AuditRecord): void;
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
}

export function createAuditLog(options: AuditLogOptions): AuditLog {
  const { store, random, logger, output, retentionDays } = options;
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

  return {
    record(entry) {
      sink?.write(`${JSON.stringify(entry)}\n`);
      sequence = (sequence + 1) % 1_000_000_000;
      const key = `${String(entry.time).padStart(15, '0')}-${instance}-${String(sequence).padStart(9, '0')}`;
      // Indexed by what the admin CLI filters on; each index is an extra write per request.
      const indexes: Record<string, string> = {};
      if (entry.user) indexes.user = entry.user;
      if (entry.tool) indexes.tool = entry.tool;
      // Written after the response so audit never adds latency; a store failure is logged, not surfaced to the client.
      store.set(AUDIT_NAMESPACE, key, entry, { ttlSeconds, indexes }).catch((error: unknown) => {
        logger.warn({ err: error }, 'audit record could not be stored');
      });
    },
    close: () => new Promise<void>((resolve) => (file ? file.end(resolve) : resolve())),
  };
}
