import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createInterface } from 'node:readline';
import { generateKeySet, serializeKeySet } from '../../src/keys/key-set.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import { loadUpstreamTokens, saveUpstreamTokens } from '../../src/upstream/token-vault.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { startTokenEndpoint, type TokenEndpointStandIn } from './support/http-upstream.ts';

const replicaScript = fileURLToPath(new URL('./support/broker-replica.ts', import.meta.url));

/** Starts one replica process and resolves once it is connected to Redis and waiting for `go`. */
function startReplica(env: Record<string, string>): Promise<{ child: ChildProcess; result: Promise<string[]> }> {
  const child = spawn(process.execPath, [replicaScript], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  let onReady: () => void;
  const ready = new Promise<void>((resolve) => {
    onReady = resolve;
  });
  const result = new Promise<string[]>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line === 'ready') onReady();
      else if (line.startsWith('{')) resolve((JSON.parse(line) as { tokens: string[] }).tokens);
    });
    child.once('exit', (code) => reject(new Error(`replica exited with ${code}: ${stderr}`)));
  });
  return Promise.race([ready.then(() => ({ child, result })), result.then(() => ({ child, result }))]);
}

describe('single flight across three replica processes on a shared Redis', () => {
  let redis: RedisServer;
  let endpoint: TokenEndpointStandIn;
  const children: ChildProcess[] = [];

  before(async () => {
    redis = await startRedisServer();
    // Slow enough that every replica's calls arrive while the first exchange is still in flight.
    endpoint = await startTokenEndpoint({ delayMs: 300 });
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await endpoint.close();
    await redis.stop();
  });

  it('50 concurrent calls for one user cause exactly one upstream refresh and one on-behalf-of exchange', async () => {
    const keySet = generateKeySet({ now: Date.now(), signingAlgorithm: 'ES256' });
    const keyPrefix = `gatehouse-test-${randomUUID()}:`;
    const subject = 'tenant-1/user-1';
    const store = await createRedisStore({ url: redis.url, keyPrefix, clock: systemClock, purgeIntervalMs: 0 });
    const vaultDeps = { store, keyring: keyringFromKeySet(keySet), clock: systemClock };
    // The user's upstream access token has expired: the first call must refresh it, once, for everybody.
    const staleRefreshToken = `upstream-rt-${randomUUID()}`;
    await saveUpstreamTokens(vaultDeps, subject, { accessToken: `upstream-at-${randomUUID()}`, refreshToken: staleRefreshToken, expiresAt: Date.now() - 1_000 });

    const env = { REDIS_URL: redis.url, KEY_SET: serializeKeySet(keySet), TOKEN_URL: endpoint.url, SUBJECT: subject, KEY_PREFIX: keyPrefix };
    const replicas = await Promise.all([17, 17, 16].map((calls) => startReplica({ ...env, CALLS: String(calls) })));
    children.push(...replicas.map((replica) => replica.child));
    for (const replica of replicas) replica.child.stdin?.write('go\n');
    const tokens = (await Promise.all(replicas.map((replica) => replica.result))).flat();

    assert.equal(tokens.length, 50);
    assert.deepEqual(tokens.filter((token) => token.startsWith('error:')), []);
    assert.equal(new Set(tokens).size, 1, 'every call got the same downstream token');
    assert.equal(endpoint.counts.refresh, 1);
    assert.equal(endpoint.counts.exchange, 1);
    const saved = await loadUpstreamTokens(vaultDeps, subject);
    assert.ok(saved?.refreshToken && saved.refreshToken !== staleRefreshToken, 'the rotated refresh token was stored');
    await store.close();
  });
});
