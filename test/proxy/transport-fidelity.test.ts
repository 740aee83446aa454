import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { createParser } from 'eventsource-parser';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * What the MCP transports carry must cross the gateway unchanged: SSE priming events and `retry:`, `Last-Event-ID`
 * resumption, list-changed notifications, server-to-client requests (sampling, elicitation in form and URL mode,
 * roots) and their answers on Streamable HTTP and legacy SSE, cancellation by closing a 2026-07-28 response,
 * `Mcp-Param-*` headers, large responses (streamed, not buffered) and non-ASCII tool names in `Mcp-Name`.
 *
 * The backend is scripted at the wire level (node:http) so the test controls every byte and sees every request.
 */
const keyring = createTestKeyring();
let gateway: TestGateway;
let backend: Server;
const MB = 1024 * 1024;

/** What the backend saw, and hooks the tests wait on. */
const seen = {
  requests: [] as Array<{ method: string; path: string; headers: IncomingHttpHeaders; body: Record<string, unknown> | undefined }>,
  answers: [] as Array<Record<string, unknown>>,
  closed: new Set<string>(),
  waiters: [] as Array<() => void>,
};
const changed = () => seen.waiters.splice(0).forEach((wake) => wake());
/** Resolves once `condition` holds (checked at every backend event); fails the test with `what` after 10 s. */
function until(what: string, condition: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the backend never saw: ${what}`)), 10_000);
    const check = () => {
      if (condition()) {
        clearTimeout(timer);
        resolve();
      } else seen.waiters.push(check);
    };
    check();
  });
}

const rpc = (message: Record<string, unknown>) => `data: ${JSON.stringify({ jsonrpc: '2.0', ...message })}\n\n`;
const SERVER_REQUESTS = [
  { id: 'srv-sampling', method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 5 } },
  { id: 'srv-elicit-form', method: 'elicitation/create', params: { mode: 'form', message: 'Your name?', requestedSchema: { type: 'object', properties: { name: { type: 'string' } } } } },
  { id: 'srv-elicit-url', method: 'elicitation/create', params: { mode: 'url', message: 'Connect your account', url: 'https://example.test/connect', elicitationId: 'e-1' } },
  { id: 'srv-roots', method: 'roots/list', params: {} },
];
const answered = (ids: readonly string[]) => ids.every((id) => seen.answers.some((answer) => answer.id === id));
let legacyStream: ServerResponse | undefined;
let sessions = 0;

async function readBody(request: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>) : undefined;
}

async function answerStreamableCall(request: IncomingMessage, response: ServerResponse, body: Record<string, unknown>): Promise<void> {
  const name = (body.params as { name?: string } | undefined)?.name;
  const sse = () => response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const result = (value: unknown) => rpc({ id: body.id, result: value });
  if (body.method === 'initialize') {
    sessions += 1;
    response.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': `session-${sessions}` });
    response.end(JSON.stringify({ jsonrpc: '2.0', id: body.id, result: { protocolVersion: '2025-11-25', capabilities: { tools: { listChanged: true } }, serverInfo: { name: 'scripted', version: '1' } } }));
  } else if (body.method === 'tools/list') {
    sse();
    response.end(`id: p1\nretry: 1500\ndata:\n\n${`id: p2\n${result({ tools: [{ name: 'echo', inputSchema: { type: 'object' } }, { name: 'secret_tool', inputSchema: { type: 'object' } }] })}`}`);
  } else if (name === 'prime') {
    sse();
    response.end(`id: p1\nretry: 1500\ndata:\n\nid: p2\n${result({ content: [{ type: 'text', text: 'primed' }] })}`);
  } else if (name === 'ask') {
    sse();
    for (const serverRequest of SERVER_REQUESTS) response.write(rpc(serverRequest));
    await until('the answers to its requests', () => answered(SERVER_REQUESTS.map((each) => each.id)));
    response.end(result({ content: [{ type: 'text', text: 'asked' }] }));
  } else if (name === 'slow') {
    sse();
    response.write(`id: s0\ndata:\n\n`);
    response.once('close', () => {
      seen.closed.add(String(body.id));
      changed();
    });
  } else if (name === 'big') {
    await writeBig(response, body.id);
  } else {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ jsonrpc: '2.0', id: body.id, result: { content: [{ type: 'text', text: `called ${name}` }] } }));
  }
  void request;
}

/** 10 MB of JSON written in 64 KiB chunks as the socket drains; `bigWritten` counts what the backend got out. */
const bigWritten = new Map<unknown, number>();
async function writeBig(response: ServerResponse, id: unknown): Promise<void> {
  response.writeHead(200, { 'content-type': 'application/json' });
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const write = async (bytes: Buffer | string) => {
    bigWritten.set(id, (bigWritten.get(id) ?? 0) + bytes.length);
    if (!response.write(bytes)) await new Promise((resolve) => response.once('drain', resolve));
  };
  await write(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"content":[{"type":"text","text":"`);
  for (let written = 0; written < 10 * MB; written += chunk.length) await write(chunk);
  response.end('"}]}}');
}

