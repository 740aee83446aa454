import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { getCACertificates, setDefaultCACertificates, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { generate } from 'selfsigned';
import type { RouteConfig } from '../../src/config/schema.ts';
import { createBackendClient, type BackendClient } from '../../src/proxy/backend-client.ts';

/**
 * An MCP route's GET is a stream (Streamable HTTP's listen stream, legacy HTTP+SSE's event stream), open for minutes
 * or hours. It gets a backend connection of its own (`ownConnection`), closed with the stream, instead of a client of
 * the route's keep-alive pool: the pool keeps every client it ever made (to reconnect it later), so each stream would
 * have left one behind for the life of the process. POSTs, and a plain HTTP route's GETs, keep reusing the pool.
 */
function routeBackend(url: string): BackendClient {
  return createBackendClient({ path: '/route', backend: url, timeouts: { connectMs: 5_000, responseHeadersMs: 5_000, idleStreamMs: 60_000 } } as unknown as RouteConfig);
}

async function stopBoth(backend: BackendClient, server: Server | HttpsServer): Promise<void> {
  await backend.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

describe('backend connections: a stream has its own, closed with it', () => {
  let server: Server;
  let backend: BackendClient;
  const connections: Socket[] = [];
  const closed = new Set<Socket>();
  const usedBy: Array<{ method: string; connection: number }> = [];

  before(async () => {
    server = createServer((request, response) => {
      usedBy.push({ method: request.method!, connection: connections.indexOf(request.socket) });
      request.resume();
      request.on('end', () => {
        if (request.method === 'GET') {
          response.writeHead(200, { 'content-type': 'text/event-stream' });
          response.write('event: message\ndata: {}\n\n');
          // The backend ends this stream by itself; the other one stays open until the client cancels it.
          if (request.url === '/mcp?ends') response.end();
          return;
        }
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{"jsonrpc":"2.0","id":1,"result":{}}');
      });
    });
    server.on('connection', (socket: Socket) => {
      connections.push(socket);
      socket.on('close', () => closed.add(socket));
    });
    // Idle connections are kept a minute, so a closed one was closed by the gateway, not by keep-alive expiry.
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    backend = routeBackend(`${origin}/mcp`);
  });
  after(() => stopBoth(backend, server));

  const post = async () => {
    const response = await backend.send({ url: url('post'), method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from('{}'), signal: new AbortController().signal });
    for await (const _ of response.body);
    return response.statusCode;
  };
  const url = (query: string) => `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp?${query}`;

  async function until(condition: () => boolean, what: string): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      if (condition()) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.fail(`timed out waiting until ${what}`);
  }

  it('opens a connection of its own for a GET stream, though an idle pooled one is there, and closes it with the stream', async () => {
    assert.equal(await post(), 200);
    const pooled = usedBy.at(-1)!.connection;
    // The POST's connection is idle in the pool now; the stream must not take it.
    const ends = await backend.send({ url: url('ends'), method: 'GET', headers: { accept: 'text/event-stream' }, signal: new AbortController().signal, ownConnection: true });
    assert.notEqual(usedBy.at(-1)!.connection, pooled);
    const streamConnection = connections[usedBy.at(-1)!.connection]!;
    for await (const _ of ends.body);
    await until(() => closed.has(streamConnection), 'the ended stream\'s connection closes');
    // A cancelled stream (the client went away) closes its connection too.
    const cancelled = new AbortController();
    const open = await backend.send({ url: url('open'), method: 'GET', headers: { accept: 'text/event-stream' }, signal: cancelled.signal, ownConnection: true });
    const openConnection = connections[usedBy.at(-1)!.connection]!;
    assert.notEqual(openConnection, connections[pooled]);
    open.body.once('error', () => {});
    cancelled.abort();
    await until(() => closed.has(openConnection), 'the cancelled stream\'s connection closes');
    // The POSTs' keep-alive connection was left alone, and is reused.
    assert.equal(await post(), 200);
    assert.equal(usedBy.at(-1)!.connection, pooled);
    assert.equal(closed.has(connections[pooled]!), false);
  });

  it('keeps a GET that is not a stream (a plain HTTP route\'s) on the pooled connection', async () => {
    assert.equal(await post(), 200);
    const opened = connections.length;
    for (let i = 0; i < 3; i++) {
      const response = await backend.send({ url: url('ends'), method: 'GET', headers: {}, signal: new AbortController().signal });
      for await (const _ of response.body);
    }
    // Each GET went to a keep-alive connection already open, which stays open.
    assert.equal(connections.length, opened);
    assert.equal(closed.has(connections[usedBy.at(-1)!.connection]!), false);
  });

  it('closes the connections of streams still open when the route stops', async () => {
    const open = await backend.send({ url: url('open'), method: 'GET', headers: { accept: 'text/event-stream' }, signal: new AbortController().signal, ownConnection: true });
    open.body.once('error', () => {});
    const connection = connections[usedBy.at(-1)!.connection]!;
    await backend.close();
    await until(() => closed.has(connection), 'the stream\'s connection closes');
    backend = routeBackend(url(''));
  });
});

/**
 * A stream's own connection to an HTTPS backend resumes the TLS session an earlier connection of the route got, as
 * the pool's own connections do: one connector (and its session cache) serves the route's pool and every stream's
 * connection. Each stream's client building a connector of its own meant a full handshake for every stream.
 */
describe('backend connections over TLS: a stream resumes the route\'s session', () => {
  let server: HttpsServer;
  let backend: BackendClient;
  const resumed: boolean[] = [];

  before(async () => {
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keySize: 2048,
      extensions: [
        { name: 'basicConstraints', cA: true },
        { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] },
      ],
    });
    // This test file's process trusts the backend's self-signed certificate, as a deployment trusts its backends' CA.
    setDefaultCACertificates([...getCACertificates('default'), pems.cert]);
    server = createHttpsServer({ key: pems.private, cert: pems.cert }, (request, response) => {
      resumed.push((request.socket as TLSSocket).isSessionReused());
      request.resume();
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.end('event: message\ndata: {}\n\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    backend = routeBackend(`https://localhost:${port}/mcp`);
  });
  after(() => stopBoth(backend, server));

  it('a second stream\'s connection resumes the first one\'s session (no full handshake per stream)', async () => {
    const url = `https://localhost:${(server.address() as AddressInfo).port}/mcp`;
    for (let stream = 0; stream < 3; stream++) {
      const response = await backend.send({ url, method: 'GET', headers: { accept: 'text/event-stream' }, signal: new AbortController().signal, ownConnection: true });
      // TLS 1.3 sends the session ticket after the handshake, ahead of the response: read to its end, it is cached.
      for await (const _ of response.body);
    }
    assert.deepEqual(resumed, [false, true, true]);
  });
});
