import { auditRecord, AUDIT_OUTCOMES, type AuditRecord } from '../records/audit.ts';
import { findRecords } from '../store/record-access.ts';

export { AUDIT_OUTCOMES };
import type { Store } from '../store/store.ts';
import { listAll } from './admin-deps.ts';
import { recentUseKey } from './grants.ts';

/**
 * Reading the audit records the proxy writes (namespace `audit`, key = zero-padded time + random suffix, indexed by
 * `user` and `tool`). Keys sort by time, so "since T" is a range read starting at T's key prefix, not a scan.
 */
export interface AuditQuery {
  user?: string;
  tool?: string;
  outcome?: AuditRecord['outcome'];
  /** Epoch ms; records before it are left out. */
  since?: number;
  /** Newest records kept (default 50). */
  limit?: number;
}

export interface AuditEntry extends AuditRecord {
  id: string;
}

const keyPrefix = (time: number): string => String(Math.max(0, Math.floor(time))).padStart(15, '0');

/** Matching records, newest first. */
export async function queryAudit(store: Store, query: AuditQuery): Promise<AuditEntry[]> {
  const { user, tool, outcome, since, limit = 50 } = query;
  let entries: { key: string; value: AuditRecord }[];
  if (user !== undefined) entries = await findRecords(store, auditRecord, 'user', user);
  else if (tool !== undefined) entries = await findRecords(store, auditRecord, 'tool', tool);
  else entries = await listAll(store, auditRecord, since === undefined ? {} : { after: keyPrefix(since - 1) });
  return entries
    .filter(({ value }) => (user === undefined || value.user === user) && (tool === undefined || value.tool === tool))
    .filter(({ value }) => (outcome === undefined || value.outcome === outcome) && (since === undefined || value.time >= since))
    .sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0))
    .slice(0, limit)
    .map(({ key, value }) => ({ id: key, ...value }));
}

/** Latest audited request per user and client since `since`: a finer "last used" than token issuance. */
export async function recentUseSince(store: Store, since: number): Promise<Map<string, number>> {
  const entries = await listAll(store, auditRecord, { after: keyPrefix(since - 1) });
  const latest = new Map<string, number>();
  for (const { value } of entries) {
    if (value.user === undefined || value.client === undefined) continue;
    const key = recentUseKey(value.user, value.client);
    if ((latest.get(key) ?? 0) < value.time) latest.set(key, value.time);
  }
  return latest;
}
