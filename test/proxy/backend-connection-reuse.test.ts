import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * A backend with its own, smaller body limit answers 413 as soon as it sees the declared length, without reading the
 * body, and keeps the connection open. Everything still on the wire after that answer (the rest of the body, then
 * whatever the gateway sends next on that connection) is lost to it. The gateway must not put another request on
 * such a connection: unrelated requests are unaffected.
 */
const BACKEND_LIMIT = 1_000_000;
const keyring = createTestKeyring();
let backend: Server;
let gateway: TestGateway;
const sockets = new Set<Socket>();
/** Per refused connection: body bytes still expected, bytes swallowed since the 413, and whether it closed. */
const refused: Array<{ expected: number; swallowed: number; closed: boolean }> = [];

/** A minimal HTTP/1.1 server: keep-alive, Content-Length bodies only; refuses large bodies at once, unread. */
function serveConnection(socket: Socket): void {
  sockets.add(socket);
  let pending = Buffer.alloc(0);
  let lost: (typeof refused)[number] | undefined;
  socket.on('close', () => {
    sockets.delete(socket);
    if (lost) lost.closed = true;
  });
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    if (lost) {
      lost.swallowed += chunk.length;
      return;
    }
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      const end = pending.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = pending.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (length > BACKEND_LIMIT) {
        socket.write('HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
        const already = pending.length - end - 4;
        lost = { expected: length - already, swallowed: 0, closed: false };
        refused.push(lost);
        return;
      }
      if (pending.length < end + 4 + length) return;
      const id = (JSON.parse(pending.subarray(end + 4, end + 4 + length).toString('utf8')) as { id: number }).id;
      pending = pending.subarray(end + 4 + length);
      const body = JSON.stringify({ jsonrpc: '2.0', id, result: { content: [] } });
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
  });
}

before(async () => {
  backend = createServer(serveConnection);
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  gateway = await startTestGateway({
    keyring,
    config: { routes: [{ path: '/mcp', backend: `${origin}/mcp`, timeouts: { responseHeadersMs: 2_000 } }] },
  });
});

after(async () => {
  await gateway?.close();
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
});

describe('a backend that refuses a body without reading it', () => {
  it('leaves the next request unaffected: the connection that carried the unread body is not reused', async () => {
    const bearer = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp` });
    const large = await mcpPost(gateway.url + '/mcp', bearer, toolsCall('echo', { text: 'x'.repeat(2_500_000) }, 1));
    assert.equal(large.status, 413);
    await large.text();
    // Until the gateway has written all of that body (the connection looks idle and reusable) or dropped the
    // connection: only then is the next request's fate decided by the pool, not by timing.
    const lost = refused[0]!;
    while (!lost.closed && lost.swallowed < lost.expected) await new Promise((resolve) => setTimeout(resolve, 5));

    const next = await mcpPost(gateway.url + '/mcp', bearer, toolsCall('echo', { text: 'small' }, 2));
    assert.equal(next.status, 200);
    assert.deepEqual(await next.json(), { jsonrpc: '2.0', id: 2, result: { content: [] } });
  });
});
