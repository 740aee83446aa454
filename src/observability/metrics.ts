import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Clock } from '../runtime/clock.ts';

/**
 * Gatehouse's Prometheus metrics, on a registry of their own (never prom-client's global default registry, so two
 * servers in one process — tests, replicas in a benchmark — never mix their numbers).
 *
 * | metric                                         | type      | labels                      | called from            |
 * |------------------------------------------------|-----------|-----------------------------|------------------------|
 * | gatehouse_http_requests_total                  | counter   | route, method, status       | observeRequest         |
 * | gatehouse_http_request_duration_seconds        | histogram | route, method               | observeRequest         |
 * | gatehouse_tokens_issued_total                  | counter   | kind                        | tokenIssued            |
 * | gatehouse_token_refreshes_total                | counter   | outcome                     | tokenRefreshed         |
 * | gatehouse_downstream_exchanges_total           | counter   | downstream, grant, outcome  | downstreamExchange     |
 * | gatehouse_broker_downstream_tokens_total       | counter   | outcome, downstream         | downstreamToken        |
 * | gatehouse_downstream_cache_lookups_total       | counter   | result (hit, miss)          | downstreamToken        |
 * | gatehouse_downstream_cache_hit_ratio           | gauge     | —                           | (computed at scrape)   |
 * | gatehouse_broker_upstream_refreshes_total      | counter   | outcome                     | upstreamRefresh        |
 * | gatehouse_upstream_errors_total                | counter   | operation, error            | upstreamError          |
 * | gatehouse_rate_limit_rejections_total          | counter   | limit                       | rateLimitRejected      |
 * | gatehouse_open_streams                         | gauge     | route, transport            | streamOpened / closed  |
 * | gatehouse_store_operation_duration_seconds     | histogram | operation, backend          | observeStoreOperation  |
 * | gatehouse_grant_revocations_total              | counter   | source                      | grantRevoked           |
 * | gatehouse_audit_records_dropped_total          | counter   | —                           | auditRecordsDropped    |
 *
 * `route` is always the configured route path or the server's route pattern (`/interaction/:uid`), never the raw
 * URL: a label per distinct URL is unbounded cardinality, and URLs can carry codes and state values.
 *
 * One implementation below every part: each part declares the few methods it calls (src/proxy/proxy-metrics.ts,
 * src/authorization/authorization-metrics.ts, src/broker/broker-metrics.ts, src/upstream/upstream-metrics.ts), and
 * this object satisfies them all, so no part imports another's metrics or this file.
 *
 * Besides the registry, request counts are kept in 10-second buckets for the admin overview chart (requests/s and
 * error rate over the last minutes of this replica), so the console needs no Prometheus server to show a trend.
 */

export type TokenKind = 'access_token' | 'refresh_token' | 'authorization_code' | 'id_token' | 'token_exchange';
export type DownstreamOutcome = 'success' | 'interaction_required' | 'error';

export interface RequestSample {
  /** Start of the bucket, epoch ms. */
  start: number;
  requests: number;
  /** Responses with status ≥ 500 or a denied/failed MCP request counted by the caller as an error (status ≥ 400). */
  errors: number;
}

export interface GatehouseMetrics {
  readonly registry: Registry;
  observeRequest(input: { route: string; method: string; status: number; durationSeconds: number }): void;
  tokenIssued(kind: TokenKind): void;
  tokenRefreshed(outcome: 'rotated' | 'reuse_detected' | 'failed'): void;
  downstreamExchange(input: { downstream: string; grant: 'on-behalf-of' | 'token-exchange'; outcome: DownstreamOutcome }): void;
  /** A downstream token request answered from the cache, by an exchange, by waiting for another's, or failed. */
  downstreamToken(outcome: 'cache_hit' | 'exchanged' | 'waited' | 'failed', downstream: string): void;
  upstreamRefresh(outcome: 'refreshed' | 'failed'): void;
  upstreamError(input: { operation: 'discovery' | 'sign-in' | 'refresh' | 'exchange'; error: string }): void;
  rateLimitRejected(limit: 'user' | 'client' | 'registration'): void;
  streamOpened(input: { route: string; transport: 'streamable-http' | 'sse' }): void;
  streamClosed(input: { route: string; transport: 'streamable-http' | 'sse' }): void;
  observeStoreOperation(input: { operation: string; backend: 'sqlite' | 'redis'; durationSeconds: number }): void;
  grantRevoked(source: 'user' | 'admin' | 'client' | 'replay' | 'refresh_reuse'): void;
  /** Audit records lost because the store stayed down longer than the audit buffer covers. */
  auditRecordsDropped(count: number): void;
  /** Request counts of the last `count` 10-second buckets of this process, oldest first (for the overview chart). */
  recentRequests(count?: number): RequestSample[];
}

export const SAMPLE_BUCKET_MS = 10_000;
/** The broker's downstream token counter (outcome: cache_hit, exchanged, waited, failed; downstream). */
export const BROKER_DOWNSTREAM_METRIC = 'gatehouse_broker_downstream_tokens_total';
const KEPT_BUCKETS = 90;

/** Latency buckets (seconds) from a fast local check to a slow upstream or backend call. */
const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const storeBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

