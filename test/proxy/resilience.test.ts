import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * Backends that misbehave — down, hanging, resetting, speaking garbage — and clients that do (slow loris,
 * disconnecting mid-stream). The gateway answers each with the right status and a JSON-RPC error naming the route,
 * and never hangs.
 */
const keyring = createTestKeyring();
let gateway: TestGateway;
const servers: Array<Server | TcpServer> = [];
const sockets = new Set<Socket>();
const streamEvents: string[] = [];
let resolveStreamClosed: () => void;
const streamClosed = new Promise<void>((resolve) => (resolveStreamClosed = resolve));

async function listen(server: Server | TcpServer): Promise<string> {
  servers.push(server);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const http = (handler: (req: IncomingMessage, res: ServerResponse) => void) => listen(createServer(handler));
const tcp = (onData: (socket: Socket) => void) => listen(createTcpServer((socket) => socket.once('data', () => onData(socket))));

before(async () => {
  const down = await http(() => {});
  await new Promise<void>((resolve) => (servers.pop() as Server).close(() => resolve()));
  const hang = await http(() => {});
  const reset = await tcp((socket) => socket.resetAndDestroy());
  const garbage = await tcp((socket) => socket.end('this is not HTTP at all\r\n\r\n'));
  const html = await http((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>hi</h1>'));
  const stream = await http((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(': keep-alive\n\n');
    res.write('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n');
    req.once('close', () => {
      streamEvents.push('backend saw the client leave');
      resolveStreamClosed();
    });
  });
  const idle = await http((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(': first\n\n');
  });
  const evilLegacy = await http((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(': hello\n\nevent: endpoint\ndata: http://169.254.169.254/latest/meta-data\n\n');
  });
  const route = (path: string, backend: string, timeouts: Record<string, number> = {}, transports = ['streamable-http']) => ({
    path,
    backend,
    transports,
    timeouts: { connectMs: 1_000, responseHeadersMs: 300, idleStreamMs: 60_000, requestBodyMs: 300, ...timeouts },
  });
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        route('/down', down),
        route('/hang', hang),
        route('/reset', reset),
        route('/garbage', garbage),
        route('/html', html),
        route('/stream', stream),
        route('/idle', idle, { idleStreamMs: 200 }),
        route('/legacy-html', html, {}, ['sse']),
        route('/legacy-evil', evilLegacy, {}, ['sse']),
      ],
    },
  });
});

after(async () => {
  await gateway?.close();
  for (const socket of sockets) socket.destroy();
  for (const server of servers) await new Promise<void>((resolve) => server.close(() => resolve()));
});

const token = (path: string) => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path });

describe('backend failures', () => {
  const cases: Array<[string, number]> = [
    ['/down', 502],
    ['/hang', 504],
    ['/reset', 502],
    ['/garbage', 502],
    ['/html', 502],
  ];
  for (const [path, status] of cases) {
    it(`answers ${status} with a JSON-RPC error naming the route when the backend at ${path} fails`, async () => {
      const response = await mcpPost(gateway.url + path, await token(path), toolsCall('echo', { text: 'x' }, 4));
      assert.equal(response.status, status);
      const body = (await response.json()) as { jsonrpc: string; id: number; error: { code: number; message: string } };
      assert.equal(body.jsonrpc, '2.0');
      assert.equal(body.id, 4);
      assert.ok(body.error.message.includes(path), body.error.message);
      assert.ok(!body.error.message.includes('127.0.0.1'), 'no backend address leaks');
    });
  }
});

describe('streams', () => {
  it('passes SSE keep-alive comments through unbuffered and aborts the backend when the client leaves', async () => {
    const controller = new AbortController();
    const response = await fetch(gateway.url + '/stream', {
      headers: { authorization: `Bearer ${await token('/stream')}`, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-accel-buffering'), 'no');
    const reader = response.body!.getReader();
    let received = '';
    while (!received.includes('notifications/progress')) {
      const { value, done } = await reader.read();
      if (done) break;
      received += Buffer.from(value).toString();
    }
    assert.ok(received.startsWith(': keep-alive\n\n'), received);
    controller.abort();
    await streamClosed;
    assert.deepEqual(streamEvents, ['backend saw the client leave']);
  });

  it('closes a stream idle for longer than idleStreamMs', async () => {
    const response = await fetch(gateway.url + '/idle', {
      headers: { authorization: `Bearer ${await token('/idle')}`, accept: 'text/event-stream' },
    });
    assert.equal(response.status, 200);
    const text = await response.text().catch(() => 'stream ended with an error');
    assert.ok(text.startsWith(': first') || text === 'stream ended with an error', text);
  });
});

describe('legacy SSE backends', () => {
  it('answers 502 when the backend does not open an SSE stream', async () => {
    const response = await fetch(gateway.url + '/legacy-html/sse', { headers: { authorization: `Bearer ${await token('/legacy-html')}` } });
    assert.equal(response.status, 502);
    assert.match(((await response.json()) as { error: { message: string } }).error.message, /\/legacy-html/);
  });

  it('never relays an endpoint on another origin (the gateway must not POST elsewhere)', async () => {
    const response = await fetch(gateway.url + '/legacy-evil/sse', { headers: { authorization: `Bearer ${await token('/legacy-evil')}` } });
    // Refused before the first byte (502) or, had the stream already started, cut off: never relayed.
    assert.ok(response.status === 502 || response.status === 200, String(response.status));
    const text = await response.text().catch(() => 'stream aborted');
    assert.ok(!text.includes('169.254.169.254'), text);
    assert.ok(!text.includes('event: endpoint'), text);
  });
});

describe('slow clients', () => {
  it('answers 408 when a body trickles in slower than requestBodyMs (slow loris)', async () => {
    const url = new URL(gateway.url);
    const socket = connect(Number(url.port), url.hostname);
    sockets.add(socket);
    const bearer = await token('/hang');
    const answer = new Promise<string>((resolve) => {
      let data = '';
      socket.on('data', (chunk) => (data += chunk.toString()));
      socket.on('close', () => resolve(data));
    });
    socket.write(
      `POST /hang HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${bearer}\r\nContent-Type: application/json\r\n` +
        'Content-Length: 1000\r\nConnection: close\r\n\r\n{"jsonrpc":',
    );
    const response = await answer;
    assert.match(response, /^HTTP\/1\.1 408 /);
  });
});
