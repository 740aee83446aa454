import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * How backend bodies are relayed: a small single-message JSON body is sent in one piece with its length, whatever
 * framing the backend used; a large one, and any SSE stream, stays streamed and arrives intact.
 */
const keyring = createTestKeyring();
let gateway: TestGateway;
let backend: Server;
const large = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'x'.repeat(200_000) }] } });

before(async () => {
  backend = createServer((req, res) => {
    req.resume();
    req.once('end', () => {
      // Chunked on purpose (no content-length), in several writes, as the SDKs send JSON responses.
      if (req.url === '/small') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"jsonrpc":"2.0","id":1,');
        res.end('"result":{"content":[]}}');
      } else if (req.url === '/cut') {
        // Declares more than it sends, with headers of its own, then goes away.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100', 'x-debug': 'internal-db=10.0.0.5', location: 'http://internal.example/', etag: '"v1"' });
        res.write('{"json');
        setTimeout(() => res.socket?.destroy(), 20);
      } else if (req.url === '/large') {
        res.writeHead(200, { 'content-type': 'application/json' });
        for (let i = 0; i < large.length; i += 16_384) res.write(large.slice(i, i + 16_384));
        res.end();
      } else {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n');
        res.end();
      }
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        { path: '/small', backend: `${origin}/small` },
        { path: '/large', backend: `${origin}/large` },
        { path: '/cut', backend: `${origin}/cut` },
        { path: '/sse', backend: `${origin}/sse` },
      ],
    },
  });
});
after(async () => {
  await gateway?.close();
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

const call = async (path: string) => {
  const token = await mintAccessToken(keyring, gateway.url, { aud: gateway.url + path });
  const response = await mcpPost(gateway.url + path, token, toolsCall('echo'));
  return { response, text: await response.text() };
};

describe('relaying backend bodies', () => {
  it('sends a small chunked JSON body whole, with its length', async () => {
    const { response, text } = await call('/small');
    assert.equal(response.status, 200);
    assert.equal(text, '{"jsonrpc":"2.0","id":1,"result":{"content":[]}}');
    assert.equal(response.headers.get('content-length'), String(Buffer.byteLength(text)));
    assert.equal(response.headers.get('content-type'), 'application/json');
  });

  it('streams a JSON body larger than the collection limit, intact', async () => {
    const { response, text } = await call('/large');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-length'), null);
    assert.equal(text, large);
    while (!gateway.auditLines.some((line) => line.includes('"/large"'))) await new Promise((resolve) => setImmediate(resolve));
    const record = gateway.auditLines.map((line) => JSON.parse(line) as { route: string; bytesOut: number }).find((entry) => entry.route === '/large');
    assert.equal(record?.bytesOut, large.length, 'every byte is counted');
  });

  it('keeps SSE responses streamed', async () => {
    const { response, text } = await call('/sse');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-length'), null);
    assert.match(text, /^event: message\ndata: /);
    while (!gateway.auditLines.some((line) => line.includes('"/sse"'))) await new Promise((resolve) => setImmediate(resolve));
    const record = gateway.auditLines.map((line) => JSON.parse(line) as { route: string; bytesOut: number }).find((entry) => entry.route === '/sse');
    assert.equal(record?.bytesOut, Buffer.byteLength(text), 'the streamed bytes are counted without a pass-through stage');
  });

  it("answers a body cut short with the gateway's 502 alone: none of the backend's headers", async () => {
    const { response, text } = await call('/cut');
    assert.equal(response.status, 502);
    assert.match(text, /"error"/);
    for (const name of ['x-debug', 'location', 'etag']) assert.equal(response.headers.get(name), null, name);
  });
});
