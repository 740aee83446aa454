import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * A backend answers `initialize` with a session id and an SSE stream, and the store cannot record who owns that
 * session: the client gets the store outage (503), and the backend's answer, which nobody will relay, is dropped at
 * once — its connection must not stay held until the idle-stream timeout.
 */
describe('a session the store cannot bind', () => {
  const keyring = createTestKeyring();
  let server: Server;
  let gateway: TestGateway;
  let store: Store;
  const answered: Socket[] = [];
  const closed = new Set<Socket>();
  let answerAsJson = false;
  // An exception nothing handles would end a real gateway process; here it is caught and fails the test.
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);

  before(async () => {
    process.on('uncaughtException', onUncaught);
    server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        answered.push(request.socket);
        if (answerAsJson) {
          response.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'backend-session-2' });
          response.end('{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"b","version":"1"}}}');
          return;
        }
        response.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': 'backend-session-1' });
        // The stream stays open: only the gateway can end it.
        response.write('event: message\ndata: {"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"b","version":"1"}}}\n\n');
      });
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (socket: Socket) => socket.on('close', () => closed.add(socket)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const sqlite = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    // The session binding's write fails as in an outage; everything else works.
    store = new Proxy(sqlite, {
      get(target, property, receiver) {
        if (property === 'setIfAbsent') {
          return (namespace: string, ...rest: unknown[]) =>
            namespace === 'mcp-session'
              ? Promise.reject(new StoreUnavailableError('the store is unavailable'))
              : (target.setIfAbsent as (...args: unknown[]) => Promise<boolean>).call(target, namespace, ...rest);
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    gateway = await startTestGateway({ keyring, store, config: { routes: [{ path: '/mcp', backend: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp` }] } });
  });
  after(async () => {
    process.off('uncaughtException', onUncaught);
    await gateway?.close();
    await store?.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const initialize = (token: string) =>
    mcpPost(`${gateway.url}/mcp`, token, {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'test', version: '1' } },
    });

  it('answers 503 and drops the backend\'s unrelayed stream at once', async () => {
    const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub: 'user-1', expiresIn: 3600 });
    const response = await initialize(token);
    assert.equal(response.status, 503, await response.text());
    assert.equal(answered.length, 1);
    for (let attempt = 0; attempt < 200 && !closed.has(answered[0]!); attempt++) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.ok(closed.has(answered[0]!), 'the backend connection of the unrelayed stream was closed');
  });

  it('answers 503 to an initialize answered in JSON, and the dropped answer ends nothing but itself', async () => {
    // Destroyed with nothing listening, the backend's body raised an error that nothing handled: the process ended.
    answerAsJson = true;
    const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub: 'user-2', expiresIn: 3600 });
    for (let attempt = 0; attempt < 3; attempt++) {
      const response = await initialize(token);
      assert.equal(response.status, 503, await response.text());
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(uncaught.map(String), []);
  });
});
