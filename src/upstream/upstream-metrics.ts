/** What the upstream client reports (src/observability/metrics.ts implements it): failed calls to the IdP. */
export interface UpstreamMetrics {
  upstreamError(input: { operation: 'discovery' | 'sign-in' | 'refresh' | 'exchange'; error: string }): void;
}
