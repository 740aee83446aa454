import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * A client ends its session (`DELETE`), the backend ends it, and the store cannot delete the session's binding. The
 * session is over where it matters: the client is told the backend's answer, not a 503 that sends it retrying a
 * DELETE the backend then answers 404. The binding goes once the store answers again, so no replica keeps serving it.
 */
describe('a session ended while the store is down', () => {
  const keyring = createTestKeyring();
  let server: Server;
  let gateway: TestGateway;
  let sqlite: Store;
  let storeDown = false;
  const deletes: string[] = [];

  before(async () => {
    server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        if (request.method === 'DELETE') {
          deletes.push(String(request.headers['mcp-session-id']));
          response.writeHead(200).end();
          return;
        }
        response.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': `backend-session-${deletes.length}` });
        response.end('{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"b","version":"1"}}}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    sqlite = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    // Deleting a session binding fails as in an outage while `storeDown`; everything else works.
    const store = new Proxy(sqlite, {
      get(target, property, receiver) {
        if (property === 'delete') {
          return (namespace: string, key: string) =>
            storeDown && namespace === 'mcp-session' ? Promise.reject(new StoreUnavailableError('the store is unavailable')) : target.delete(namespace, key);
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    gateway = await startTestGateway({ keyring, store, config: { routes: [{ path: '/mcp', backend: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp` }] } });
  });
  after(async () => {
    await gateway?.close();
    await sqlite?.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("relays the backend's answer to the DELETE, and deletes the binding once the store answers", async () => {
    const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub: 'user-1', expiresIn: 3600 });
    const opened = await mcpPost(`${gateway.url}/mcp`, token, {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'test', version: '1' } },
    });
    assert.equal(opened.status, 200, await opened.clone().text());
    await opened.body?.cancel();
    const sessionId = opened.headers.get('mcp-session-id')!;
    assert.ok(await sqlite.get('mcp-session', sessionId), 'the session was bound');

    storeDown = true;
    const ended = await fetch(`${gateway.url}/mcp`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
    });
    assert.equal(ended.status, 200, await ended.text());
    assert.deepEqual(deletes, [sessionId], 'the backend ended the session');
    assert.ok(await sqlite.get('mcp-session', sessionId), 'the binding is still there while the store is down');

    storeDown = false;
    for (let attempt = 0; attempt < 200 && (await sqlite.get('mcp-session', sessionId)) !== undefined; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.equal(await sqlite.get('mcp-session', sessionId), undefined, 'the binding was deleted once the store answered');
    const after = await mcpPost(`${gateway.url}/mcp`, token, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': sessionId });
    assert.equal(after.status, 404, 'the ended session is refused at the gateway');
    await after.body?.cancel();
  });
});
