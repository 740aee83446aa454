import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { revokeGrant } from '../../src/grants/revoked-grants.ts';
import { createMetrics, type GatehouseMetrics } from '../../src/observability/metrics.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * Every relayed stream, from both ends: who opens it (never a HEAD), when the client sees its headers (at once, not
 * with the first event), how it is counted in `gatehouse_open_streams` (up once when it starts, down once however it
 * ends: client close, backend close, backend error, shutdown), and how its end is audited (a client leaving is
 * `client_closed`, not a backend error). Also bodiless POSTs, which must be a JSON-RPC parse error, not a crash.
 */
const keyring = createTestKeyring();
let backend: Server;
let gateway: TestGateway;
let metrics: GatehouseMetrics;
/** Requests the backend received, as `METHOD path`. */
const seen: string[] = [];
/** Backend responses still open, so a test can end one from the backend side. */
const held = new Set<ServerResponse>();
/** The next gated stream waits on this before sending its first byte. */
let gate: { release: () => void; opened: Promise<void>; wroteFirstByte: boolean } | undefined;

function backendHandler(request: IncomingMessage, response: ServerResponse): void {
  const path = new URL(request.url ?? '/', 'http://backend').pathname;
  seen.push(`${request.method} ${path}`);
  held.add(response);
  response.once('close', () => held.delete(response));
  if (request.method === 'POST') {
    request.resume();
    request.once('end', () => response.writeHead(202).end());
    return;
  }
  if (path === '/hang') return; // never answers: the client gives up while the gateway waits for headers
  response.writeHead(200, { 'content-type': 'text/event-stream' });
  if (path === '/sse') {
    response.write('event: endpoint\ndata: /messages?session=b1\n\n');
    return;
  }
  if (path === '/gated' && gate) {
    const current = gate;
    // Headers go out now; the first event only once the test has seen them arrive.
    response.flushHeaders();
    void current.opened.then(() => {
      current.wroteFirstByte = true;
      response.write(': first\n\n');
    });
    return;
  }
  response.write(': open\n\n');
  if (path === '/ends') setImmediate(() => response.end());
}

before(async () => {
  backend = createServer(backendHandler);
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  metrics = createMetrics({ clock: systemClock });
  gateway = await startTestGateway({
    keyring,
    metrics,
    config: {
      routes: [
        { path: '/mcp', backend: `${origin}/mcp`, transports: ['streamable-http', 'sse'], timeouts: { requestBodyMs: 200 } },
        { path: '/gated', backend: `${origin}/gated` },
        { path: '/ends', backend: `${origin}/ends` },
        { path: '/hang', backend: `${origin}/hang` },
        { path: '/quick', backend: `${origin}/quick` },
        { path: '/few', backend: `${origin}/few`, transports: ['streamable-http', 'sse'], rateLimit: { streamsPerUser: 2 } },
      ],
    },
  });
});

after(async () => {
  await gateway?.close();
  for (const response of held) response.destroy();
  await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
});

const token = (path: string) => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path });
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

async function openStreams(route: string, transport: string): Promise<number> {
  const { values } = await metrics.registry.getSingleMetric('gatehouse_open_streams')!.get();
  return values.find((value) => value.labels.route === route && value.labels.transport === transport)?.value ?? 0;
}

async function untilOpenStreams(route: string, transport: string, expected: number): Promise<void> {
  while ((await openStreams(route, transport)) !== expected) await settle();
}

