import { auditRecord, AUDIT_OUTCOMES, GRANT_END_METHOD, type AuditRecord } from '../records/audit.ts';
import { findRecordPage } from '../store/record-access.ts';

export { AUDIT_OUTCOMES };
import type { Store } from '../store/store.ts';
import { listAll } from './admin-deps.ts';
import { auditKeyPrefix, readAuditSlice, sliceWindow } from './audit-range.ts';
import { recentUseKey } from './grants.ts';

/**
 * Reading the audit records the proxy writes (namespace `audit`, key = zero-padded time + random suffix, indexed by
 * `user` and `tool`). Keys sort by time, so "since T" is a range read starting at T's key prefix, not a scan.
 */
export interface AuditQuery {
  user?: string;
  /** A client id, or several (every client of a name the console was given: anyone may register a name again). */
  client?: string | readonly string[];
  tool?: string;
  outcome?: AuditRecord['outcome'];
  /** Epoch ms; records before it are left out. */
  since?: number;
  /**
   * Epoch ms (exclusive). With `since`, the window is read newest slice first, each slice capped, and the read stops
   * once `limit` records match: a page of the newest calls costs at most SLICES × SLICE_CAP records, however busy
   * the window was (see audit-range.ts).
   */
  until?: number;
  /** Newest records kept (default 50). */
  limit?: number;
}

export interface AuditEntry extends AuditRecord {
  id: string;
}

export interface AuditResult {
  entries: AuditEntry[];
  /** A slice of the window held more records than were read: older matches may be missing. */
  truncated: boolean;
}

const SLICES = 24;
const SLICE_CAP = 2_000;

const newestFirst = (a: { key: string }, b: { key: string }): number => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0);

function matcher(query: AuditQuery): (record: AuditRecord) => boolean {
  const { user, client, tool, outcome, since, until } = query;
  const clients = client === undefined || typeof client === 'string' ? undefined : new Set(client);
  return (value) =>
    (user === undefined || value.user === user) &&
    (client === undefined || (clients === undefined ? value.client === client : value.client !== undefined && clients.has(value.client))) &&
    (tool === undefined || value.tool === tool) &&
    (outcome === undefined || value.outcome === outcome) &&
    (since === undefined || value.time >= since) &&
    (until === undefined || value.time < until);
}

/** Matching records, newest first. */
export async function queryAudit(store: Store, query: AuditQuery): Promise<AuditEntry[]> {
  return (await queryAuditBounded(store, query)).entries;
}

/** Matching records, newest first, and whether a capped read may have left older ones out. */
export async function queryAuditBounded(store: Store, query: AuditQuery): Promise<AuditResult> {
  const { user, tool, since, until, limit = 50 } = query;
  const matches = matcher(query);
  const done = (entries: { key: string; value: AuditRecord }[], truncated = false): AuditResult => ({
    entries: entries.filter(({ value }) => matches(value)).sort(newestFirst).slice(0, limit).map(({ key, value }) => ({ id: key, ...value })),
    truncated,
  });
  if (user !== undefined) return done(...(await readIndexed(store, 'user', user, query, matches)));
  if (tool !== undefined) return done(...(await readIndexed(store, 'tool', tool, query, matches)));
  if (since === undefined || until === undefined) return done(await listAll(store, auditRecord, since === undefined ? {} : { after: auditKeyPrefix(since - 1) }));
  const found: { key: string; value: AuditRecord }[] = [];
  let truncated = false;
  for (const slice of sliceWindow(since, until, SLICES).reverse()) {
    const read = await readAuditSlice(store, slice.from, slice.to, SLICE_CAP);
    found.push(...read.entries.filter(({ value }) => matches(value)));
    truncated ||= read.truncated;
    if (found.length >= limit) break;
  }
  return done(found, truncated);
}

/**
 * A user's or a tool's records in the window, through the index, newest first in pages, until `limit` match or
 * SLICES × SLICE_CAP records were read (then `truncated`): the bound the unfiltered read has. It read every record of
 * the user or tool at once — half a million for a busy agent over a month: seconds of a stalled event loop and
 * gigabytes of memory, for a page of fifty. The pages grow (2,000, then 6,000, 18,000, the rest): a page of the newest
 * calls is one small read, and a filter that matches little takes a few reads, not 24 (on Redis each read lists the
 * index's member keys).
 */
async function readIndexed(
  store: Store,
  index: 'user' | 'tool',
  value: string,
  query: AuditQuery,
  matches: (record: AuditRecord) => boolean,
): Promise<[{ key: string; value: AuditRecord }[], boolean]> {
  const limit = query.limit ?? 50;
  const after = query.since === undefined ? undefined : auditKeyPrefix(query.since);
  let before = query.until === undefined ? undefined : auditKeyPrefix(query.until);
  const found: { key: string; value: AuditRecord }[] = [];
  const budget = SLICES * SLICE_CAP;
  let read = 0;
  for (let size = SLICE_CAP; ; size *= 3) {
    const pageSize = Math.min(size, budget - read);
    const range = { descending: true, limit: pageSize, ...(after === undefined ? {} : { after }), ...(before === undefined ? {} : { before }) };
    const page = await findRecordPage(store, auditRecord, index, value, range);
    read += page.read;
    found.push(...page.entries.filter(({ value: record }) => matches(record)));
    if (page.read < pageSize || page.lastKey === undefined || found.length >= limit) return [found, false];
    if (read >= budget) return [found, true];
    before = page.lastKey;
  }
}

/**
 * Latest audited request per user and client in [since, until): a finer "last used" than token issuance. Read in
 * bounded slices like the listings, so a busy hour cannot make the clients page read the whole log; in a slice over
 * its cap the uses past the cap are not seen, and `lastUsedAt` (merged with token issuance) may then be earlier.
 */
export async function recentUseSince(store: Store, since: number, until: number): Promise<Map<string, number>> {
  const latest = new Map<string, number>();
  for (const slice of sliceWindow(since, until, SLICES)) {
    for (const { value } of (await readAuditSlice(store, slice.from, slice.to, SLICE_CAP)).entries) {
      // A grant's end is no use of the client (an operator revoking a grant made its client "last used" then), nor is
      // a token refused (401: expired, of a revoked grant, without its proof), which names its user and client too.
      if (value.user === undefined || value.client === undefined || value.method === GRANT_END_METHOD || value.status === 401) continue;
      const key = recentUseKey(value.user, value.client);
      if ((latest.get(key) ?? 0) < value.time) latest.set(key, value.time);
    }
  }
  return latest;
}
