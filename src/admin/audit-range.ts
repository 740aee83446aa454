import { auditRecord, type AuditRecord } from '../records/audit.ts';
import { listRecords } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';

/**
 * Bounded reads of the audit log by time. Audit keys start with the request's zero-padded epoch ms (src/proxy/audit.ts),
 * so a time range is a range read from the key of its start; every replica writes to the same namespace, so a range
 * read sees the whole fleet. Each read takes at most `cap` records: a busy hour cannot make an admin page read the
 * whole log, and a slice that hit its cap says so (`truncated`) instead of showing a silently low number.
 */
export interface AuditSlice {
  /** Epoch ms, inclusive. */
  from: number;
  /** Epoch ms, exclusive. */
  to: number;
  entries: { key: string; value: AuditRecord }[];
  /** More records fell in [from, to) than the cap let through. */
  truncated: boolean;
}

/** The key prefix of a time: keys of records at or after it sort strictly after it, earlier ones before it. */
export const auditKeyPrefix = (time: number): string => String(Math.max(0, Math.floor(time))).padStart(15, '0');

/** Records of [from, to), oldest first, at most `cap`. */
export async function readAuditSlice(store: Store, from: number, to: number, cap: number): Promise<AuditSlice> {
  // One more than the cap: a record past it that still falls inside the slice proves the slice was cut.
  const page = await listRecords(store, auditRecord, { after: auditKeyPrefix(from), limit: cap + 1, invalid: 'skip' });
  const inside = page.filter(({ value }) => value.time >= from && value.time < to);
  return { from, to, entries: inside.slice(0, cap), truncated: inside.length > cap };
}

/** [from, to) cut into `count` equal slices, oldest first. */
export function sliceWindow(from: number, to: number, count: number): { from: number; to: number }[] {
  const size = (to - from) / count;
  return Array.from({ length: count }, (_, index) => ({ from: Math.round(from + index * size), to: index === count - 1 ? to : Math.round(from + (index + 1) * size) }));
}
