import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, beforeEach, describe, it } from 'node:test';
import { createMetrics, type GatehouseMetrics } from '../../src/observability/metrics.ts';
import { createTokenBroker } from '../../src/broker/token-broker.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { upstreamTokenError } from '../../src/upstream/errors.ts';
import { brokerConfig, capturingLogger, memoryVault, oauthError, scriptedUpstream, testKeyring } from './support/fixtures.ts';

const subject = 'contoso-tenant/user-oid-1';
const hour = 3_600_000;

/** Sum of a metric's series whose labels include `labels`. */
async function sample(metrics: GatehouseMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((entry) => entry.name === name);
  return (metric?.values ?? [])
    .filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted))
    .reduce((sum, value) => sum + value.value, 0);
}

describe('token broker reporting to the process metrics', () => {
  let clock: ManualClock;
  let store: Store;
  let metrics: GatehouseMetrics;
  const stores: Store[] = [];

  beforeEach(async () => {
    clock = new ManualClock();
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    stores.push(store);
    metrics = createMetrics({ clock });
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });

  function broker(upstream: ReturnType<typeof scriptedUpstream>, vault: ReturnType<typeof memoryVault>) {
    return createTokenBroker({
      config: brokerConfig(),
      store,
      keyring: testKeyring(clock.now()),
      clock,
      logger: capturingLogger().logger,
      upstream,
      vault,
      sleep: async () => undefined,
      metrics,
    });
  }

  it('counts a miss with its successful exchange, then a hit, and keeps the broker\'s own counter and the hit ratio true', async () => {
    const vault = memoryVault();
    await vault.save(subject, { accessToken: 'upstream-at', refreshToken: 'upstream-rt', expiresAt: clock.now() + 10 * hour });
    const upstream = scriptedUpstream({ exchange: async () => ({ accessToken: `downstream-${randomUUID()}`, expiresAt: clock.now() + hour }) });
    const tokens = broker(upstream, vault);
    await tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    await tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.equal(upstream.calls.exchange.length, 1);

    assert.equal(await sample(metrics, 'gatehouse_downstream_cache_lookups_total', { result: 'miss' }), 1);
    assert.equal(await sample(metrics, 'gatehouse_downstream_cache_lookups_total', { result: 'hit' }), 1);
    assert.equal(await sample(metrics, 'gatehouse_downstream_exchanges_total', { downstream: 'graph', grant: 'on-behalf-of', outcome: 'success' }), 1);
    assert.equal(await sample(metrics, 'gatehouse_broker_downstream_tokens_total', { outcome: 'exchanged' }), 1, 'the broker\'s own counter');
    assert.equal(await sample(metrics, 'gatehouse_broker_downstream_tokens_total', { outcome: 'cache_hit' }), 1);
    // The gauge adds the lookup counter and the broker's counter; both agree, so nothing is skewed by counting twice.
    const hits = await sample(metrics, 'gatehouse_downstream_cache_lookups_total', { result: 'hit' });
    const lookups = await sample(metrics, 'gatehouse_downstream_cache_lookups_total');
    assert.equal(await sample(metrics, 'gatehouse_downstream_cache_hit_ratio'), hits / lookups);
    assert.equal(await sample(metrics, 'gatehouse_upstream_errors_total'), 0);
  });

  it('counts a consent failure as interaction_required and as an exchange error of the IdP', async () => {
    const vault = memoryVault();
    await vault.save(subject, { accessToken: 'upstream-at', refreshToken: 'upstream-rt', expiresAt: clock.now() + 10 * hour });
    const upstream = scriptedUpstream({
      exchange: async (request) => {
        throw upstreamTokenError(oauthError(400, { error: 'invalid_grant', error_description: 'AADSTS65001: consent' }), request.grant);
      },
    });
    await assert.rejects(broker(upstream, vault).getDownstreamToken({ user: { subject }, downstream: 'other' }), { code: 'interaction_required' });
    assert.equal(await sample(metrics, 'gatehouse_downstream_exchanges_total', { downstream: 'other', grant: 'token-exchange', outcome: 'interaction_required' }), 1);
    assert.equal(await sample(metrics, 'gatehouse_upstream_errors_total', { operation: 'exchange', error: 'invalid_grant' }), 1);
    assert.equal(await sample(metrics, 'gatehouse_broker_downstream_tokens_total', { outcome: 'failed' }), 1);
  });

  it('counts an IdP that does not answer the exchange as error / unreachable', async () => {
    const vault = memoryVault();
    await vault.save(subject, { accessToken: 'upstream-at', refreshToken: 'upstream-rt', expiresAt: clock.now() + 10 * hour });
    const upstream = scriptedUpstream({
      exchange: async (request) => {
        throw upstreamTokenError(new TypeError('fetch failed', { cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) }), request.grant);
      },
    });
    await assert.rejects(broker(upstream, vault).getDownstreamToken({ user: { subject }, downstream: 'graph' }), { code: 'temporarily_unavailable' });
    assert.equal(await sample(metrics, 'gatehouse_downstream_exchanges_total', { outcome: 'error' }), 1);
    assert.equal(await sample(metrics, 'gatehouse_upstream_errors_total', { operation: 'exchange', error: 'unreachable' }), 1);
  });

  it('counts a refused upstream refresh under refresh, and no exchange that never happened', async () => {
    const vault = memoryVault();
    await vault.save(subject, { accessToken: 'stale', refreshToken: 'revoked-rt', expiresAt: clock.now() - 1 });
    const upstream = scriptedUpstream({
      refresh: async () => {
        throw upstreamTokenError(oauthError(400, { error: 'invalid_grant', error_description: 'AADSTS70008: expired' }), 'refresh');
      },
      exchange: async () => ({ accessToken: 'never', expiresAt: clock.now() + hour }),
    });
    await assert.rejects(broker(upstream, vault).getDownstreamToken({ user: { subject }, downstream: 'graph' }), { code: 'interaction_required' });
    assert.equal(await sample(metrics, 'gatehouse_upstream_errors_total', { operation: 'refresh', error: 'invalid_grant' }), 1);
    assert.equal(await sample(metrics, 'gatehouse_upstream_errors_total', { operation: 'exchange' }), 0);
    assert.equal(await sample(metrics, 'gatehouse_downstream_exchanges_total'), 0);
    assert.equal(upstream.calls.exchange.length, 0);
  });
});
