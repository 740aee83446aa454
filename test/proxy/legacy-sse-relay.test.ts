import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { createTestKeyring, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * The legacy HTTP+SSE stream is read event by event by the gateway (endpoint rewrite, tools/list filter). A backend
 * that writes a multi-byte character across two TCP chunks must reach the client intact, with or without a filter.
 */
const keyring = createTestKeyring();
let gateway: TestGateway;
let backend: Server;
let verbatimBackend: Server;
let liveBackend: Server;
let longEndpointBackend: Server;
/** The open response of the live backend's stream, written to by the test. */
let liveStream: ((text: string) => void) | undefined;

const message = (text: string) => JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: text } });
const toolsResult = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'echo', description: 'café' }, { name: 'secret_tool' }] } });

before(async () => {
  backend = createServer(async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const bytes = Buffer.from(`event: endpoint\ndata: /messages?session=1\n\nevent: message\ndata: ${message('café ☕')}\n\nevent: message\ndata: ${toolsResult}\n\n`);
    // The endpoint event and the start of the next one share a chunk that ends inside `é`; `☕` is cut again later.
    const firstCut = bytes.indexOf(Buffer.from('é')) + 1;
    const secondCut = bytes.indexOf(Buffer.from('☕')) + 2;
    res.write(bytes.subarray(0, firstCut));
    await delay(30);
    res.write(bytes.subarray(firstCut, secondCut));
    await delay(30);
    res.write(bytes.subarray(secondCut));
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  // After its endpoint event (a chunk of its own), events with an id, a field no client knows, and a character
  // split between two chunks.
  verbatimBackend = createServer(async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('event: endpoint\ndata: /messages?session=2\n\n');
    await delay(30);
    const rest = Buffer.from(`id: 7\nevent: message\nx-note: kept\ndata: ${message('naïve ☕')}\n\n${'event: message\ndata: ' + toolsResult + '\n\n'}`);
    const cut = rest.indexOf(Buffer.from('☕')) + 1;
    res.write(rest.subarray(0, cut));
    await delay(30);
    res.write(rest.subarray(cut));
  });
  await new Promise<void>((resolve) => verbatimBackend.listen(0, '127.0.0.1', resolve));
  const verbatimUrl = `http://127.0.0.1:${(verbatimBackend.address() as AddressInfo).port}`;
  liveBackend = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('event: endpoint\ndata: /messages?session=3\n\n');
    liveStream = (text) => res.write(text);
  });
  await new Promise<void>((resolve) => liveBackend.listen(0, '127.0.0.1', resolve));
  const liveUrl = `http://127.0.0.1:${(liveBackend.address() as AddressInfo).port}`;
  longEndpointBackend = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`event: endpoint\ndata: /messages?session=${'a'.repeat(9 * 1024)}\n\n`);
  });
  await new Promise<void>((resolve) => longEndpointBackend.listen(0, '127.0.0.1', resolve));
  const longEndpointUrl = `http://127.0.0.1:${(longEndpointBackend.address() as AddressInfo).port}`;
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        { path: '/plain', backend: url, transports: ['sse'] },
        { path: '/filtered', backend: url, transports: ['sse'], tools: { secret_tool: { groups: ['admins'] } } },
        { path: '/verbatim', backend: verbatimUrl, transports: ['sse'] },
        { path: '/verbatim-filtered', backend: verbatimUrl, transports: ['sse'], tools: { secret_tool: { groups: ['admins'] } } },
        { path: '/live', backend: liveUrl, transports: ['sse'] },
        { path: '/long-endpoint', backend: longEndpointUrl, transports: ['sse'] },
      ],
    },
  });
});

after(async () => {
  await gateway?.close();
  for (const server of [backend, verbatimBackend, liveBackend, longEndpointBackend]) {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
});

/** Reads the client's stream until the tools/list event has arrived, then hangs up. */
async function readStream(path: string): Promise<string> {
  const token = await mintAccessToken(keyring, gateway.url, { aud: gateway.url + path });
  const controller = new AbortController();
  const response = await fetch(`${gateway.url}${path}/sse`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  assert.equal(response.status, 200);
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of response.body!) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    if (text.includes('"tools"') && text.endsWith('\n\n')) break;
  }
  controller.abort();
  return text;
}

describe('legacy SSE relay keeps UTF-8 intact across chunks', () => {
  for (const path of ['/plain', '/filtered']) {
    it(`${path}: a character split between two backend chunks arrives whole`, async () => {
      const text = await readStream(path);
      assert.ok(!text.includes('\uFFFD'), text);
      assert.ok(text.includes(`data: ${message('café ☕')}\n\n`), text);
      assert.match(text, new RegExp(`event: endpoint\ndata: ${gateway.url}${path}/messages\\?sessionId=`));
      assert.equal(text.includes('secret_tool'), path === '/plain');
    });
  }
});

describe('a legacy endpoint event naming a URL no server takes', () => {
  it('is refused as the backend\'s failure (502), and no session is bound to it', async () => {
    const token = await mintAccessToken(keyring, gateway.url, { aud: gateway.url + '/long-endpoint' });
    const response = await fetch(`${gateway.url}/long-endpoint/sse`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 502);
    assert.doesNotMatch(await response.text(), /aaaa/);
    assert.deepEqual(await gateway.store.list('legacy-sse-session'), []);
  });
});

describe('legacy SSE relay once the endpoint is rewritten', () => {
  it('passes the rest of an unfiltered stream on byte for byte', async () => {
    const text = await readStream('/verbatim');
    assert.match(text, new RegExp(`^event: endpoint\ndata: ${gateway.url}/verbatim/messages\\?sessionId=`));
    assert.ok(text.includes(`id: 7\nevent: message\nx-note: kept\ndata: ${message('naïve ☕')}\n\n`), text);
    assert.ok(text.includes('secret_tool'));
  });

  it('keeps parsing a stream it filters: the tools/list answer is screened, unknown fields are not relayed', async () => {
    const text = await readStream('/verbatim-filtered');
    assert.ok(text.includes(`id: 7\nevent: message\ndata: ${message('naïve ☕')}\n\n`), text);
    assert.equal(text.includes('x-note'), false);
    assert.equal(text.includes('secret_tool'), false);
  });
});

describe('legacy SSE relay across a configuration reload', () => {
  it('screens the tools/list answers of a stream opened before the route had a policy, once a reload gives it one', async () => {
    const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/live` });
    const controller = new AbortController();
    const response = await fetch(`${gateway.url}/live/sse`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const readUntil = async (marker: string) => {
      while (!text.includes(marker)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended before ${marker}: ${text}`);
        text += decoder.decode(value, { stream: true });
      }
    };
    const toolsList = (id: number) => `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { tools: [{ name: 'echo' }, { name: 'secret_tool' }] } })}\n\n`;
    await readUntil('/live/messages?sessionId=');
    liveStream!(toolsList(1));
    await readUntil('"id":1');
    assert.ok(text.includes('secret_tool'), 'no policy yet: listed');
    // What src/app/reload-config.ts does to a running route: a new `tools`.
    const route = gateway.ctx.config.routes.find((candidate) => candidate.path === '/live')!;
    route.tools = configSchema.parse({ routes: [{ path: '/live', backend: 'http://127.0.0.1:9', tools: { secret_tool: { groups: ['admins'] } } }] }).routes[0]!.tools;
    text = '';
    liveStream!(toolsList(2));
    await readUntil('"id":2');
    assert.equal(text.includes('secret_tool'), false, text);
    assert.ok(text.includes('"echo"'), text);
    controller.abort();
  });
});