export function createMetrics(options: { clock: Clock }): GatehouseMetrics {
  const { clock } = options;
  const registry = new Registry();
  const registers = [registry];

  const requests = new Counter({ name: 'gatehouse_http_requests_total', help: 'HTTP requests by route, method and status.', labelNames: ['route', 'method', 'status'], registers });
  const requestDuration = new Histogram({ name: 'gatehouse_http_request_duration_seconds', help: 'HTTP request latency until the response headers (streams: until the stream ends).', labelNames: ['route', 'method'], buckets: latencyBuckets, registers });
  const tokens = new Counter({ name: 'gatehouse_tokens_issued_total', help: 'Tokens issued by the authorization server, by kind.', labelNames: ['kind'], registers });
  const refreshes = new Counter({ name: 'gatehouse_token_refreshes_total', help: 'Refresh token grants by outcome (reuse_detected revokes the grant).', labelNames: ['outcome'], registers });
  const exchanges = new Counter({ name: 'gatehouse_downstream_exchanges_total', help: 'On-behalf-of / token exchange calls to the upstream IdP, by outcome.', labelNames: ['downstream', 'grant', 'outcome'], registers });
  const cacheLookups = new Counter({ name: 'gatehouse_downstream_cache_lookups_total', help: 'Downstream token cache lookups, by hit or miss.', labelNames: ['result'], registers });
  let hits = 0;
  let misses = 0;
  new Gauge({
    name: 'gatehouse_downstream_cache_hit_ratio',
    help: 'Share of downstream token lookups answered from the cache since start (0 before the first lookup).',
    registers,
    collect() {
      // Waiting for another caller's exchange is a miss: the token was not in the cache when asked for.
      const lookups = hits + misses;
      this.set(lookups === 0 ? 0 : hits / lookups);
    },
  });
  const brokerTokens = new Counter({ name: BROKER_DOWNSTREAM_METRIC, help: 'Downstream token requests by outcome (cache_hit, exchanged, waited, failed) and downstream API.', labelNames: ['outcome', 'downstream'], registers });
  const upstreamRefreshes = new Counter({ name: 'gatehouse_broker_upstream_refreshes_total', help: "Refreshes of users' upstream tokens by outcome.", labelNames: ['outcome'], registers });
  const upstreamErrors = new Counter({ name: 'gatehouse_upstream_errors_total', help: 'Failed calls to the upstream IdP, by operation and error code.', labelNames: ['operation', 'error'], registers });
  const rateLimits = new Counter({ name: 'gatehouse_rate_limit_rejections_total', help: 'Requests refused with 429, by which limit.', labelNames: ['limit'], registers });
  const openStreams = new Gauge({ name: 'gatehouse_open_streams', help: 'SSE streams currently open through the proxy.', labelNames: ['route', 'transport'], registers });
  const storeDuration = new Histogram({ name: 'gatehouse_store_operation_duration_seconds', help: 'Store operation latency, by operation and backend.', labelNames: ['operation', 'backend'], buckets: storeBuckets, registers });
  const revocations = new Counter({ name: 'gatehouse_grant_revocations_total', help: 'Grants revoked, by who or what revoked them.', labelNames: ['source'], registers });
  const auditDropped = new Counter({ name: 'gatehouse_audit_records_dropped_total', help: 'Audit records not stored because the store was down longer than the audit buffer covers.', registers });

  const buckets = new Map<number, RequestSample>();
  const bucketAt = (now: number): RequestSample => {
    const start = now - (now % SAMPLE_BUCKET_MS);
    let bucket = buckets.get(start);
    if (bucket === undefined) {
      bucket = { start, requests: 0, errors: 0 };
      buckets.set(start, bucket);
      for (const key of buckets.keys()) if (key < start - KEPT_BUCKETS * SAMPLE_BUCKET_MS) buckets.delete(key);
    }
    return bucket;
  };

  return {
    registry,
    observeRequest({ route, method, status, durationSeconds }) {
      requests.inc({ route, method, status: String(status) });
      requestDuration.observe({ route, method }, durationSeconds);
      const bucket = bucketAt(clock.now());
      bucket.requests += 1;
      if (status >= 500) bucket.errors += 1;
    },
    tokenIssued: (kind) => tokens.inc({ kind }),
    tokenRefreshed: (outcome) => refreshes.inc({ outcome }),
    downstreamExchange: ({ downstream, grant, outcome }) => exchanges.inc({ downstream, grant, outcome }),
    downstreamToken(outcome, downstream) {
      brokerTokens.inc({ outcome, downstream });
      if (outcome === 'failed') return;
      const result = outcome === 'cache_hit' ? 'hit' : 'miss';
      cacheLookups.inc({ result });
      if (result === 'hit') hits += 1;
      else misses += 1;
    },
    upstreamRefresh: (outcome) => upstreamRefreshes.inc({ outcome }),
    upstreamError: ({ operation, error }) => upstreamErrors.inc({ operation, error }),
    rateLimitRejected: (limit) => rateLimits.inc({ limit }),
    streamOpened: ({ route, transport }) => openStreams.inc({ route, transport }),
    streamClosed: ({ route, transport }) => openStreams.dec({ route, transport }),
    observeStoreOperation: ({ operation, backend, durationSeconds }) => storeDuration.observe({ operation, backend }, durationSeconds),
    grantRevoked: (source) => revocations.inc({ source }),
    auditRecordsDropped: (count) => auditDropped.inc(count),
    recentRequests(count = 30) {
      const now = clock.now();
      const last = now - (now % SAMPLE_BUCKET_MS);
      const samples: RequestSample[] = [];
      for (let i = count - 1; i >= 0; i--) {
        const start = last - i * SAMPLE_BUCKET_MS;
        samples.push(buckets.get(start) ?? { start, requests: 0, errors: 0 });
      }
      return samples;
    },
  };
}
