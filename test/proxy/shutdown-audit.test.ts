import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AUDIT_NAMESPACE, type AuditRecord } from '../../src/proxy/audit.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { installGracefulShutdown } from '../../src/server/graceful-shutdown.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall } from './harness.ts';

/**
 * SIGTERM with SSE streams still open: the streams are cut at the end of the grace period, their audit records are
 * queued as they close, and only then does the audit log flush and the store close — every stream is on record.
 */
const STREAMS = 30;
let backend: Server;
let backendUrl: string;
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gatehouse-shutdown-audit-'));
  // A backend whose SSE answers never end, like a long-running tool call streaming progress.
  backend = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n');
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}/mcp`;
});
after(async () => {
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

describe('graceful shutdown with open SSE streams', () => {
  it('records the audit entry of every stream cut at shutdown before the store closes', async () => {
    const path = join(dir, 'gatehouse.db');
    const store = await createSqliteStore({ path, clock: systemClock, purgeIntervalMs: 0 });
    const keyring = createTestKeyring();
    const gateway = await startTestGateway({ keyring, store, config: { routes: [{ path: '/mcp', backend: backendUrl }] } });
    const bearer = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub: 'tenant/streamer' });

    const responses = await Promise.all(Array.from({ length: STREAMS }, (_, i) => mcpPost(`${gateway.url}/mcp`, bearer, toolsCall('echo', {}, i + 1))));
    for (const response of responses) assert.equal(response.headers.get('content-type'), 'text/event-stream');
    const reading = responses.map((response) => response.text().catch(() => 'cut'));

    const signals = new EventEmitter();
    const shutdown = installGracefulShutdown(gateway.app, {
      graceMs: 100,
      logger: gateway.ctx.logger,
      // As in `gatehouse start`: the store is closed last, after the server (and its audit log) closed.
      closeResources: async () => {
        await gateway.revokedGrants.stop();
        await store.close();
      },
      signals,
    });
    signals.emit('SIGTERM');
    assert.equal(await shutdown.stopped, 0);
    await Promise.all(reading);

    const reopened = await createSqliteStore({ path, clock: systemClock, purgeIntervalMs: 0 });
    try {
      const records = (await reopened.list<AuditRecord>(AUDIT_NAMESPACE)).filter((entry) => entry.value.user === 'tenant/streamer');
      assert.equal(records.length, STREAMS, 'one audit record per stream cut at shutdown');
      // Cut by the gateway's shutdown, not by the client and not a failure.
      assert.deepEqual([...new Set(records.map((entry) => `${entry.value.outcome} ${entry.value.method}`))], ['server_closed tools/call']);
    } finally {
      await reopened.close();
    }
  });

  it('records a call cut before its backend answered with status 0: no answer was sent, not a 200', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    const keyring = createTestKeyring();
    const gateway = await startTestGateway({ keyring, store, config: { routes: [{ path: '/mcp', backend: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/mcp` }] } });
    try {
      const bearer = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub: 'tenant/waiting' });
      const call = mcpPost(`${gateway.url}/mcp`, bearer, toolsCall('slow_tool')).then(
        () => 'answered',
        () => 'cut',
      );
      // The call reaches the backend, which takes its time.
      const connections = () => new Promise<number>((resolve) => silent.getConnections((_error, count) => resolve(count)));
      while ((await connections()) === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      const signals = new EventEmitter();
      const shutdown = installGracefulShutdown(gateway.app, { graceMs: 100, logger: gateway.ctx.logger, closeResources: () => gateway.revokedGrants.stop(), signals });
      signals.emit('SIGTERM');
      assert.equal(await shutdown.stopped, 0);
      assert.equal(await call, 'cut');
      const records = (await store.list<AuditRecord>(AUDIT_NAMESPACE)).filter((entry) => entry.value.user === 'tenant/waiting');
      assert.deepEqual(records.map((entry) => `${entry.value.outcome} ${entry.value.status}`), ['server_closed 0']);
    } finally {
      await store.close();
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
