import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { configSchema, type GatehouseConfig } from '../../../src/config/schema.ts';



import type { UpstreamTokenVault } from '../../../src/broker/upstream-session.ts';
import type { DownstreamTokenRequest, UpstreamClient, UpstreamTokens } from '../../../src/upstream/types.ts';
import { testKeyring } from '../../support/keyring.ts';

/** Shared fixtures for the broker tests: config, keyring, a capturing logger, a vault and a scriptable upstream. */

export function brokerConfig(overrides: { timeoutMs?: number; refreshSkewSeconds?: number; downstream?: Array<Record<string, unknown>> } = {}): GatehouseConfig {
  return configSchema.parse({
    upstream: {
      type: 'entra',
      entra: { tenantId: 'contoso' },
      clientId: 'gatehouse-app',
      clientAuth: { method: 'federated', tokenFile: '/var/run/secrets/token' },
      timeoutMs: overrides.timeoutMs ?? 2_000,
    },
    broker: {
      refreshSkewSeconds: overrides.refreshSkewSeconds ?? 120,
      downstream: overrides.downstream ?? [
        { name: 'graph', audience: 'https://graph.microsoft.com', scopes: ['https://graph.microsoft.com/User.Read'] },
        { name: 'other', audience: 'api://other', scopes: ['api://other/read'], grant: 'token-exchange' },
      ],
    },
  });
}

export { testKeyring };

export function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, destination), lines };
}

export function memoryVault(): UpstreamTokenVault & { records: Map<string, UpstreamTokens> } {
  const records = new Map<string, UpstreamTokens>();
  return {
    records,
    load: async (subject) => structuredClone(records.get(subject)),
    save: async (subject, tokens) => {
      records.set(subject, structuredClone(tokens));
    },
    delete: async (subject) => {
      records.delete(subject);
    },
  };
}

type Step<I, O> = (input: I) => Promise<O>;

/** An UpstreamClient whose refresh and exchange behaviour each test scripts, counting calls. */
export function scriptedUpstream(script: {
  refresh?: Step<string, UpstreamTokens>;
  exchange?: Step<DownstreamTokenRequest, UpstreamTokens>;
}): UpstreamClient & { calls: { refresh: string[]; exchange: DownstreamTokenRequest[] } } {
  const calls = { refresh: [] as string[], exchange: [] as DownstreamTokenRequest[] };
  const unexpected = async (): Promise<never> => {
    throw new Error('not used by the broker');
  };
  return {
    calls,
    beginSignIn: unexpected,
    completeSignIn: unexpected,
    checkHealth: async () => undefined,
    async refresh(refreshToken) {
      calls.refresh.push(refreshToken);
      if (!script.refresh) throw new Error('refresh not scripted');
      return script.refresh(refreshToken);
    },
    async exchangeForDownstream(request) {
      calls.exchange.push(request);
      if (!script.exchange) throw new Error('exchange not scripted');
      return script.exchange(request);
    },
  };
}

/** An OAuth error as openid-client reports it (ResponseBodyError: `error`, `status`, body in `cause`). */
export function oauthError(status: number, body: Record<string, unknown>): Error {
  return Object.assign(new Error(String(body.error)), {
    error: body.error,
    error_description: body.error_description,
    status,
    cause: body,
  });
}
