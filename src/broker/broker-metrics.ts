import { Counter, type Registry } from 'prom-client';
import type { TokenBrokerMetrics } from './token-broker.ts';

/**
 * The broker's Prometheus counters. A high `waited` share means many concurrent calls for a user (single flight doing
 * its job); `failed` with a high rate is an IdP outage or a consent problem (see the `reason` in the log).
 */
export function createBrokerMetrics(registry: Registry): TokenBrokerMetrics {
  const downstream = new Counter({
    name: 'gatehouse_broker_downstream_tokens_total',
    help: 'Downstream token requests by outcome (cache_hit, exchanged, waited, failed) and downstream API.',
    labelNames: ['outcome', 'downstream'] as const,
    registers: [registry],
  });
  const refresh = new Counter({
    name: 'gatehouse_broker_upstream_refreshes_total',
    help: 'Refreshes of users\' upstream tokens by outcome.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  return {
    downstreamToken: (outcome, name) => downstream.inc({ outcome, downstream: name }),
    upstreamRefresh: (outcome) => refresh.inc({ outcome }),
  };
}