/** Waits for the audit record of the request that matches `test`. */
async function auditRecord(test: (record: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (;;) {
    const found = gateway.auditLines.map((line) => JSON.parse(line) as Record<string, unknown>).find(test);
    if (found) return found;
    await settle();
  }
}

async function openStream(path: string): Promise<{ response: Response; controller: AbortController }> {
  const controller = new AbortController();
  const response = await fetch(gateway.url + path, {
    headers: { authorization: `Bearer ${await token(path.replace(/\/sse$/, ''))}`, accept: 'text/event-stream' },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  return { response, controller };
}

/** A request written by hand, for framings fetch() cannot produce (a POST with no body and no length). */
function rawRequest(head: string): Promise<string> {
  const url = new URL(gateway.url);
  const socket = connect(Number(url.port), url.hostname);
  socket.write(`${head}Host: ${url.host}\r\nConnection: close\r\n\r\n`);
  return new Promise<string>((resolve, reject) => {
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.once('close', () => resolve(data));
    socket.once('error', reject);
  });
}

describe('a POST without a body', () => {
  it('answers 400 with a JSON-RPC parse error, on Content-Length: 0 and with no body at all', async () => {
    const bearer = await token('/mcp');
    const empty = await mcpPost(gateway.url + '/mcp', bearer, '');
    assert.equal(empty.status, 400);
    assert.equal(((await empty.json()) as { error: { code: number } }).error.code, -32700);
    const bodiless = await rawRequest(`POST /mcp HTTP/1.1\r\nAuthorization: Bearer ${bearer}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n`);
    assert.match(bodiless, /^HTTP\/1\.1 400 /);
    assert.match(bodiless, /"code":-32700/);
    // The route's body deadline (200 ms) passes: a timer left behind by the refused read would now crash the process.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const next = await mcpPost(gateway.url + '/mcp', bearer, '');
    assert.equal(next.status, 400);
  });

  it('answers 400 on the legacy messages endpoint too', async () => {
    const { response, controller } = await openStream('/mcp/sse');
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const messages = new URL(/data: (\S+)/.exec(first)![1]!);
    const bearer = await token('/mcp');
    const empty = await fetch(messages, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: '' });
    assert.equal(empty.status, 400);
    assert.equal(((await empty.json()) as { error: { code: number } }).error.code, -32700);
    const bodiless = await rawRequest(`POST ${messages.pathname}${messages.search} HTTP/1.1\r\nAuthorization: Bearer ${bearer}\r\nContent-Type: application/json\r\n`);
    assert.match(bodiless, /^HTTP\/1\.1 400 /);
    assert.match(bodiless, /"code":-32700/);
    controller.abort();
  });
});

describe('HEAD', () => {
  for (const path of ['/mcp/sse', '/mcp']) {
    it(`on ${path} answers 405 and opens no backend stream`, async () => {
      const before = seen.length;
      const response = await fetch(gateway.url + path, { method: 'HEAD', headers: { authorization: `Bearer ${await token('/mcp')}` } });
      assert.equal(response.status, 405);
      assert.match(response.headers.get('allow') ?? '', /GET/);
      assert.deepEqual(seen.slice(before), []);
      assert.equal(await openStreams('/mcp', 'sse'), 0);
      assert.equal(await openStreams('/mcp', 'streamable-http'), 0);
    });
  }
});

describe('methods an MCP endpoint does not serve', () => {
  // They were 404, as if nothing were there; RFC 9110 §15.5.6 asks for 405 with the methods that are served.
  for (const [method, path, allow] of [
    ['PUT', '/mcp', 'GET, POST, DELETE, OPTIONS'],
    ['PATCH', '/mcp', 'GET, POST, DELETE, OPTIONS'],
    ['POST', '/mcp/sse', 'GET, OPTIONS'],
    ['DELETE', '/mcp/sse', 'GET, OPTIONS'],
    ['GET', '/mcp/messages', 'POST, OPTIONS'],
    ['PUT', '/mcp/messages', 'POST, OPTIONS'],
  ] as const) {
    it(`answers ${method} ${path} with 405, Allow: ${allow}, as a JSON-RPC error, and reaches no backend`, async () => {
      const before = seen.length;
      const response = await fetch(gateway.url + path, { method, headers: { authorization: `Bearer ${await token('/mcp')}`, 'content-type': 'application/json' }, ...(method === 'GET' ? {} : { body: '{}' }) });
      assert.equal(response.status, 405);
      assert.equal(response.headers.get('allow'), allow);
      assert.equal(((await response.json()) as { jsonrpc: string }).jsonrpc, '2.0');
      assert.deepEqual(seen.slice(before), []);
    });
  }
  // Written by hand: fetch refuses to send TRACE. PROPFIND and SEARCH, which Fastify does not route by itself, were a
  // 404 on every MCP endpoint, as if nothing were there; on a path that does not exist they still are.
  for (const [method, path, status] of [
    ['TRACE', '/mcp', 405],
    ['TRACE', '/mcp/sse', 405],
    ['TRACE', '/mcp/messages', 405],
    ['PROPFIND', '/mcp', 405],
    ['SEARCH', '/mcp/sse', 405],
    ['M-SEARCH', '/mcp/messages', 405],
    ['PROPFIND', '/nowhere', 404],
  ] as const) {
    it(`answers ${method} ${path} with ${status}, and reaches no backend`, async () => {
      const before = seen.length;
      const answer = await rawRequest(`${method} ${path} HTTP/1.1\r\nAuthorization: Bearer ${await token('/mcp')}\r\n`);
      assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), answer);
      if (status === 405) assert.match(answer, /\r\nallow: /i);
      assert.doesNotMatch(answer, /eyJ/, 'TRACE never echoes the request back');
      assert.deepEqual(seen.slice(before), []);
    });
  }
});

