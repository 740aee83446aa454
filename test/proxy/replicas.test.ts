import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rateLimitCounter } from '../../src/records/proxy.ts';
import { revokeGrant } from '../../src/grants/revoked-grants.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { createDpopKey, dpopProof } from '../support/dpop.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * Two gateway replicas sharing a real Redis: a revocation on one is visible on the other long before a re-sync
 * (pub/sub, no store read per request), a legacy SSE session opened on one accepts messages through the other, and session
 * bindings hold across replicas.
 */
const keyring = createTestKeyring();
const publicUrl = 'http://gateway.test';
let redis: RedisServer;
const stores: Store[] = [];
let replicaA: TestGateway;
let replicaB: TestGateway;
let backend: McpBackend;
let legacyBackend: McpBackend;

before(async () => {
  redis = await startRedisServer();
  const openStore = async () => {
    const store = await createRedisStore({ url: redis.url, keyPrefix: 'gh-test:', clock: systemClock, purgeIntervalMs: 0 });
    stores.push(store);
    return store;
  };
  backend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
  legacyBackend = await startMcpBackend({ kind: 'v1-sse' });
  const config = {
    routes: [
      { path: '/mcp', backend: backend.url },
      { path: '/legacy', backend: legacyBackend.url, transports: ['sse'] },
      { path: '/limited', backend: backend.url, rateLimit: { perUserPerMinute: 4, perClientPerMinute: 1_000 } },
    ],
  };
  // The periodic re-sync is pushed far out so only pub/sub can deliver the revocation in time.
  const resyncIntervalMs = 60_000;
  replicaA = await startTestGateway({ keyring, publicUrl, store: await openStore(), config, resyncIntervalMs });
  replicaB = await startTestGateway({ keyring, publicUrl, store: await openStore(), config, resyncIntervalMs });
});

after(async () => {
  await replicaA?.close();
  await replicaB?.close();
  for (const store of stores) await store.close();
  await backend?.close();
  await legacyBackend?.close();
  await redis?.stop();
});

const token = (path: string, options: { gid?: string; sub?: string } = {}) =>
  mintAccessToken(keyring, publicUrl, { aud: publicUrl + path, ...options });

