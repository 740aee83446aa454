import pino from 'pino';
import type { GatehouseMetrics } from '../../../src/observability/metrics.ts';
import { upstreamSchema, type UpstreamConfig } from '../../../src/config/schema.ts';


import { systemClock, type Clock } from '../../../src/runtime/clock.ts';
import { cryptoRandom } from '../../../src/runtime/random.ts';
import { createSqliteStore } from '../../../src/store/sqlite-store.ts';
import type { Store } from '../../../src/store/store.ts';
import { createUpstreamClient } from '../../../src/upstream/upstream-client.ts';
import type { Keyring } from '../../../src/keys/keyring.ts';
import { testKeyring } from '../../support/keyring.ts';
import { captureLogs, type LogCapture } from '../../support/server-context.ts';

export const silentLogger = pino({ level: 'silent' });

export interface GatewaySide {
  store: Store;
  keyring: Keyring;
  clock: Clock;
  /** Every request the gateway's upstream client made (URL, body), for asserting what was (not) sent. */
  requests: Array<{ url: string; body: string; headers: Headers }>;
  client: ReturnType<typeof createUpstreamClient>;
  /** What the upstream client logged. */
  logs: LogCapture;
}

/** The gateway's upstream client over a private in-memory store and a fresh keyring, with a recording fetch. */
export async function createGatewaySide(options: {
  upstream: Partial<UpstreamConfig> & Pick<UpstreamConfig, 'clientId' | 'clientAuth'>;
  publicUrl?: string;
  clock?: Clock;
  fetch?: typeof globalThis.fetch;
  env?: Record<string, string | undefined>;
  metrics?: Pick<GatehouseMetrics, 'upstreamError'>;
}): Promise<GatewaySide> {
  const clock = options.clock ?? systemClock;
  const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
  const keyring = testKeyring(clock.now());
  const requests: GatewaySide['requests'] = [];
  const inner = options.fetch ?? globalThis.fetch;
  const recordingFetch: typeof globalThis.fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const body = init?.body instanceof URLSearchParams ? init.body.toString() : typeof init?.body === 'string' ? init.body : '';
    requests.push({ url, body, headers: new Headers(init?.headers) });
    return inner(input, init);
  };
  const config = upstreamSchema.parse(options.upstream);
  const { logger, logs } = captureLogs();
  const client = createUpstreamClient({
    config,
    publicUrl: options.publicUrl ?? 'http://127.0.0.1:8080',
    store,
    keyring,
    clock,
    random: cryptoRandom,
    logger,
    fetch: recordingFetch,
    env: options.env ?? {},
    sleep: async () => {},
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  return { store, keyring, clock, requests, client, logs };
}