describe('a grant ended while its streams are open', () => {
  // Each request is checked against the revoked grants, but a stream is one request: it went on carrying server
  // messages after the revocation, until the idle timeout (or for ever with a backend's keep-alives).
  const streamOf = async (path: string, gid: string) => {
    const controller = new AbortController();
    const response = await fetch(gateway.url + path, {
      headers: { authorization: `Bearer ${await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp`, gid })}`, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    await reader.read();
    // Resolves when the stream ends, whichever way (a cut is an error for fetch).
    const ended = (async () => {
      try {
        while (!(await reader.read()).done);
      } catch {
        // cut
      }
    })();
    return { controller, ended };
  };

  it('cuts every stream of that grant, on both transports, audited server_closed, and leaves other grants\' streams open', { timeout: 10_000 }, async () => {
    const modern = await streamOf('/mcp', 'grant-revoked-live');
    const legacy = await streamOf('/mcp/sse', 'grant-revoked-live');
    const other = await streamOf('/mcp', 'grant-kept');
    let otherEnded = false;
    void other.ended.then(() => (otherEnded = true));
    await untilOpenStreams('/mcp', 'streamable-http', 2);
    await untilOpenStreams('/mcp', 'sse', 1);

    await revokeGrant(gateway.store, 'grant-revoked-live', { ttlSeconds: 600 });
    await Promise.all([modern.ended, legacy.ended]);
    await untilOpenStreams('/mcp', 'streamable-http', 1);
    await untilOpenStreams('/mcp', 'sse', 0);
    const cut = await auditRecord((record) => record.reason === 'grant ended' && record.method === 'sse/connect');
    assert.equal(cut.outcome, 'server_closed');
    // A Streamable HTTP stream carries no JSON-RPC method: it is named for the trail, as the legacy one is.
    const listened = await auditRecord((record) => record.reason === 'grant ended' && record.method === 'stream/listen');
    assert.equal(listened.outcome, 'server_closed');
    assert.equal(otherEnded, false, "another grant's stream stays open");
    other.controller.abort();
    await untilOpenStreams('/mcp', 'streamable-http', 0);
  });
});

describe("a user's stream budget", () => {
  // Each stream holds two sockets for up to the idle timeout; the per-minute budget let one user hold thousands.
  it('refuses a GET beyond rateLimit.streamsPerUser open streams with 429, before reaching the backend, and counts one closed', async () => {
    const sub = 'tenant/hoarder';
    const open = async (path: string) => {
      const controller = new AbortController();
      const response = await fetch(gateway.url + path, {
        headers: { authorization: `Bearer ${await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/few`, sub })}`, accept: 'text/event-stream' },
        signal: controller.signal,
      });
      return { response, controller };
    };
    const first = await open('/few');
    const second = await open('/few/sse');
    assert.deepEqual([first.response.status, second.response.status], [200, 200]);
    await untilOpenStreams('/few', 'streamable-http', 1);
    await untilOpenStreams('/few', 'sse', 1);
    const before = seen.length;
    const third = await open('/few');
    assert.equal(third.response.status, 429);
    assert.ok(Number(third.response.headers.get('retry-after')) > 0);
    assert.match(((await third.response.json()) as { error: { message: string } }).error.message, /2 streams open/);
    // A 2026-07-28 listening stream (a POST) takes a place as a GET does.
    const listen = await fetch(gateway.url + '/few', {
      method: 'POST',
      headers: { authorization: `Bearer ${await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/few`, sub })}`, accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'subscriptions/listen', params: { notifications: {} } }),
    });
    assert.equal(listen.status, 429);
    await listen.body?.cancel();
    assert.deepEqual(seen.slice(before), [], 'the backend was not asked');
    // Another user is not held to this one's streams.
    const other = await fetch(`${gateway.url}/few`, {
      headers: { authorization: `Bearer ${await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/few`, sub: 'tenant/other' })}`, accept: 'text/event-stream' },
    });
    assert.equal(other.status, 200);
    await other.body?.cancel();

    // Streams on another route are that route's.
    const elsewhere = await fetch(`${gateway.url}/mcp`, {
      headers: { authorization: `Bearer ${await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub })}`, accept: 'text/event-stream' },
    });
    assert.equal(elsewhere.status, 200);
    await elsewhere.body?.cancel();

    first.controller.abort();
    await untilOpenStreams('/few', 'streamable-http', 0);
    const again = await open('/few');
    assert.equal(again.response.status, 200, 'a closed stream gives its place back');
    again.controller.abort();
    second.controller.abort();
    await untilOpenStreams('/few', 'sse', 0);
    await untilOpenStreams('/few', 'streamable-http', 0);

    // Requests arriving together cannot all pass before any is counted: a place is taken on admission.
    const burst = await Promise.all(Array.from({ length: 6 }, () => open('/few')));
    assert.deepEqual(burst.map(({ response }) => response.status).sort(), [200, 200, 429, 429, 429, 429]);
    for (const { response, controller } of burst) {
      if (response.status === 200) controller.abort();
      else await response.body?.cancel();
    }
  });
});

