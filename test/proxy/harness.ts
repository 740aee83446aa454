import type { FastifyInstance } from 'fastify';
import { SignJWT } from 'jose';
import type { GatehouseMetrics } from '../../src/observability/metrics.ts';
import type { TokenBroker } from '../../src/broker/types.ts';
import { configSchema, type GatehouseConfig } from '../../src/config/schema.ts';


import type { Keyring } from '../../src/keys/keyring.ts';
import type { Tracing } from '../../src/observability/tracing.ts';
import { createGatewayPlugin } from '../../src/proxy/gateway-plugin.ts';
import { createRevokedGrantsCache, type RevokedGrantsCache } from '../../src/grants/revoked-grants.ts';
import { systemClock, type Clock } from '../../src/runtime/clock.ts';
import type { GatehouseContext } from '../../src/context/gatehouse-context.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { buildServer } from '../../src/server/app.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import { captureLogs, testContext, type LogCapture } from '../support/server-context.ts';
import { freePort } from '../support/ports.ts';
import { testKeyring } from '../support/keyring.ts';

/**
 * A real gateway for tests: the server skeleton with the gateway plugin, a real store (in-memory SQLite unless one
 * is passed), a real keyring, listening on 127.0.0.1:0. Access tokens are minted in the shared RFC 9068 format with
 * the same keyring, exactly as the authorization server issues them.
 */
export interface TestGateway {
  app: FastifyInstance;
  /** Where this instance listens (equal to `ctx.publicUrl` unless a shared public URL was given). */
  url: string;
  ctx: GatehouseContext;
  store: Store;
  keyring: Keyring;
  revokedGrants: RevokedGrantsCache;
  logs: LogCapture;
  /** The audit JSON lines, one record each (the audit log writes them in batches). */
  auditLines: string[];
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  /** Raw config (validated by the real schema); `server.port` is ignored. */
  config: Record<string, unknown>;
  store?: Store;
  keyring?: Keyring;
  broker?: TokenBroker;
  /** Defaults to the system clock; a ManualClock makes time-window behaviour (rate limits) deterministic. */
  clock?: Clock;
  /** Period of the revoked-grants re-sync (default 500 ms). */
  resyncIntervalMs?: number;
  /** `authorization.revocationMaxStalenessSeconds` as the app passes it (ms); unbounded by default. */
  revocationMaxStalenessMs?: number;
  /** Replicas behind one load balancer share a public URL (the token audience); defaults to this listener's URL. */
  publicUrl?: string;
  /** Port to listen on (0 = any); the public URL is derived from it. */
  port?: number;
  /** Passed to the gateway plugin (stream and rate-limit metrics). */
  metrics?: GatehouseMetrics;
  /** Passed to the gateway plugin (OpenTelemetry spans); off when absent. */
  tracing?: Tracing;
}

export function createTestKeyring(): Keyring {
  return testKeyring();
}

export async function startTestGateway(options: TestGatewayOptions): Promise<TestGateway> {
  const clock = options.clock ?? systemClock;
  const store = options.store ?? (await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 }));
  const keyring = options.keyring ?? createTestKeyring();
  const { logger, logs } = captureLogs();
  const auditLines: string[] = [];
  // The public URL must be known before listening (it is the token audience), so a free port is reserved first.
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const publicUrl = options.publicUrl ?? url;
  const config: GatehouseConfig = configSchema.parse({ ...options.config, server: { ...(options.config.server as object), port } });
  const ctx = testContext({ config, publicUrl, store, keyring, clock, logger });
  const revokedGrants = createRevokedGrantsCache({
    store,
    clock,
    resyncIntervalMs: options.resyncIntervalMs ?? 500,
    ...(options.revocationMaxStalenessMs === undefined ? {} : { maxStalenessMs: options.revocationMaxStalenessMs }),
  });
  await revokedGrants.start();
  const plugin = createGatewayPlugin(ctx, { revokedGrants, broker: options.broker, metrics: options.metrics, tracing: options.tracing, auditSink: { write: (chunk: string) => auditLines.push(...chunk.split('\n').filter(Boolean)) } });
  const app = await buildServer(ctx, { plugins: [plugin] });
  await app.listen({ port, host: '127.0.0.1' });
  return {
    app,
    url,
    ctx,
    store,
    keyring,
    revokedGrants,
    logs,
    auditLines,
    async close() {
      await app.close();
      await revokedGrants.stop();
      if (!options.store) await store.close();
    },
  };
}


