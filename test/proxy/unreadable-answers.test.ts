import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsList, type TestGateway } from './harness.ts';

/**
 * A backend whose `tools/list` answer the gateway cannot read as it is sent — a byte order mark before the JSON, a
 * gzip body, a replay on a resumed GET stream — must not get its tools to the client unscreened: a client reads what
 * the gateway passed on unread (fetch's `.json()` skips a BOM and `fetch` decompresses), and the tools a policy
 * denies, or a changed definition pinning holds back, then reached the model.
 */
const tools = { tools: [{ name: 'echo', description: 'Echo', inputSchema: { type: 'object' } }, { name: 'secret_tool', description: 'Secret', inputSchema: { type: 'object' } }] };
const answer = (id: unknown) => JSON.stringify({ jsonrpc: '2.0', id, result: tools });

let backend: Server;
let gateway: TestGateway;
const seen: IncomingHttpHeaders[] = [];
const keyring = createTestKeyring();

before(async () => {
  backend = createServer((req, res) => {
    seen.push(req.headers);
    const path = new URL(req.url ?? '/', 'http://backend').pathname;
    // Labelled UTF-7, a client decoding by the label (the Python SDK's SSE reader) reads `+AA0ACg-` as a line break.
    const sse = path.includes('rfc2231')
      ? "text/event-stream; charset*=''utf-7"
      : path.includes('utf7')
        ? 'text/event-stream; charset=utf-7'
        : path.includes('utf8')
          ? 'text/event-stream; Charset="UTF-8"'
          : 'text/event-stream';
    if (req.method === 'GET') {
      // A resumed stream (Last-Event-ID) replays the answer to an earlier tools/list POST.
      res.writeHead(200, { 'content-type': sse });
      res.end(path.includes('legacy') ? `event: endpoint\ndata: ${path.replace(/\/sse$/, '')}/messages?s=1\n\n` : `id: 1\ndata: ${answer(5)}\n\n`);
      return;
    }
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const id = (JSON.parse(body) as { id: unknown }).id;
      if (path === '/bom') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(answer(id))]));
      } else if (path === '/latin1-accepted') {
        // A notification accepted, its empty body labelled as a servlet container labels text by default.
        res.writeHead(202, { 'content-type': 'text/plain; charset=ISO-8859-1' }).end();
      } else if (path === '/utf7' || path === '/utf8' || path === '/rfc2231') {
        res.writeHead(200, { 'content-type': sse });
        res.end(`id: 1+AA0ACgANAAo-\ndata: ${answer(id)}\n\n`);
      } else if (path === '/batched') {
        // A batch of answers in one SSE event (a JSON array, 2025-03-26).
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(`data: [${answer(id)}]\n\n`);
      } else if (path === '/gzip') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        res.end(gzipSync(answer(id)));
      } else {
        // A 201: a client reads a tools/list result from it as from a 200.
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(answer(id));
      }
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const denied = { secret_tool: { groups: ['nobody'] } };
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        ...['bom', 'gzip', 'created', 'batched', 'utf7', 'utf8', 'rfc2231', 'latin1-accepted'].map((name) => ({ path: `/${name}`, backend: `${origin}/${name}`, tools: denied })),
        ...['legacy-utf7', 'legacy-utf8'].map((name) => ({ path: `/${name}`, backend: `${origin}/${name}`, legacySsePath: `/${name}/sse`, tools: denied, transports: ['sse'] })),
      ],
    },
  });
});

after(async () => {
  await gateway?.close();
  backend?.closeAllConnections();
  await new Promise<void>((resolve) => backend?.close(() => resolve()));
});

const tokenFor = (path: string) => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path, scope: 'mcp:tools', sub: 'tenant/alice' });