describe('stream headers', () => {
  it('reach the client before the backend has sent a byte of the body', { timeout: 10_000 }, async () => {
    let release = () => {};
    const opened = new Promise<void>((resolve) => (release = resolve));
    gate = { release, opened, wroteFirstByte: false };
    const { response, controller } = await openStream('/gated');
    assert.equal(gate.wroteFirstByte, false);
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    assert.equal(await openStreams('/gated', 'streamable-http'), 1, 'a started stream is counted before its first event');
    gate.release();
    const reader = response.body!.getReader();
    assert.equal(new TextDecoder().decode((await reader.read()).value), ': first\n\n');
    controller.abort();
    await untilOpenStreams('/gated', 'streamable-http', 0);
  });
  it('go out in the same socket write as a first event that follows at once', async () => {
    // Every write the gateway's socket of this connection hands to the kernel (the handle's write calls).
    const writes: string[] = [];
    const count = (socket: Socket) => {
      const handle = (socket as unknown as { _handle: Record<string, (...args: unknown[]) => unknown> })._handle;
      for (const name of ['writev', 'writeBuffer', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString']) {
        const original = handle[name]!;
        handle[name] = function (this: unknown, ...args: unknown[]) {
          writes.push(name);
          return original.apply(this, args);
        };
      }
    };
    gateway.app.server.once('connection', count);
    const url = new URL(gateway.url);
    const socket = connect(Number(url.port), url.hostname);
    socket.write(`GET /quick HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${await token('/quick')}\r\nAccept: text/event-stream\r\n\r\n`);
    let received = '';
    for await (const chunk of socket) {
      received += (chunk as Buffer).toString();
      if (received.includes(': open')) break;
    }
    socket.destroy();
    assert.match(received, /^HTTP\/1\.1 200 [^]*text\/event-stream[^]*: open/);
    assert.deepEqual(writes, ['writev'], 'the status line, the headers and the first event in one write');
  });
});

describe('stream ends', () => {
  it('a stream the backend ends normally is counted down once', async () => {
    const { response } = await openStream('/ends');
    assert.equal(await response.text(), ': open\n\n');
    await untilOpenStreams('/ends', 'streamable-http', 0);
    // Counted down exactly once: a second decrement would leave the gauge below zero.
    await auditRecord((record) => record.route === '/ends');
    assert.equal(await openStreams('/ends', 'streamable-http'), 0);
  });

  it('a client closing its stream is audited as client_closed, not as an error, and cancels the backend request', async () => {
    const { response, controller } = await openStream('/mcp/sse');
    await response.body!.getReader().read();
    const backendStreams = held.size;
    controller.abort();
    const record = await auditRecord((entry) => entry.method === 'sse/connect' && entry.outcome !== 'allowed');
    assert.equal(record.outcome, 'client_closed');
    while (held.size !== backendStreams - 1) await settle();
    await untilOpenStreams('/mcp', 'sse', 0);
  });

  it('a client giving up while the gateway waits for backend headers is client_closed, logged without a warning', async () => {
    const before = seen.filter((entry) => entry === 'GET /hang').length;
    const controller = new AbortController();
    const answer = fetch(gateway.url + '/hang', { headers: { authorization: `Bearer ${await token('/hang')}` }, signal: controller.signal }).catch(
      (error: unknown) => error,
    );
    while (seen.filter((entry) => entry === 'GET /hang').length === before) await settle();
    controller.abort();
    await answer;
    const record = await auditRecord((entry) => entry.route === '/hang');
    assert.equal(record.outcome, 'client_closed');
    // The backend request is cancelled with the client's.
    while ([...held].some((response) => !response.destroyed && response.req.url === '/hang')) await settle();
    assert.equal(gateway.logs.text().includes('bad_gateway'), false, 'a client leaving is no gateway error');
  });
});

describe('what a proxied request leaves on its response', () => {
  it("no wait on the reply: Fastify's reply.then (an end-of-stream watcher for an open stream's whole life) is never called", async () => {
    // Fastify's own Reply prototype, loaded from the path Fastify loads it from (the same module instance).
    const require = createRequire(import.meta.url);
    const { prototype } = require(join(dirname(require.resolve('fastify')), 'lib', 'reply.js')) as { prototype: { then: (...args: unknown[]) => unknown } };
    const original = prototype.then;
    const waitedOn: string[] = [];
    // oxlint-disable-next-line unicorn/no-thenable -- wrapping Fastify's own `then`, restored below
    prototype.then = function (this: { request: { url: string } }, ...args: unknown[]) {
      waitedOn.push(`${(this.request as { method?: string }).method} ${this.request.url}`);
      return original.apply(this, args);
    };
    try {
      const stream = await openStream('/mcp');
      await stream.response.body!.getReader().read();
      const legacy = await openStream('/mcp/sse');
      await legacy.response.body!.getReader().read();
      const post = await mcpPost(`${gateway.url}/mcp`, await token('/mcp'), { jsonrpc: '2.0', method: 'notifications/initialized' });
      assert.equal(post.status, 202);
      const refused = await fetch(`${gateway.url}/mcp`, { headers: { accept: 'text/event-stream' } });
      assert.equal(refused.status, 401);
      stream.controller.abort();
      legacy.controller.abort();
      assert.deepEqual(waitedOn, []);
    } finally {
      // oxlint-disable-next-line unicorn/no-thenable -- restoring Fastify's own `then`
      prototype.then = original;
    }
  });
});

describe('shutdown', () => {
  it('counts down the streams it cuts', async () => {
    const local = createMetrics({ clock: systemClock });
    const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    const second = await startTestGateway({ keyring, metrics: local, config: { routes: [{ path: '/mcp', backend: `${origin}/mcp` }] } });
    const bearer = await mintAccessToken(keyring, second.url, { aud: `${second.url}/mcp` });
    const response = await fetch(`${second.url}/mcp`, { headers: { authorization: `Bearer ${bearer}`, accept: 'text/event-stream' } });
    const gauge = async () => (await local.registry.getSingleMetric('gatehouse_open_streams')!.get()).values[0]?.value ?? 0;
    assert.equal(await gauge(), 1);
    const closing = second.close();
    // What graceful shutdown does once the grace period is over.
    second.app.server.closeAllConnections();
    await closing;
    await response.text().catch(() => 'cut');
    assert.equal(await gauge(), 0);
  });
});