async function handleBackend(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://backend');
  const body = request.method === 'POST' ? await readBody(request) : undefined;
  seen.requests.push({ method: request.method ?? '', path: url.pathname, headers: request.headers, body });
  changed();
  if (body && !('method' in body)) {
    seen.answers.push(body);
    changed();
    response.writeHead(202).end();
    return;
  }
  if (url.pathname === '/mcp' && request.method === 'POST' && body) return answerStreamableCall(request, response, body);
  if (url.pathname === '/mcp' && request.method === 'GET') {
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.write(`id: g6\n${rpc({ method: 'notifications/tools/list_changed' })}`);
    response.once('close', () => {
      seen.closed.add(`GET ${String(request.headers['last-event-id'])}`);
      changed();
    });
    return;
  }
  if (url.pathname === '/sse') {
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.write('event: endpoint\ndata: /messages?sid=1\n\n');
    legacyStream = response;
    return;
  }
  if (url.pathname === '/messages' && body) {
    response.writeHead(202).end();
    if ((body.params as { name?: string } | undefined)?.name === 'ask') {
      for (const serverRequest of SERVER_REQUESTS) legacyStream?.write(`event: message\n${rpc(serverRequest)}`);
      await until('the legacy answers', () => answered(SERVER_REQUESTS.map((each) => `legacy-${each.id}`)));
      legacyStream?.write(`event: message\n${rpc({ id: body.id, result: { content: [{ type: 'text', text: 'asked' }] } })}`);
    }
    return;
  }
  response.writeHead(404).end();
}