export interface MintOptions {
  sub?: string;
  aud: string;
  scope?: string;
  clientId?: string;
  gid?: string;
  /** Seconds from now (negative: already expired). */
  expiresIn?: number;
  typ?: string;
  issuer?: string;
  /** A confirmation claim (RFC 7800), as a sender-constrained token carries. */
  cnf?: Record<string, string>;
}

/** An access token in the shared format (RFC 9068), signed with `keyring`. */
export async function mintAccessToken(keyring: Keyring, issuer: string, options: MintOptions): Promise<string> {
  const key = keyring.currentSigningKey();
  const now = Math.floor(Date.now() / 1000);
  const cnf = options.cnf === undefined ? {} : { cnf: options.cnf };
  return new SignJWT({ client_id: options.clientId ?? 'client-1', scope: options.scope ?? 'mcp:tools', gid: options.gid ?? cryptoRandom.token(8), ...cnf })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: options.typ ?? 'at+jwt' })
    .setIssuer(options.issuer ?? issuer)
    .setAudience(options.aud)
    .setSubject(options.sub ?? 'tenant/alice')
    .setJti(cryptoRandom.token(8))
    .setIssuedAt(now - 5)
    .setExpirationTime(now + (options.expiresIn ?? 300))
    .sign(key.privateKey);
}

/** A raw JSON-RPC POST as a 2026-07-28 client sends it (standard headers mirrored from the body). */
export function mcpPost(
  url: string,
  token: string | undefined,
  message: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const base: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (token !== undefined) base.authorization = `Bearer ${token}`;
  return fetch(url, { method: 'POST', headers: { ...base, ...headers }, body: typeof message === 'string' ? message : JSON.stringify(message) });
}

/** A minimal `tools/call` in the 2025 shape (the backends' stateless fallback serves it without a session). */
export const toolsCall = (name: string, args: Record<string, unknown> = {}, id = 1) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

export const toolsList = (id = 1) => ({ jsonrpc: '2.0', id, method: 'tools/list', params: {} });

/** The JSON-RPC message of a relayed answer, as the backend sent it: plain JSON or one SSE event. */
export async function rpcBody<T = { id: number; result?: unknown; error?: { message: string } }>(response: Response): Promise<T> {
  const text = await response.text();
  const json = text.startsWith('event:') || text.startsWith('id:') ? text.split('\n').find((line) => line.startsWith('data: '))!.slice(6) : text;
  return JSON.parse(json) as T;
}

export interface ListedTool {
  name: string;
  description?: string;
}

/** The tools a `tools/list` through the gateway answers with, from a JSON or an SSE answer. */
export async function listedTools(url: string, token: string): Promise<ListedTool[]> {
  const response = await mcpPost(url, token, toolsList());
  if (response.status !== 200) throw new Error(`tools/list answered ${response.status}: ${await response.text()}`);
  const text = await response.text();
  const json = response.headers.get('content-type')?.includes('text/event-stream')
    ? (text.split('\n').find((line) => line.startsWith('data: ') && line.includes('"tools"')) ?? '').slice(6)
    : text;
  return (JSON.parse(json) as { result: { tools: ListedTool[] } }).result.tools;
}

/**
 * Follows an open SSE answer from its first bytes to its end (a cut is an error for fetch): `ended()` says whether it
 * has, `end` resolves when it does.
 */
export async function followStream(response: Response): Promise<{ ended(): boolean; end: Promise<void> }> {
  const reader = response.body!.getReader();
  await reader.read();
  let ended = false;
  const end = (async () => {
    try {
      while (!(await reader.read()).done);
    } catch {
      // cut
    }
    ended = true;
  })();
  return { ended: () => ended, end };
}

/**
 * The audit records of one JSON-RPC batch request: the first `batch` record from `from` on that passes `test`, and
 * every record of its request id, once `count` of them are written (records are written in batches); bounded.
 */
export async function batchAuditRecords(gateway: TestGateway, from: number, test: (record: Record<string, unknown>) => boolean, count: number): Promise<Array<Record<string, unknown>>> {
  const deadline = Date.now() + 5_000;
  let records: Array<Record<string, unknown>> = [];
  while (records.length < count && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const written = gateway.auditLines.slice(from).map((line) => JSON.parse(line) as Record<string, unknown>);
    const request = written.find((record) => record['method'] === 'batch' && test(record))?.['requestId'];
    records = written.filter((record) => request !== undefined && record['requestId'] === request);
  }
  return records;
}

/** The first audit record from `from` on with this `reason`, waited for (records are written in batches); bounded. */
export async function auditRecordWithReason(gateway: TestGateway, reason: string, from = 0): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const found = gateway.auditLines.slice(from).map((line) => JSON.parse(line) as Record<string, unknown>).find((record) => record['reason'] === reason);
    if (found !== undefined || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
