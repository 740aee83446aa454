import type { GatehouseMetrics } from '../admin/metrics.ts';
import { upstreamErrorLabel } from '../upstream/error-label.ts';

/**
 * The part of the process-wide metrics the broker reports to (besides its own counter, broker-metrics.ts, which the
 * admin overview reads): OBO / token-exchange outcomes, cache hits and misses, and failed IdP calls.
 */
export type BrokerGatehouseMetrics = Pick<GatehouseMetrics, 'downstreamExchange' | 'downstreamCacheLookup' | 'upstreamError'>;

/**
 * Awaits one call to the identity provider and, when it fails, counts it under `operation` before passing the error
 * on unchanged. Only the IdP call is wrapped, so a store failure around it is never counted as an upstream error.
 */
export async function countingUpstreamFailure<T>(
  metrics: BrokerGatehouseMetrics | undefined,
  operation: 'refresh' | 'exchange',
  call: Promise<T>,
): Promise<T> {
  try {
    return await call;
  } catch (error) {
    metrics?.upstreamError({ operation, error: upstreamErrorLabel(error) });
    throw error;
  }
}
