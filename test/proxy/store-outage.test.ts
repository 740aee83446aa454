import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { accountRecord, type AccountRecord } from '../../src/records/account.ts';
import { ManualClock, seconds } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { createDpopKey, dpopProof } from '../support/dpop.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * A Redis outage seen from an MCP client: a user whose account the gateway has cached keeps working for a bounded
 * time; anyone else gets 503 + Retry-After with a JSON-RPC error saying the service is temporarily unavailable —
 * never a 500 / -32603.
 */
const keyring = createTestKeyring();
const clock = new ManualClock(Date.now());
let redis: RedisServer;
let store: Store;
let backend: McpBackend;
let gateway: TestGateway;

const account = (subject: string): AccountRecord => ({ subject, issuer: 'https://idp.test', groups: [], firstSeenAt: 0, lastSeenAt: 0 });

async function waitUntil(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 50));
}

before(async () => {
  redis = await startRedisServer();
  store = await createRedisStore({ url: redis.url, keyPrefix: 'outage:', clock, purgeIntervalMs: 0 });
  backend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
  gateway = await startTestGateway({ keyring, clock, store, config: { routes: [{ path: '/mcp', backend: backend.url }] } });
});
after(async () => {
  await gateway?.close();
  await store?.close();
  await backend?.close();
  await redis?.stop();
});

const call = async (sub: string) =>
  mcpPost(gateway.url + '/mcp', await mintAccessToken(keyring, gateway.url, { aud: gateway.url + '/mcp', sub, expiresIn: 3600 }), toolsCall('echo', { text: 'hi' }));

describe('the gateway while Redis is down', () => {
  it('answers 503 + Retry-After with a JSON-RPC "temporarily unavailable" error, and serves a cached account for a bounded time', async () => {
    await store.set(accountRecord.namespace, 'tenant/cached', account('tenant/cached'));
    await store.set(accountRecord.namespace, 'tenant/uncached', account('tenant/uncached'));
    const warmed = await call('tenant/cached');
    assert.equal(warmed.status, 200, await warmed.text());

    await redis.stop();
    clock.advance(60_000); // past the account cache's 30 s TTL

    const refused = await call('tenant/uncached');
    assert.equal(refused.status, 503);
    assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/);
    const body = (await refused.json()) as { jsonrpc: string; id: number; error: { code: number; message: string } };
    assert.notEqual(body.error.code, -32603);
    assert.match(body.error.message, /temporarily unavailable/);
    assert.doesNotMatch(JSON.stringify(body), /127\.0\.0\.1|Redis/);

    const stale = await call('tenant/cached');
    assert.equal(stale.status, 200, 'a user verified before the outage keeps working');
    await stale.text();

    // A DPoP proof's jti cannot be recorded: the proof is refused (503), never accepted unchecked, never a 500.
    const key = await createDpopKey();
    const bound = await mintAccessToken(keyring, gateway.url, { aud: gateway.url + '/mcp', sub: 'tenant/cached', expiresIn: 3600, cnf: { jkt: key.jkt } });
    const proof = await dpopProof(key, { htm: 'POST', htu: gateway.url + '/mcp', accessToken: bound, iat: seconds(clock.now()) });
    const unrecorded = await mcpPost(gateway.url + '/mcp', undefined, toolsCall('echo'), { authorization: `DPoP ${bound}`, dpop: proof });
    assert.equal(unrecorded.status, 503);
    await unrecorded.text();

    clock.advance(10 * 60_000); // past the stale bound
    const tooStale = await call('tenant/cached');
    assert.equal(tooStale.status, 503);
    await tooStale.text();

    await redis.restart();
    // Redis came back empty (no persistence); the account is written again once the store answers.
    await waitUntil(() => store.set(accountRecord.namespace, 'tenant/uncached', account('tenant/uncached')).then(() => true, () => false));
    const recovered = await call('tenant/uncached');
    assert.equal(recovered.status, 200, 'the store recovers by itself once Redis is back');
    await recovered.text();
  });
});
