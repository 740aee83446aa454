import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/server/app.ts';
import { createServerTestContext } from '../support/server-context.ts';

describe('health endpoints', () => {
  const { ctx, store, logs } = createServerTestContext();
  let app: FastifyInstance;
  let discoveryUp = true;
  before(async () => {
    app = await buildServer(ctx, {
      readinessChecks: {
        upstream: async () => {
          if (!discoveryUp) throw new Error('discovery failed');
        },
      },
      // A request that needs the store, as every OAuth and MCP endpoint has.
      plugins: [
        async (part) => {
          part.get('/needs-the-store', async () => {
            await store.ping();
            return { ok: true };
          });
        },
      ],
    });
  });
  after(() => app.close());

  it('/healthz says the process is up', async () => {
    const res = await app.inject({ url: '/healthz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok' });
  });

  it('/readyz is 200 when every check passes', async () => {
    store.reachable = true;
    discoveryUp = true;
    const res = await app.inject({ url: '/readyz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok', checks: { store: 'ok', upstream: 'ok' } });
  });

  it('/readyz is 503 naming the store when the store is down', async () => {
    store.reachable = false;
    discoveryUp = true;
    const res = await app.inject({ url: '/readyz' });
    assert.equal(res.statusCode, 503);
    assert.deepEqual(res.json(), { status: 'unavailable', checks: { store: 'unavailable', upstream: 'ok' } });
    assert.doesNotMatch(res.body, /fake store is down/, 'internal error text is not exposed');
    // Liveness is independent of dependencies: restarting the process would not bring the store back.
    assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
  });

  it('a store outage is a warning now and then, not one per request: each request keeps its own line', async () => {
    store.reachable = false;
    const count = (message: string) => logs.lines().filter((line) => line.msg === message).length;
    const [readyBefore, storeBefore] = [count('not ready'), count('store unavailable')];
    for (let i = 0; i < 5; i++) {
      assert.equal((await app.inject({ url: '/readyz' })).statusCode, 503);
      assert.equal((await app.inject({ url: '/needs-the-store' })).statusCode, 503);
    }
    assert.ok(count('not ready') - readyBefore <= 1, `${count('not ready') - readyBefore} "not ready" lines for 5 probes`);
    assert.equal(count('store unavailable') - storeBefore, 1, 'one "store unavailable" line for 5 failed requests');
    // Another cause is said at once, held back or not.
    discoveryUp = false;
    const changed = count('not ready');
    assert.equal((await app.inject({ url: '/readyz' })).statusCode, 503);
    assert.equal(count('not ready'), changed + 1, 'a new cause of not being ready is a line of its own');
    discoveryUp = true;
    store.reachable = true;
  });

  it('/readyz reports an added check by name', async () => {
    store.reachable = true;
    discoveryUp = false;
    const res = await app.inject({ url: '/readyz' });
    assert.equal(res.statusCode, 503);
    assert.deepEqual(res.json().checks, { store: 'ok', upstream: 'unavailable' });
  });

  it('/readyz treats a check that never answers as unavailable', async () => {
    const hanging = createServerTestContext();
    const hangingApp = await buildServer(hanging.ctx, {
      readinessChecks: { stuck: () => new Promise<void>(() => {}) },
      readinessTimeoutMs: 50,
    });
    try {
      // The check timeout is what ends this request; without it the request would never complete.
      const res = await hangingApp.inject({ url: '/readyz' });
      assert.equal(res.statusCode, 503);
      assert.equal(res.json().checks.stuck, 'unavailable');
    } finally {
      await hangingApp.close();
    }
  });
});