describe('replicas on one Redis', () => {
  it('refuses a revoked grant on every replica by pub/sub, long before a re-sync', async () => {
    const bearer = await token('/mcp', { gid: 'grant-shared' });
    for (const replica of [replicaA, replicaB]) {
      const response = await mcpPost(replica.url + '/mcp', bearer, toolsCall('echo', { text: 'x' }));
      assert.equal(response.status, 200);
      await response.text();
    }
    const revokedAt = Date.now();
    await revokeGrant(stores[0]!, 'grant-shared', { ttlSeconds: 600 });
    let status = 200;
    // Pub/sub takes milliseconds, the re-sync a minute: 10 s tells them apart, where a second was at times used up
    // by a loaded machine before the message or the next request came through.
    while (status === 200 && Date.now() - revokedAt < 10_000) {
      const response = await mcpPost(replicaB.url + '/mcp', bearer, toolsCall('echo', { text: 'x' }));
      status = response.status;
      await response.text();
    }
    assert.equal(status, 401, 'replica B refused the revoked grant before any re-sync');
    assert.equal(replicaA.revokedGrants.isRevoked('grant-shared'), true);
  });

  it('shares per-user rate-limit budgets across replicas', async () => {
    // The counters are per minute: start well inside a window so the test never straddles two.
    const intoWindow = Date.now() % 60_000;
    if (intoWindow > 55_000) await new Promise((resolve) => setTimeout(resolve, 60_000 - intoWindow + 100));
    const window = Math.floor(Date.now() / 60_000);
    const bearer = await token('/limited', { sub: 'tenant/busy' });
    const sharedTotal = () => stores[0]!.increment(rateLimitCounter.namespace, `${window}:u:/limited:tenant/busy`, 120, 0);
    const call = async (replica: TestGateway) => {
      const response = await mcpPost(replica.url + '/limited', bearer, toolsCall('echo', { text: 'x' }));
      await response.text();
      return response.status;
    };
    assert.deepEqual([await call(replicaA), await call(replicaA)], [200, 200]);
    while ((await sharedTotal()) < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual([await call(replicaB), await call(replicaB)], [200, 200]);
    while ((await sharedTotal()) < 4) await new Promise((resolve) => setTimeout(resolve, 20));
    // Replica B admitted only 2 itself, yet its budget is spent: it learnt replica A's 2 from the shared counter.
    assert.equal(await call(replicaB), 429);
  });

  it('admits a burst spread over the replicas within the one budget, at the start of a window too', async () => {
    // Each replica once admitted what it had counted but not yet shared: 40 calls at once over two replicas, limit
    // 4 a minute, let through 8 (and 16–20 of a limit of 10 in the probe that found it).
    const intoWindow = Date.now() % 60_000;
    if (intoWindow > 55_000) await new Promise((resolve) => setTimeout(resolve, 60_000 - intoWindow + 100));
    const bearer = await token('/limited', { sub: 'tenant/burst' });
    const statuses = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const response = await mcpPost((i % 2 === 0 ? replicaA : replicaB).url + '/limited', bearer, toolsCall('echo', { text: 'x' }));
        await response.text();
        return response.status;
      }),
    );
    assert.equal(statuses.filter((status) => status === 200).length, 4, statuses.join(' '));
    assert.equal(statuses.filter((status) => status === 429).length, 36);
  });

  it('routes legacy SSE messages posted to another replica to the right backend session', async () => {
    const bearer = await token('/legacy', { sub: 'tenant/alice' });
    const controller = new AbortController();
    const stream = await fetch(replicaA.url + '/legacy/sse', { headers: { authorization: `Bearer ${bearer}` }, signal: controller.signal });
    assert.equal(stream.status, 200);
    const reader = stream.body!.getReader();
    let received = '';
    const readUntil = async (needle: string) => {
      while (!received.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}`);
        received += Buffer.from(value).toString();
      }
    };
    try {
      await readUntil('\n\n');
      const endpoint = /event: endpoint\ndata: (\S+)/.exec(received)?.[1];
      assert.ok(endpoint?.startsWith(`${publicUrl}/legacy/messages?sessionId=`), endpoint);
      assert.ok(!received.includes(legacyBackend.url), 'the backend URL is not revealed');
      const onB = endpoint!.replace(publicUrl, replicaB.url);

      const initialize = {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      };
      const posted = await mcpPost(onB, bearer, initialize);
      assert.equal(posted.status, 202);
      await posted.text();
      await readUntil('"serverInfo"');

      const mallory = await token('/legacy', { sub: 'tenant/mallory' });
      const hijack = await mcpPost(onB, mallory, { jsonrpc: '2.0', id: 2, method: 'tools/list' });
      assert.equal(hijack.status, 404);
      await hijack.text();
    } finally {
      controller.abort();
    }
  });
  it('refuses a DPoP proof replayed to another replica (the jti cache is the shared store)', async () => {
    const key = await createDpopKey();
    const bound = await mintAccessToken(keyring, publicUrl, { aud: `${publicUrl}/mcp`, cnf: { jkt: key.jkt } });
    // htu is the shared public URL, not either replica's listener: that is what the client called.
    const proof = await dpopProof(key, { htm: 'POST', htu: `${publicUrl}/mcp`, accessToken: bound });
    const headers = { authorization: `DPoP ${bound}`, dpop: proof };
    const first = await mcpPost(`${replicaA.url}/mcp`, undefined, toolsCall('echo', { text: 'x' }), headers);
    assert.equal(first.status, 200);
    await first.body?.cancel();
    const replayed = await mcpPost(`${replicaB.url}/mcp`, undefined, toolsCall('echo', { text: 'x' }), headers);
    assert.equal(replayed.status, 401);
    assert.match(replayed.headers.get('www-authenticate') ?? '', /DPoP algs="[^"]+", error="invalid_dpop_proof"/);
    assert.match(((await replayed.json()) as { error: { message: string } }).error.message, /already used/);
  });
});