before(async () => {
  backend = createServer((request, response) => {
    handleBackend(request, response).catch((error: unknown) => response.destroy(error as Error));
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}/mcp`;
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        { path: '/mcp', backend: url, transports: ['streamable-http', 'sse'] },
        { path: '/filtered', backend: url, transports: ['streamable-http'], tools: { secret_tool: { groups: ['admins'] } } },
      ],
    },
  });
});
after(async () => {
  backend?.closeAllConnections();
  await new Promise((resolve) => backend?.close(resolve));
  // Keep-alive sockets of the cancelled stream clients would hold close() for the server's keep-alive timeout.
  gateway?.app.server.closeAllConnections();
  await gateway?.close();
});

const tokenFor = (path = '/mcp') => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path });
const MODERN = { 'mcp-protocol-version': '2026-07-28' };

async function openSession(path: string, token: string): Promise<string> {
  const response = await mcpPost(gateway.url + path, token, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
  assert.equal(response.status, 200);
  const session = response.headers.get('mcp-session-id');
  assert.ok(session);
  await response.text();
  return session;
}

/** Reads an SSE body until `enough(text)` holds, then cancels it; returns what was read. */
async function readSseUntil(response: Response, enough: (text: string) => boolean): Promise<string> {
  assert.ok(response.body);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!enough(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  return text;
}

/** The JSON-RPC messages of an SSE text. */
const sseMessages = (text: string): Array<Record<string, unknown>> =>
  text
    .split('\n')
    .filter((line) => line.startsWith('data:') && line.slice(5).trim().startsWith('{'))
    .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>);

/** The events of an SSE text as a client's parser sees them (id, data), and the last `retry:` value. */
function sseEvents(text: string): { events: Array<{ id?: string; data: string }>; retry?: number } {
  const seenEvents: { events: Array<{ id?: string; data: string }>; retry?: number } = { events: [] };
  const parser = createParser({ onEvent: (event) => seenEvents.events.push({ id: event.id, data: event.data }), onRetry: (retry) => (seenEvents.retry = retry) });
  parser.feed(text);
  return seenEvents;
}

describe('SSE priming events and retry', () => {
  for (const [label, path, message] of [
    ['a tools/call stream (relayed untouched)', '/mcp', toolsCall('prime', {}, 7)],
    ['a tools/list stream the gateway filters', '/filtered', { jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} }],
  ] as const) {
    it(`keeps the priming event's id and the retry field on ${label}`, async () => {
      const response = await mcpPost(gateway.url + path, await tokenFor(path), message);
      assert.equal(response.status, 200);
      const text = await response.text();
      const { events, retry } = sseEvents(text);
      assert.equal(retry, 1500, `retry passed on: ${text}`);
      assert.deepEqual(events[0], { id: 'p1', data: '' }, `the priming event (id, empty data) survives: ${text}`);
      assert.equal(events[1]?.id, 'p2');
      assert.equal(sseMessages(text).at(-1)?.id, 7);
    });
  }
});

describe('2025-x GET streams', () => {
  it('passes Last-Event-ID to the backend and delivers notifications/tools/list_changed', async () => {
    const token = await tokenFor();
    const session = await openSession('/mcp', token);
    const response = await fetch(`${gateway.url}/mcp`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'mcp-session-id': session, 'last-event-id': 'g5', 'mcp-protocol-version': '2025-11-25' },
    });
    assert.equal(response.status, 200);
    const text = await readSseUntil(response, (read) => read.includes('list_changed'));
    assert.match(text, /^id: g6$/m);
    assert.equal(sseMessages(text)[0]?.method, 'notifications/tools/list_changed');
    const get = seen.requests.findLast((request) => request.method === 'GET' && request.path === '/mcp');
    assert.equal(get?.headers['last-event-id'], 'g5', 'resumption: the backend is told where the client stopped');
    assert.equal(get?.headers['mcp-session-id'], session);
    await until('the GET stream closed after the client left', () => seen.closed.has('GET g5'));
  });
});

