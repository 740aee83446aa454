import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createMetrics, type GatehouseMetrics } from '../../src/observability/metrics.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * The gateway's own metrics: `gatehouse_open_streams` follows every relayed SSE stream (Streamable HTTP and legacy
 * HTTP+SSE) up and back down however it ends, and each 429 counts in `gatehouse_rate_limit_rejections_total`.
 */
let backend: Server;
let backendUrl: string;
let gateway: TestGateway;
let metrics: GatehouseMetrics;
const keyring = createTestKeyring();
/** Backend streams still open, so a test can end one from the backend side. */
const held = new Set<ServerResponse>();

before(async () => {
  // A backend that opens SSE streams and holds them: `/sse` starts with the legacy endpoint event, `/mcp` with a
  // comment. `/fail` makes the backend drop the connection after the first event (a backend error mid-stream).
  backend = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://backend');
    if (request.method !== 'GET') {
      response.writeHead(202).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.write(url.pathname === '/sse' ? 'event: endpoint\ndata: /messages?session=b1\n\n' : ': open\n\n');
    if (url.pathname === '/fail') setImmediate(() => response.socket?.destroy());
    else held.add(response);
    response.once('close', () => held.delete(response));
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  backendUrl = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const clock = new ManualClock(Date.now());
  metrics = createMetrics({ clock });
  gateway = await startTestGateway({
    keyring,
    clock,
    metrics,
    config: {
      routes: [
        { path: '/mcp', backend: `${backendUrl}/mcp`, transports: ['streamable-http', 'sse'] },
        { path: '/failing', backend: `${backendUrl}/fail` },
        { path: '/limited', backend: `${backendUrl}/mcp`, rateLimit: { perUserPerMinute: 1, perClientPerMinute: 100 } },
        { path: '/client-limited', backend: `${backendUrl}/mcp`, rateLimit: { perUserPerMinute: 100, perClientPerMinute: 1 } },
      ],
    },
  });
});
after(async () => {
  await gateway?.close();
  for (const response of held) response.destroy();
  await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
});

const token = (path: string, sub = 'tenant/alice', clientId = 'client-1') =>
  mintAccessToken(keyring, gateway.url, { aud: gateway.url + path, sub, clientId });

async function openStreams(route: string, transport: string): Promise<number> {
  const { values } = await metrics.registry.getSingleMetric('gatehouse_open_streams')!.get();
  return values.find((value) => value.labels.route === route && value.labels.transport === transport)?.value ?? 0;
}

/** Polls the gauge until it reads `expected` (the gateway sees a disconnect a moment after the client makes it). */
async function untilOpenStreams(route: string, transport: string, expected: number): Promise<void> {
  while ((await openStreams(route, transport)) !== expected) await new Promise((resolve) => setTimeout(resolve, 5));
}

/** Opens a stream through the gateway and reads its first event. */
async function openStream(path: string, bearer: string): Promise<{ first: string; controller: AbortController; reader: ReadableStreamDefaultReader<Uint8Array> }> {
  const controller = new AbortController();
  const response = await fetch(gateway.url + path, { headers: { authorization: `Bearer ${bearer}`, accept: 'text/event-stream' }, signal: controller.signal });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type')?.split(';')[0], 'text/event-stream');
  const reader = response.body!.getReader();
  const chunk = await reader.read();
  return { first: new TextDecoder().decode(chunk.value), controller, reader };
}

describe('open streams gauge', () => {
  it('counts a legacy SSE stream while it is open and returns to 0 when the client disconnects', async () => {
    const bearer = await token('/mcp');
    assert.equal(await openStreams('/mcp', 'sse'), 0);
    const stream = await openStream('/mcp/sse', bearer);
    assert.match(stream.first, /event: endpoint\ndata: .*\/mcp\/messages\?sessionId=/);
    assert.equal(await openStreams('/mcp', 'sse'), 1);
    stream.controller.abort();
    await untilOpenStreams('/mcp', 'sse', 0);
    assert.equal(await openStreams('/mcp', 'streamable-http'), 0);
    // The endpoint rewriter is the stream's last stage and counts what it sends: the audit has the bytes the client got.
    while (!gateway.auditLines.some((line) => line.includes('"sse/connect"'))) await new Promise((resolve) => setTimeout(resolve, 5));
    const record = JSON.parse(gateway.auditLines.find((line) => line.includes('"sse/connect"'))!) as { bytesOut: number };
    assert.equal(record.bytesOut, Buffer.byteLength(stream.first));
  });

  it('counts Streamable HTTP GET streams, each once, and returns to 0 after client aborts', async () => {
    const bearer = await token('/mcp');
    const first = await openStream('/mcp', bearer);
    const second = await openStream('/mcp', bearer);
    assert.equal(first.first, ': open\n\n');
    assert.equal(await openStreams('/mcp', 'streamable-http'), 2);
    first.controller.abort();
    await untilOpenStreams('/mcp', 'streamable-http', 1);
    second.controller.abort();
    await untilOpenStreams('/mcp', 'streamable-http', 0);
  });

  it('returns to 0 when the backend drops the stream', async () => {
    const stream = await openStream('/failing', await token('/failing'));
    assert.equal(stream.first, ': open\n\n');
    // The gateway ends the client's stream when the backend's dies; the client sees it end or fail.
    await stream.reader.read().then(
      (next) => assert.equal(next.done, true),
      (error: unknown) => assert.ok(error instanceof Error),
    );
    await untilOpenStreams('/failing', 'streamable-http', 0);
  });

  it('does not count a refused stream', async () => {
    const response = await fetch(gateway.url + '/mcp/sse', { headers: { accept: 'text/event-stream' } });
    assert.equal(response.status, 401);
    await response.text();
    assert.equal(await openStreams('/mcp', 'sse'), 0);
  });
});

describe('rate-limit rejections', () => {
  it('counts a 429 by the limit that was spent (user, then client)', async () => {
    const text = () => metrics.registry.getSingleMetricAsString('gatehouse_rate_limit_rejections_total');
    const count = async (limit: string) => Number(new RegExp(`limit="${limit}"} (\\d+)`).exec(await text())?.[1] ?? 0);
    const userBearer = await token('/limited', 'tenant/busy');
    const statuses: number[] = [];
    for (let i = 0; i < 2; i++) {
      const response = await mcpPost(gateway.url + '/limited', userBearer, toolsCall('echo'));
      statuses.push(response.status);
      await response.text();
    }
    for (const user of ['tenant/u1', 'tenant/u2']) {
      const response = await mcpPost(gateway.url + '/client-limited', await token('/client-limited', user, 'noisy'), toolsCall('echo'));
      statuses.push(response.status);
      await response.text();
    }
    assert.deepEqual(statuses, [202, 429, 202, 429]);
    assert.equal(await count('user'), 1);
    assert.equal(await count('client'), 1);
  });
});
