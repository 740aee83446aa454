import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_REQUEST_TIMEOUT_MSEC } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { configSchema, responseHeadersTimeoutMs } from '../../src/config/schema.ts';
import { confinedMessageUrl } from '../../src/proxy/message-url.ts';
import { createRouteState } from '../../src/proxy/route-state.ts';
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
/** Paths the multi-application backend received message POSTs on. */
const tenantPosts: string[] = [];
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
  // Not MCP either: a redirect the client would follow anywhere; a 2xx other than 200 in another type (a client reads
  // a 201 as a 200); a GET stream that is not SSE (the TypeScript SDK reads it as SSE without looking).
  const redirect = await http((_req, res) => res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end());
  const created = await http((_req, res) => res.writeHead(201, { 'content-type': 'application/x-ndjson' }).end('{"jsonrpc":"2.0","id":4,"result":{}}\n'));
  // A tools/list answer screened on a route with a denied tool is read whole: 17 MB of it is over what is screened.
  const hugeList = await http((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","description":"${'d'.repeat(17 * 1024 * 1024)}"}]}}`);
  });
  const plainStream = await http((req, res) => {
    if (req.method === 'GET') res.writeHead(200, { 'content-type': 'text/plain' }).write('event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[]}}\n\n');
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":4,"result":{}}');
  });
  // A JSON answer cut after its head and part of its body (the gateway collects a JSON answer before sending it).
  const cut = await http((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"jsonrpc":"2.0","id":4,"result":{"content":[');
    setImmediate(() => res.socket?.destroy());
  });
  // A failing server writes about itself: a stack trace, an internal path, a secret.
  const failing = await http((req, res) => {
    const query = new URL(req.url ?? '/', 'http://backend').searchParams;
    const status = Number(query.get('status') ?? 500);
    // `Retry-After` as delta-seconds, or (`?date`) as an HTTP-date 30 s ahead.
    const retryAfter = query.has('date') ? new Date(Date.now() + 30_000).toUTCString() : '7';
    res.writeHead(status, { 'content-type': 'text/plain', 'retry-after': retryAfter }).end('Error: at /srv/app/db.js:42 password=hunter2');
  });
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
  // One server, several applications: each `/<tenant>/sse` announces the message endpoint listed here.
  const tenants = await http((req, res) => {
    const announced: Record<string, string> = {
      '/a/sse': '/admin/messages?sessionId=1',
      '/b/sse': '/b/../admin/messages?sessionId=1',
      '/c/sse': '/b/%2e%2e/admin/messages?sessionId=1',
      '/d/sse': `http://user:secret@${req.headers.host}/d/messages?sessionId=1`,
      '/e/sse': '/e/..%2fadmin/messages?sessionId=1',
      '/f/sse': 'messages?sessionId=1',
      '/g/sse': 'messages?sessionId=1',
      // Below its own directory, but where the plain HTTP route /h-files also reaches: around /tenant-h's policy.
      '/h/sse': '/h/messages?sessionId=1',
    };
    const endpoint = announced[req.url ?? ''];
    if (req.method === 'POST' && req.url?.startsWith('/g/')) {
      return void res.writeHead(500, { 'content-type': 'text/plain' }).end('Error: at /srv/app/db.js:42 password=hunter2');
    }
    if (req.method === 'POST') {
      tenantPosts.push(req.url ?? '');
      return void res.writeHead(202).end();
    }
    if (!endpoint) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`event: endpoint\ndata: ${endpoint}\n\n`);
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
        route('/redirect', redirect),
        route('/created', created),
        route('/plain-stream', plainStream),
        // A group no caller has: the tool is hidden, so every tools/list answer is screened.
        { ...route('/huge-list', hugeList), tools: { secret_tool: { groups: ['admins'] } } },
        route('/cut', cut),
        route('/stream', stream),
        route('/idle', idle, { idleStreamMs: 200 }),
        route('/legacy-html', html, {}, ['sse']),
        route('/legacy-evil', evilLegacy, {}, ['sse']),
        ...[500, 503, 504, 431].map((status) => route(`/failing-${status}`, `${failing}/mcp?status=${status}`)),
        route('/failing-503-date', `${failing}/mcp?status=503&date`),
        ...['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((tenant) => ({ ...route(`/tenant-${tenant}`, `${tenants}/${tenant}/mcp`, {}, ['sse']), legacySsePath: `/${tenant}/sse` })),
        { path: '/h-files', type: 'http', backend: `${tenants}/h/messages` },
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
    ['/cut', 502],
    ['/redirect', 502],
    ['/created', 502],
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

describe('the default wait for a backend\'s response headers', () => {
  it('outlasts what MCP clients wait for a tool call themselves, so a long tool answered in JSON is not cut at the gateway', () => {
    // A backend answering tools/call with JSON sends its headers only when the tool has finished: 30 s cut every
    // longer tool with a 504 that a direct connection never gave. The client's own give-up aborts the backend request.
    const [mcp, http, set] = configSchema.parse({
      routes: [
        { path: '/mcp', backend: 'http://127.0.0.1:9/mcp' },
        { path: '/rest', type: 'http', backend: 'http://127.0.0.1:9/rest' },
        { path: '/set', backend: 'http://127.0.0.1:9/set', timeouts: { responseHeadersMs: 1_234 } },
      ],
    }).routes;
    const pythonSdkReadTimeoutMs = 300_000; // mcp.shared._httpx_utils.MCP_DEFAULT_SSE_READ_TIMEOUT
    assert.ok(responseHeadersTimeoutMs(mcp!) >= DEFAULT_REQUEST_TIMEOUT_MSEC);
    assert.ok(responseHeadersTimeoutMs(mcp!) >= pythonSdkReadTimeoutMs);
    // A REST API behind a plain HTTP route waits as a reverse proxy does; a route's own setting wins.
    assert.equal(responseHeadersTimeoutMs(http!), 60_000);
    assert.equal(responseHeadersTimeoutMs(set!), 1_234);
  });
});

describe('a tools/list answer larger than the gateway screens', () => {
  it('is a 502, not held in memory whole however large', async () => {
    const response = await mcpPost(`${gateway.url}/huge-list`, await token('/huge-list'), { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(response.status, 502);
    assert.match(((await response.json()) as { error: { message: string } }).error.message, /a message larger than the gateway screens/);
  });
});

describe('a GET stream that is not SSE', () => {
  it('is a 502: neither relayed unscreened nor left open outside grant revocation', async () => {
    const response = await fetch(`${gateway.url}/plain-stream`, { headers: { authorization: `Bearer ${await token('/plain-stream')}`, accept: 'text/event-stream' } });
    assert.equal(response.status, 502);
    const body = (await response.json()) as { error: { message: string } };
    assert.match(body.error.message, /\/plain-stream answered with a stream that is not SSE/);
  });
});

describe('a backend answering 5xx', () => {
  it("503 with Retry-After as an HTTP-date: the client gets the seconds left (RFC 9110 §10.2.3 allows both forms)", async () => {
    const path = '/failing-503-date';
    const response = await mcpPost(gateway.url + path, await token(path), toolsCall('echo', { text: 'x' }, 9));
    assert.equal(response.status, 503);
    const seconds = Number(response.headers.get('retry-after'));
    assert.ok(seconds >= 25 && seconds <= 31, `retry-after ${response.headers.get('retry-after')}`);
    await response.body?.cancel();
  });

  const cases: Array<[number, number]> = [
    [500, 502],
    [503, 503],
    [504, 504],
  ];
  for (const [backendStatus, status] of cases) {
    it(`${backendStatus}: the client gets ${status} and the gateway's own JSON-RPC error, never the backend's body`, async () => {
      const path = `/failing-${backendStatus}`;
      const response = await mcpPost(gateway.url + path, await token(path), toolsCall('echo', { text: 'x' }, 9));
      assert.equal(response.status, status);
      assert.equal(response.headers.get('retry-after'), backendStatus === 503 ? '7' : null);
      const text = await response.text();
      assert.ok(!/hunter2|srv\/app|db\.js/.test(text), text);
      const body = JSON.parse(text) as { id: number; error: { message: string } };
      assert.equal(body.id, 9);
      assert.ok(body.error.message.includes(path), body.error.message);
      assert.ok(!gateway.logs.text().includes('hunter2'), 'the backend body is not logged either');
    });
  }

  it("431 (headers too large): a 502, the gateway's request being what the backend refused, not the client's", async () => {
    const path = '/failing-431';
    const response = await mcpPost(gateway.url + path, await token(path), toolsCall('echo', { text: 'x' }, 12));
    assert.equal(response.status, 502);
    const body = (await response.json()) as { error: { message: string } };
    assert.match(body.error.message, /refused the gateway's request headers as too large/);
  });

  it('on a legacy message POST too', async () => {
    const response = await fetch(gateway.url + '/tenant-g/sse', { headers: { authorization: `Bearer ${await token('/tenant-g')}` } });
    const reader = response.body!.getReader();
    let text = '';
    while (!/data: (\S+)/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
    const messages = /data: (\S+)/.exec(text)![1]!;
    const post = await mcpPost(messages, await token('/tenant-g'), toolsCall('echo', { text: 'x' }, 11));
    assert.equal(post.status, 502);
    assert.ok(!(await post.text()).includes('hunter2'));
    await reader.cancel();
  });
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

describe('legacy SSE message endpoints stay under the SSE endpoint\'s directory on the backend', () => {
  /** The stream up to its first event (or its end); `close` ends it (and with it the gateway's session). */
  function firstEvent(path: string, bearer: string): Promise<{ status: number; text: string; close: () => void }> {
    return new Promise((resolve, reject) => {
      const req = request(`${gateway.url}${path}`, { headers: { authorization: `Bearer ${bearer}` }, agent: false }, (res) => {
        let text = '';
        const done = () => resolve({ status: res.statusCode ?? 0, text, close: () => req.destroy() });
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          if (text.includes('\n\n')) done();
        });
        res.once('end', done);
        res.once('error', done);
      });
      req.once('error', reject);
      req.end();
    });
  }

  for (const tenant of ['a', 'b', 'c', 'd', 'e', 'h']) {
    it(`refuses the endpoint the backend at /${tenant}/sse names`, async () => {
      const { status, text, close } = await firstEvent(`/tenant-${tenant}/sse`, await token(`/tenant-${tenant}`));
      close();
      // Refused before the first byte (502) or, had the stream already started, cut off: never relayed.
      assert.ok(status === 502 || status === 200, String(status));
      assert.ok(!text.includes('event: endpoint'), text);
    });
  }

  it('relays an endpoint below the SSE endpoint\'s directory and posts messages there', async () => {
    const bearer = await token('/tenant-f');
    const { status, text, close } = await firstEvent('/tenant-f/sse', bearer);
    assert.equal(status, 200);
    const publicUrl = /data: (\S+)/.exec(text)?.[1];
    assert.ok(publicUrl, text);
    assert.ok(publicUrl.startsWith(`${gateway.url}/tenant-f/messages?sessionId=`), text);
    const posted = await mcpPost(publicUrl, bearer, toolsCall('echo'));
    assert.equal(posted.status, 202);
    await posted.text();
    assert.deepEqual(tenantPosts, ['/f/messages?sessionId=1']);
    close();
  });

  it('confinedMessageUrl accepts only the backend\'s own URLs below the SSE directory', () => {
    const sse = 'http://backend.internal:3001/apps/one/sse';
    assert.equal(confinedMessageUrl(sse, '/apps/one/messages?sessionId=x#f'), 'http://backend.internal:3001/apps/one/messages?sessionId=x');
    assert.equal(confinedMessageUrl(sse, 'messages/?sessionId=x'), 'http://backend.internal:3001/apps/one/messages/?sessionId=x');
    for (const announced of ['/apps/two/messages', '../two/messages', '/apps/one/..\\two/messages', '/apps/one/%2e%2e/two', 'http://other:3001/apps/one/m', 'https://backend.internal:3001/apps/one/m', '//evil.example/apps/one/m', '/apps/one/x%2f..%2f..%2ftwo', '/apps/one/m%00']) {
      assert.equal(confinedMessageUrl(sse, announced), undefined, announced);
    }
  });

  it("a route's remembered message URLs judge as confinedMessageUrl does, the second time and after the memory is full", () => {
    const [route] = configSchema.parse({ routes: [{ path: '/one', backend: 'http://backend.internal:3001/apps/one/mcp', legacySsePath: '/apps/one/sse' }] }).routes;
    const state = createRouteState('https://gw.example', route!);
    const outside = '//evil.example/apps/one/m';
    for (let round = 0; round < 2; round++) {
      assert.equal(state.messageUrl(outside), undefined);
      assert.equal(state.messageUrl('/apps/one/messages?sessionId=x'), 'http://backend.internal:3001/apps/one/messages?sessionId=x');
    }
    for (let session = 0; session < 1500; session++) assert.equal(state.messageUrl(`/apps/one/messages?sessionId=${session}`), `http://backend.internal:3001/apps/one/messages?sessionId=${session}`);
    assert.equal(state.messageUrl(outside), undefined);
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
