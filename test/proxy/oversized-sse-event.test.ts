import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SSE_EVENT_LIMIT_BYTES } from '../../src/proxy/sse-events.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsList, type TestGateway } from './harness.ts';

/**
 * An SSE answer the gateway screens (a tools/list for a caller denied a tool) whose event grows past the bound the
 * screen holds: the client's stream is cut after its headers, and the audit record says why. It said `error` with no
 * reason, and only the warn log knew.
 */
describe('an SSE event past the screen\'s bound', () => {
  const keyring = createTestKeyring();
  let backend: Server;
  let gateway: TestGateway;

  before(async () => {
    backend = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        // One event that never ends, a little past the bound, in 1 MiB writes.
        const piece = 'x'.repeat(1024 * 1024);
        response.write('event: message\ndata: ');
        for (let written = 0; written <= SSE_EVENT_LIMIT_BYTES; written += piece.length) response.write(piece);
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    gateway = await startTestGateway({
      keyring,
      config: { routes: [{ path: '/mcp', backend: `http://127.0.0.1:${(backend.address() as AddressInfo).port}/mcp`, tools: { secret_tool: { scopes: ['mcp:secret'] } } }] },
    });
  });
  after(async () => {
    await gateway.close();
    backend.closeAllConnections();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  });

  it('cuts the stream and audits it as an error with the reason', { timeout: 30_000 }, async () => {
    const from = gateway.auditLines.length;
    const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/mcp` });
    const response = await mcpPost(`${gateway.url}/mcp`, token, toolsList(), { accept: 'application/json, text/event-stream' });
    assert.equal(response.status, 200);
    await assert.rejects(response.text(), 'the stream is cut, not ended');
    const deadline = Date.now() + 10_000;
    let record: Record<string, unknown> | undefined;
    while (record === undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      record = gateway.auditLines.slice(from).map((line) => JSON.parse(line) as Record<string, unknown>).find((entry) => entry['method'] === 'tools/list');
    }
    assert.equal(record?.['outcome'], 'error');
    assert.equal(record?.['reason'], `backend stream refused: an event of the stream is larger than ${SSE_EVENT_LIMIT_BYTES} bytes`);
  });
});
