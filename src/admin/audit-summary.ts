import { GRANT_END_METHOD, NO_TOKEN_REASON, type AuditRecord } from '../records/audit.ts';
import type { Store } from '../store/store.ts';
import { readAuditSlice, sliceWindow } from './audit-range.ts';

/**
 * Fleet-wide traffic for the console's overview, aggregated from the audit records every replica writes to the
 * shared store (not one replica's in-memory metrics): requests, denials by status and reason, errors, per route, and
 * the busiest tools and users. Each time bucket is one bounded range read (audit-range.ts); a bucket that held more
 * records than the cap is marked, and every figure built from it is then a lower bound, said so on the page.
 */
export const OVERVIEW_WINDOWS = {
  '1h': { ms: 3_600_000, buckets: 12, label: 'last hour', bucketLabel: '5 min' },
  '24h': { ms: 86_400_000, buckets: 24, label: 'last 24 hours', bucketLabel: 'hour' },
  '7d': { ms: 7 * 86_400_000, buckets: 28, label: 'last 7 days', bucketLabel: '6 hours' },
} as const;
export type OverviewWindow = keyof typeof OVERVIEW_WINDOWS;

/** Most records read per bucket: 28 buckets × 2 000 bounds a 7-day overview at 56 000 small records. */
export const BUCKET_CAP = 2_000;

export interface TrafficBucket {
  from: number;
  to: number;
  requests: number;
  denied: number;
  errors: number;
  truncated: boolean;
}

export interface Denial {
  status: number;
  reason: string;
  count: number;
}

export interface RouteTraffic {
  requests: number;
  errors: number;
  /** Epoch ms of the latest request the backend answered without a gateway error. */
  lastOkAt?: number;
}

export interface AuditSummary {
  buckets: TrafficBucket[];
  requests: number;
  denied: number;
  errors: number;
  denials: Denial[];
  routes: Map<string, RouteTraffic>;
  topTools: { name: string; count: number }[];
  topUsers: { subject: string; count: number }[];
  /** Some bucket hit its cap: totals are lower bounds. */
  truncated: boolean;
}

const STATUS_REASONS: Record<number, string> = { 0: 'no answer sent', 401: 'no valid token', 403: 'refused', 404: 'unknown session', 429: 'rate limited' };

/**
 * Why a request was refused, as a short category: the gateway records a policy's or pinning's reason
 * (`policy: …`, `tool pinning: …`) or the refusal's error code (`invalid_token`, `insufficient_scope`,
 * `forbidden_origin`, …); older records without one are named by their status.
 */
export function denialReason(record: Pick<AuditRecord, 'reason' | 'status'>): string {
  if (record.reason !== undefined && record.reason !== '') return record.reason.split(':')[0]?.trim() || record.reason;
  return STATUS_REASONS[record.status] ?? `HTTP ${record.status}`;
}

function top<K>(counts: Map<K, number>, limit: number): [K, number][] {
  return [...counts].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0]))).slice(0, limit);
}

const bump = <K>(counts: Map<K, number>, key: K): void => void counts.set(key, (counts.get(key) ?? 0) + 1);

export async function summarizeAudit(store: Store, window: OverviewWindow, now: number, options: { cap?: number; top?: number } = {}): Promise<AuditSummary> {
  const { ms, buckets: count } = OVERVIEW_WINDOWS[window];
  const cap = options.cap ?? BUCKET_CAP;
  const denials = new Map<string, Denial>();
  const routes = new Map<string, RouteTraffic>();
  const tools = new Map<string, number>();
  const users = new Map<string, number>();
  const buckets: TrafficBucket[] = [];
  for (const slice of sliceWindow(now - ms, now + 1, count)) {
    const read = await readAuditSlice(store, slice.from, slice.to, cap);
    const bucket: TrafficBucket = { from: slice.from, to: slice.to, requests: 0, denied: 0, errors: 0, truncated: read.truncated };
    for (const { value } of read.entries) {
      // A grant's end is in the trail, not in the traffic: no request of its route or user.
      if (value.method === GRANT_END_METHOD) continue;
      // Another call of a batch: a call of its tool, not another request (its request is counted once, on its record).
      if (value.batchCall === true) {
        if (value.tool !== undefined) bump(tools, value.tool);
        continue;
      }
      bucket.requests += 1;
      const route = routes.get(value.route) ?? { requests: 0, errors: 0 };
      route.requests += 1;
      if (value.outcome === 'denied') {
        // A request without a token is a client's discovery step (it learns where to sign in): listed, not counted
        // as a denial.
        if (value.reason !== NO_TOKEN_REASON) bucket.denied += 1;
        const reason = denialReason(value);
        const key = `${value.status} ${reason}`;
        const denial = denials.get(key) ?? { status: value.status, reason, count: 0 };
        denial.count += 1;
        denials.set(key, denial);
      } else if (value.outcome === 'error') {
        bucket.errors += 1;
        route.errors += 1;
      } else if (value.status > 0 && value.status < 500) {
        route.lastOkAt = Math.max(route.lastOkAt ?? 0, value.time);
      }
      routes.set(value.route, route);
      if (value.tool !== undefined) bump(tools, value.tool);
      // A refused token (401) names whose it was, for the trail: not that user's traffic.
      if (value.user !== undefined && value.status !== 401) bump(users, value.user);
    }
    buckets.push(bucket);
  }
  const sum = (field: 'requests' | 'denied' | 'errors') => buckets.reduce((total, bucket) => total + bucket[field], 0);
  const limit = options.top ?? 5;
  return {
    buckets,
    requests: sum('requests'),
    denied: sum('denied'),
    errors: sum('errors'),
    denials: [...denials.values()].sort((a, b) => b.count - a.count || a.status - b.status),
    routes,
    topTools: top(tools, limit).map(([name, n]) => ({ name, count: n })),
    topUsers: top(users, limit).map(([subject, n]) => ({ subject, count: n })),
    truncated: buckets.some((bucket) => bucket.truncated),
  };
}
