import { upstreamErrorLabel } from '../upstream/error-label.ts';

/** How a request for a downstream token was answered: from the cache, by an exchange, by waiting for another's. */
export type BrokerOutcome = 'cache_hit' | 'exchanged' | 'waited' | 'failed';

/**
 * What the broker reports, in one channel (implemented by src/observability/metrics.ts): each downstream token
 * request by outcome (the cache hit ratio is derived from these), each OBO / token-exchange call at the IdP by
 * outcome, refreshes of users' upstream tokens, and failed IdP calls.
 */
export interface BrokerMetrics {
  downstreamToken(outcome: BrokerOutcome, downstream: string): void;
  downstreamExchange(input: { downstream: string; grant: 'on-behalf-of' | 'token-exchange'; outcome: 'success' | 'interaction_required' | 'error' }): void;
  upstreamRefresh(outcome: 'refreshed' | 'failed'): void;
  upstreamError(input: { operation: 'refresh' | 'exchange'; error: string }): void;
}

/**
 * Awaits one call to the identity provider and, when it fails, counts it under `operation` before passing the error
 * on unchanged. Only the IdP call is wrapped, so a store failure around it is never counted as an upstream error.
 */
export async function countingUpstreamFailure<T>(
  metrics: BrokerMetrics | undefined,
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
