/**
 * What the MCP gateway reports (src/observability/metrics.ts implements it): refusals by rate limit, SSE streams
 * open through the gateway, and audit records lost to a long store outage. Request counts and latencies come from
 * the server-wide request hook, not from here.
 */
export interface ProxyMetrics {
  rateLimitRejected(limit: 'user' | 'client'): void;
  streamOpened(input: { route: string; transport: 'streamable-http' | 'sse' }): void;
  streamClosed(input: { route: string; transport: 'streamable-http' | 'sse' }): void;
  auditRecordsDropped(count: number): void;
}
