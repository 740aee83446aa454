import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { revokeGrant } from '../../src/grants/revoked-grants.ts';
import { auditRecordWithReason, createTestKeyring, followStream, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * A replica cut off from the store cannot learn of grant ends; past `revocationMaxStalenessSeconds` it refuses new
 * requests rather than vouch for them. Its open streams went on: a grant ended during the outage (by another replica,
 * an admin) kept streaming until the store came back, hours in a long outage. Now they are cut too.
 */
describe('open streams when revocations cannot be checked', () => {
  const keyring = createTestKeyring();
  const clock = new ManualClock(Date.now());
  let sqlite: Store;
  let backend: Server;
  let gateway: TestGateway;
  let storeDown = false;
  const held = new Set<ServerResponse>();
  // Each request to `/slow` (either transport) waits here until the test answers it.
  const slowWaiting: Array<(answer: () => void) => void> = [];
  const nextSlow = () => new Promise<() => void>((resolve) => slowWaiting.push(resolve));

  before(async () => {
    backend = createServer((request, response) => {
      held.add(response);
      response.once('close', () => held.delete(response));
      request.resume();
      const open = () => {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.write(': open\n\n');
      };
      // `/slow` answers only when the test says: its stream is admitted before the list goes stale, tracked after.
      if (request.url?.startsWith('/slow')) slowWaiting.shift()?.(open);
      else open();
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    sqlite = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    const store = new Proxy(sqlite, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (property === 'list') return (...args: unknown[]) => (storeDown ? Promise.reject(new StoreUnavailableError('test outage')) : (value as (...a: unknown[]) => unknown).apply(target, args));
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    gateway = await startTestGateway({
      keyring,
      clock,
      store,
      resyncIntervalMs: 20,
      revocationMaxStalenessMs: 60_000,
      config: {
        routes: [
          { path: '/mcp', backend: `http://127.0.0.1:${(backend.address() as AddressInfo).port}/mcp` },
          { path: '/slow', backend: `http://127.0.0.1:${(backend.address() as AddressInfo).port}/slow`, legacySsePath: '/slow/sse' },
        ],
      },
    });
  });
  after(async () => {
    await gateway.close();
    for (const response of held) response.destroy();
    backend.closeAllConnections();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
    await sqlite.close();
  });

  it('cuts them, audited server_closed, once the list is stale, and not while the outage is within the bound', { timeout: 10_000 }, async () => {
    const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp` });
    const response = await fetch(`${gateway.url}/mcp`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    assert.equal(response.status, 200);
    const stream = await followStream(response);

    storeDown = true;
    clock.advance(30_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(stream.ended(), false, 'an outage within the bound keeps the stream');
    clock.advance(31_000);
    await stream.end;
    const cut = await auditRecordWithReason(gateway, 'revocations cannot be checked');
    assert.equal(cut?.['outcome'], 'server_closed');
    storeDown = false;
    clock.advance(1_000);
    await gateway.revokedGrants.resync();
  });

  const streamRequest = async (path: string, gid: string) => {
    const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/slow`, gid });
    const answered = nextSlow();
    const response = fetch(`${gateway.url}${path}`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    return { response, answer: await answered };
  };

  it('answers a stream admitted before the list went stale, whose backend answered after, 503 with Retry-After, not a cut', { timeout: 10_000 }, async () => {
    const { response, answer } = await streamRequest('/slow', 'grant-slow-stale');
    storeDown = true;
    clock.advance(61_000);
    await gateway.revokedGrants.resync().catch(() => undefined);
    assert.equal(gateway.revokedGrants.isCurrent(), false);
    const before = gateway.auditLines.length;
    answer();
    const answered = await response;
    assert.equal(answered.status, 503);
    assert.ok(Number(answered.headers.get('retry-after')) > 0);
    await answered.body?.cancel();
    const record = await auditRecordWithReason(gateway, 'revocations cannot be checked', before);
    assert.equal(record?.['status'], 503);
    storeDown = false;
    clock.advance(1_000);
    await gateway.revokedGrants.resync();
  });

  it("answers 403 insufficient_scope a stream whose route a reload made require a scope its token lacks while its backend was slow", { timeout: 10_000 }, async () => {
    const { response, answer } = await streamRequest('/slow', 'grant-slow-scopes');
    const route = gateway.ctx.config.routes.find((entry) => entry.path === '/slow')!;
    const before = route.requiredScopes;
    // As a reload assigns it (src/app/reload-config.ts): the stream's request was checked under the old list.
    route.requiredScopes = [...before, 'mcp:admin'];
    try {
      const audit = gateway.auditLines.length;
      answer();
      const answered = await response;
      assert.equal(answered.status, 403);
      assert.match(answered.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
      await answered.body?.cancel();
      assert.ok(await auditRecordWithReason(gateway, 'scopes no longer enough', audit));
    } finally {
      route.requiredScopes = before;
    }
  });

  for (const path of ['/slow', '/slow/sse']) {
    it(`answers a stream (${path}) whose grant ended while its backend was slow to answer 401, the grant's use over`, { timeout: 10_000 }, async () => {
      const gid = `grant-slow-ended${path.replaceAll('/', '-')}`;
      const { response, answer } = await streamRequest(path, gid);
      await revokeGrant(sqlite, gid, { ttlSeconds: 600 });
      await gateway.revokedGrants.resync();
      assert.equal(gateway.revokedGrants.isRevoked(gid), true);
      const before = gateway.auditLines.length;
      answer();
      const answered = await response;
      assert.equal(answered.status, 401);
      assert.match(answered.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      await answered.body?.cancel();
      const record = await auditRecordWithReason(gateway, 'grant ended', before);
      assert.equal(record?.['status'], 401);
      assert.equal(record?.['outcome'], 'denied');
    });
  }
});
