import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * Backends that answer and then misbehave, raw over TCP: a body without end behind a refused status, a stream that
 * fails between its headers and its first byte, a legacy stream that names a second message endpoint. The gateway's
 * client gets a 502, never a 500; a refused answer's connection does not outlive its bound; the backend's own URLs
 * never reach the client.
 */
const keyring = createTestKeyring();
let gateway: TestGateway;
const servers: Server[] = [];
/** Resolved when a connection to the endless backend closes (the gateway cut it). */
let endlessClosed: Promise<void>;

const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;

async function rawBackend(onRequest: (socket: Socket) => void): Promise<string> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => onRequest(socket));
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

before(async () => {
  let closedEndless: () => void;
  endlessClosed = new Promise<void>((resolve) => (closedEndless = resolve));
  const endless = await rawBackend((socket) => {
    socket.write('HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n');
    const filler = chunk('x'.repeat(16 * 1024));
    const timer = setInterval(() => socket.write(filler), 1);
    socket.once('close', () => {
      clearInterval(timer);
      closedEndless();
    });
  });
  const resetAfterHeaders = await rawBackend((socket) => {
    // Reset as soon as the headers are written: a timer here raced the gateway's own (relay-response.ts sends the
    // headers alone after HEADERS_ALONE_AFTER_MS), and on a loaded machine fired after it.
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n', () => socket.resetAndDestroy());
  });
  const twoEndpoints = await rawBackend((socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
    socket.write(chunk('event: endpoint\ndata: /messages?sessionId=first\n\n'));
    setTimeout(() => socket.write(chunk('event: endpoint\ndata: http://internal.corp:9000/admin/messages?sessionId=backend-secret\n\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"after"}}\n\n')), 50);
  });
  // The same, with the second endpoint event in a write that also ends an event begun in the write before.
  const splitEndpoints = await rawBackend((socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
    socket.write(chunk('event: endpoint\ndata: /messages?sessionId=first\n\n'));
    setTimeout(() => socket.write(chunk('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"par')), 30);
    setTimeout(() => socket.write(chunk('t":1}}\n\nevent: endpoint\ndata: http://internal.corp:9000/admin/messages?sessionId=backend-secret\n\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"after"}}\n\n')), 60);
  });
  // Legacy backends whose message endpoint refuses the gateway's identity (401) or redirects (302).
  const legacyAnswering = async (status: number, headers: Record<string, string> = {}) => {
    const server = createHttpServer((request, response) => {
      if (request.method === 'GET') {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.write('event: endpoint\ndata: /messages?sessionId=s1\n\n');
        return;
      }
      request.resume();
      response.writeHead(status, headers).end();
    });
    servers.push(server as unknown as Server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const refusing = await legacyAnswering(401);
  const redirecting = await legacyAnswering(302, { location: 'http://169.254.169.254/latest/meta-data/' });
  // Answers the first request of each connection and keeps it open, then drops it when the next request comes: what
  // a server closing an idle connection as the gateway reuses it looks like.
  const closesIdle = await rawBackend((socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok');
    socket.once('data', () => socket.destroy());
  });
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        { path: '/endless', backend: `${endless}/mcp` },
        { path: '/reset', backend: `${resetAfterHeaders}/mcp` },
        { path: '/reset-http', type: 'http', backend: `${resetAfterHeaders}/api` },
        { path: '/legacy', backend: `${twoEndpoints}/mcp`, transports: ['sse'] },
        { path: '/legacy-split', backend: `${splitEndpoints}/mcp`, transports: ['sse'] },
        { path: '/idle', type: 'http', backend: `${closesIdle}/api` },
        { path: '/refusing', backend: `${refusing}/mcp`, transports: ['sse'] },
        { path: '/redirecting', backend: `${redirecting}/mcp`, transports: ['sse'] },
      ],
    },
  });
});

after(async () => {
  await gateway?.close();
  for (const server of servers) {
    server.close();
  }
});

const token = (path: string) => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path });

describe('a backend that misbehaves after it answered', () => {
  it('a refused answer with a body without end: the client has its 502, and the backend connection is cut', { timeout: 30_000 }, async () => {
    const response = await mcpPost(`${gateway.url}/endless`, await token('/endless'), toolsCall('echo'));
    assert.equal(response.status, 502);
    await response.text();
    // Read without a bound, this connection stayed open, and a core busy, for as long as the backend wrote.
    await endlessClosed;
  });

  it('a stream that fails between its headers and its first byte: 502 on an MCP route and on a plain HTTP route, not 500', async () => {
    const mcp = await mcpPost(`${gateway.url}/reset`, await token('/reset'), toolsCall('echo'));
    assert.equal(mcp.status, 502);
    assert.match(((await mcp.json()) as { error: { message: string } }).error.message, /backend of \/reset failed/);
    const http = await fetch(`${gateway.url}/reset-http/x`, { headers: { authorization: `Bearer ${await token('/reset-http')}` } });
    assert.equal(http.status, 502);
    await http.text();
    assert.ok(!gateway.logs.text().includes('unexpected gateway error'), 'a backend failure, not an unexpected one');
  });

  for (const path of ['/legacy', '/legacy-split']) {
    it(`drops a legacy stream's second endpoint event: the backend's own message URL never reaches the client (${path})`, async () => {
      const controller = new AbortController();
      const response = await fetch(`${gateway.url}${path}/sse`, { headers: { authorization: `Bearer ${await token(path)}` }, signal: controller.signal });
      assert.equal(response.status, 200);
      const decoder = new TextDecoder();
      let text = '';
      for await (const part of response.body!) {
        text += decoder.decode(part as Uint8Array, { stream: true });
        if (text.includes('"after"')) break;
      }
      controller.abort();
      assert.match(text, new RegExp(`data: ${gateway.url}${path}/messages\\?sessionId=`));
      assert.ok(!text.includes('internal.corp') && !text.includes('backend-secret'), text);
    });
  }

  it('sends an idempotent request again when its keep-alive connection was closed under it; never a POST', async () => {
    const bearer = `Bearer ${await token('/idle')}`;
    for (let round = 0; round < 3; round++) {
      const response = await fetch(`${gateway.url}/idle/x`, { headers: { authorization: bearer } });
      assert.equal(response.status, 200, `round ${round}`);
      assert.equal(await response.text(), 'ok');
    }
    // A POST on the reused connection is not sent twice (a tool call may have run): the client has its 502.
    const posted = await fetch(`${gateway.url}/idle/x`, { method: 'POST', headers: { authorization: bearer }, body: 'x' });
    assert.equal(posted.status, 502);
    await posted.text();
  });

  for (const [path, status] of [['/refusing', 401], ['/redirecting', 302]] as const) {
    it(`answers a legacy message the backend answers ${status} with the gateway's 502, not the backend's ${status}`, async () => {
      const bearer = await token(path);
      const controller = new AbortController();
      const stream = await fetch(`${gateway.url}${path}/sse`, { headers: { authorization: `Bearer ${bearer}` }, signal: controller.signal });
      // Read without letting go of the stream: the session ends with it.
      const reader = stream.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (!/data: (\S+)\n\n/.test(text)) text += decoder.decode((await reader.read()).value, { stream: true });
      const messages = /data: (\S+)\n\n/.exec(text)![1]!;
      const posted = await mcpPost(messages, bearer, toolsCall('echo'));
      controller.abort();
      assert.equal(posted.status, 502);
      assert.equal(posted.headers.get('location'), null);
      await posted.text();
    });
  }
});