describe('a tools/list answer the gateway cannot read as sent', () => {
  it('inside an SSE event that carries a batch (a JSON array) is screened element by element', async () => {
    const response = await mcpPost(gateway.url + '/batched', await tokenFor('/batched'), toolsList(4));
    assert.equal(response.status, 200);
    const data = (await response.text()).split('\n').find((line) => line.startsWith('data: '))?.slice(6) ?? '';
    const batch = JSON.parse(data) as Array<{ result: typeof tools }>;
    assert.deepEqual(batch.map((message) => message.result.tools.map((tool) => tool.name)), [['echo']]);
  });

  const screened: Array<[string, string, number]> = [
    ['with a byte order mark before the JSON is read as a client reads it, and screened', '/bom', 200],
    ['on a 201 is screened like a 200', '/created', 201],
  ];
  for (const [name, path, status] of screened) {
    it(name, async () => {
      const response = await mcpPost(gateway.url + path, await tokenFor(path), toolsList(3));
      assert.equal(response.status, status);
      const body = (await response.json()) as { result: typeof tools };
      assert.deepEqual(body.result.tools.map((tool) => tool.name), ['echo']);
    });
  }

  it('in gzip is a 502, never passed on for the client to decompress', async () => {
    const response = await mcpPost(gateway.url + '/gzip', await tokenFor('/gzip'), toolsList(4));
    assert.equal(response.status, 502);
    const text = await response.text();
    assert.ok(!text.includes('secret_tool'));
  });


  it('labelled in a charset other than UTF-8 (which it was screened in) is a 502: a POST answer, a GET stream, a legacy stream', async () => {
    for (const path of ['/utf7', '/rfc2231']) {
      const post = await mcpPost(gateway.url + path, await tokenFor(path), toolsList(4));
      assert.equal(post.status, 502, path);
      assert.ok(!(await post.text()).includes('secret_tool'));
    }
    const get = await fetch(gateway.url + '/utf7', { headers: { authorization: `Bearer ${await tokenFor('/utf7')}`, accept: 'text/event-stream' } });
    assert.equal(get.status, 502);
    await get.body?.cancel();
    const legacy = await fetch(gateway.url + '/legacy-utf7/sse', { headers: { authorization: `Bearer ${await tokenFor('/legacy-utf7')}` } });
    assert.equal(legacy.status, 502);
    await legacy.body?.cancel();
    // UTF-8, however it is spelt, is what the gateway read.
    const utf8 = await mcpPost(gateway.url + '/utf8', await tokenFor('/utf8'), toolsList(5));
    assert.equal(utf8.status, 200);
    assert.ok(!(await utf8.text()).includes('secret_tool'));
    const legacyUtf8 = await fetch(gateway.url + '/legacy-utf8/sse', { headers: { authorization: `Bearer ${await tokenFor('/legacy-utf8')}` } });
    assert.equal(legacyUtf8.status, 200);
    await legacyUtf8.body?.cancel();
    // A 202 carries no message: however its empty body is labelled, the notification was accepted.
    const accepted = await mcpPost(gateway.url + '/latin1-accepted', await tokenFor('/latin1-accepted'), { jsonrpc: '2.0', method: 'notifications/initialized' });
    assert.equal(accepted.status, 202);
  });

  it('replayed on a resumed GET stream is screened too', async () => {
    const response = await fetch(gateway.url + '/created', {
      headers: { authorization: `Bearer ${await tokenFor('/created')}`, accept: 'text/event-stream', 'last-event-id': '0' },
    });
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.match(text, /"name":"echo"/);
    assert.ok(!text.includes('secret_tool'), text);
  });

  it('asks every backend for an uncompressed answer, whatever the client accepts', async () => {
    const before = seen.length;
    const response = await mcpPost(gateway.url + '/bom', await tokenFor('/bom'), toolsList(8), { 'accept-encoding': 'gzip, br' });
    await response.body?.cancel();
    const headers = seen.slice(before);
    assert.equal(headers.length, 1);
    assert.equal(headers[0]!['accept-encoding'], 'identity');
  });
});