describe('server-to-client requests (sampling, elicitation form and URL mode, roots)', () => {
  const answerFor = (request: Record<string, unknown>, prefix = '') => {
    const results: Record<string, unknown> = {
      'sampling/createMessage': { role: 'assistant', content: { type: 'text', text: 'hello' }, model: 'test' },
      'elicitation/create': { action: 'accept', content: { name: 'Ada' } },
      'roots/list': { roots: [{ uri: 'file:///work', name: 'work' }] },
    };
    return { jsonrpc: '2.0', id: `${prefix}${String(request.id)}`, result: results[String(request.method)] };
  };

  it('relays them on a Streamable HTTP response and the answers back to the backend', async () => {
    const token = await tokenFor();
    const session = await openSession('/mcp', token);
    const headers = { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' };
    const call = await mcpPost(`${gateway.url}/mcp`, token, toolsCall('ask', {}, 11), headers);
    assert.ok(call.body);
    const reader = call.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const posted = new Set<unknown>();
    while (!/"id":11/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      for (const request of sseMessages(text).filter((message) => 'method' in message && !posted.has(message.id))) {
        posted.add(request.id);
        const answer = await mcpPost(`${gateway.url}/mcp`, token, answerFor(request), headers);
        assert.equal(answer.status, 202, `the answer to ${String(request.method)} was accepted`);
        // As the backend sent it: no body, and so no type (a Buffer's default `application/octet-stream` was added).
        assert.equal(answer.headers.get('content-type'), null);
        assert.equal(await answer.text(), '');
      }
    }
    const requests = sseMessages(text).filter((message) => 'method' in message);
    assert.deepEqual(requests, SERVER_REQUESTS.map((request) => ({ jsonrpc: '2.0', ...request })), 'every request arrived unchanged');
    assert.deepEqual(sseMessages(text).at(-1)?.result, { content: [{ type: 'text', text: 'asked' }] });
    for (const request of SERVER_REQUESTS) assert.deepEqual(seen.answers.find((answer) => answer.id === request.id)?.result, answerFor(request).result);
  });

  it('relays them on the legacy SSE stream and the answers posted to the gateway\'s messages URL', async () => {
    const token = await tokenFor();
    const stream = await fetch(`${gateway.url}/mcp/sse`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    assert.equal(stream.status, 200);
    assert.ok(stream.body);
    const reader = stream.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let endpoint: string | undefined;
    const posted = new Set<unknown>();
    const post = (message: unknown) =>
      fetch(endpoint!, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(message) });
    while (!/"id":12/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (!endpoint) {
        endpoint = /event: endpoint\ndata: (\S+)/.exec(text)?.[1];
        if (endpoint) assert.equal((await post(toolsCall('ask', {}, 12))).status, 202);
        continue;
      }
      for (const request of sseMessages(text).filter((message) => 'method' in message && !posted.has(message.id))) {
        posted.add(request.id);
        assert.equal((await post(answerFor(request, 'legacy-'))).status, 202, `the answer to ${String(request.method)} was accepted`);
      }
    }
    await reader.cancel();
    const requests = sseMessages(text).filter((message) => 'method' in message);
    assert.deepEqual(requests, SERVER_REQUESTS.map((request) => ({ jsonrpc: '2.0', ...request })));
    for (const request of SERVER_REQUESTS) assert.ok(seen.answers.some((answer) => answer.id === `legacy-${request.id}`), `${request.method} answered`);
  });
});

describe('2026-07-28 requests', () => {
  it('cancels the backend request when the client closes the SSE response', async () => {
    const controller = new AbortController();
    const response = await fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      signal: controller.signal,
      headers: { authorization: `Bearer ${await tokenFor()}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'slow' },
      body: JSON.stringify(toolsCall('slow', {}, 21)),
    });
    assert.ok(response.body);
    await response.body.getReader().read();
    controller.abort();
    await until('the slow call closed', () => seen.closed.has('21'));
  });

  it('forwards Mcp-Param-* headers', async () => {
    const response = await mcpPost(`${gateway.url}/mcp`, await tokenFor(), toolsCall('echo', { region: 'eu-west' }, 22), {
      ...MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': 'echo',
      'mcp-param-region': 'eu-west',
    });
    assert.equal(response.status, 200);
    await response.text();
    const forwarded = seen.requests.findLast((request) => (request.body as { id?: unknown } | undefined)?.id === 22);
    assert.equal(forwarded?.headers['mcp-param-region'], 'eu-west');
  });

  it('accepts a non-ASCII tool name in Mcp-Name as =?base64?…?= and refuses one that differs', async () => {
    const name = 'grüße_天気';
    const encoded = `=?base64?${Buffer.from(name).toString('base64')}?=`;
    const headers = { ...MODERN, 'mcp-method': 'tools/call', 'mcp-name': encoded };
    const response = await mcpPost(`${gateway.url}/mcp`, await tokenFor(), toolsCall(name, {}, 23), headers);
    assert.equal(response.status, 200, await response.clone().text());
    assert.match(await response.text(), new RegExp(`called ${name}`));
    const forwarded = seen.requests.findLast((request) => (request.body as { id?: unknown } | undefined)?.id === 23);
    assert.equal(forwarded?.headers['mcp-name'], encoded, 'the header reaches the backend as sent');
    const other = `=?base64?${Buffer.from('grüße_other').toString('base64')}?=`;
    const mismatch = await mcpPost(`${gateway.url}/mcp`, await tokenFor(), toolsCall(name, {}, 24), { ...headers, 'mcp-name': other });
    assert.equal(mismatch.status, 400);
  });
});

function rawPost(url: string, token: string, message: unknown): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(message);
    const client = httpRequest(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }, resolve);
    client.once('error', reject);
    client.end(body);
  });
}

/** Reads until `bytes` were read (or the end), then pauses the response: nothing more is read from the socket. */
function readAtLeast(response: IncomingMessage, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size >= bytes) finish();
    };
    const finish = () => {
      response.off('data', onData).off('end', finish);
      response.pause();
      resolve(size);
    };
    response.on('data', onData).once('end', finish).once('error', reject);
    response.resume();
  });
}

/** A garbage collection on demand, so the memory measured is what is held, not what is waiting to be collected. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('large responses', () => {
  it('streams 4 concurrent 10 MB responses with backpressure: while the clients stop reading, well under 40 MB is held', async (t) => {
    const token = await tokenFor();
    const ids = [31, 32, 33, 34];
    collectGarbage();
    const start = process.memoryUsage().rss;
    const startBuffers = process.memoryUsage().arrayBuffers + process.memoryUsage().heapUsed;
    // Each client reads 1 MB, then stops reading (a slow client). node:http, whose pause() stops reading the socket.
    const responses = await Promise.all(ids.map((id) => rawPost(`${gateway.url}/mcp`, token, toolsCall('big', {}, id))));
    const received = await Promise.all(responses.map((response) => readAtLeast(response, MB)));
    // Wait until the backends stop making progress: backpressure reached them (or they finished, which fails below).
    let last = -1;
    // A loaded machine (the whole suite runs two files at once) moves bytes in bursts: wait for a longer calm.
    for (let stable = 0; stable < 5; ) {
      await sleep(200);
      const total = [...bigWritten.values()].reduce((sum, bytes) => sum + bytes, 0);
      stable = total === last ? stable + 1 : 0;
      last = total;
    }
    collectGarbage();
    await sleep(50);
    collectGarbage();
    const held = process.memoryUsage().rss - start;
    const heldBuffers = process.memoryUsage().arrayBuffers + process.memoryUsage().heapUsed - startBuffers;
    t.diagnostic(`live buffers+heap ${(heldBuffers / MB).toFixed(1)} MB`);
    const ahead = ids.map((id, index) => (bigWritten.get(id) ?? 0) - (received[index] ?? 0));
    t.diagnostic(`RSS held ${(held / MB).toFixed(1)} MB; backends ahead of the paused clients by ${ahead.map((bytes) => (bytes / MB).toFixed(1)).join(', ')} MB (kernel socket buffers included)`);
    try {
      // RSS keeps the pages of what was allocated and freed on the way (three hops of 40 MB in this one process), so
      // what is held is measured as live memory after a collection: heap plus Buffers.
      assert.ok(heldBuffers < 20 * MB, `${(heldBuffers / MB).toFixed(1)} MB held while 4 × 10 MB responses were in flight`);
    } catch (error) {
      for (const response of responses) response.destroy();
      throw error;
    }
    // The slow clients read on: everything arrives.
    const sizes = await Promise.all(responses.map(async (response, index) => (received[index] ?? 0) + (await readAtLeast(response, Number.POSITIVE_INFINITY))));
    for (const size of sizes) assert.ok(size > 10 * MB, `the whole response arrived (${size} bytes)`);
  });
});
