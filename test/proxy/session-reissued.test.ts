import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { mcpPost, mintAccessToken, startTestGateway, toolsList, type TestGateway } from './harness.ts';

/**
 * A backend whose session ids repeat — a counter that starts over when it restarts — issues an id it issued before
 * to another user. The session is the new owner's: the earlier owner, still holding the id, must not reach it.
 */
describe('a session id the backend issues again', () => {
  let backend: Server;
  let gateway: TestGateway;
  // Which user's requests the backend saw on each session, by the identity the gateway forwarded.
  const seen: string[] = [];
  before(async () => {
    backend = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        const message = JSON.parse(body) as { id: number; method: string };
        const session = request.headers['mcp-session-id'];
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (message.method === 'initialize') headers['mcp-session-id'] = 'session-1';
        else seen.push(`${String(session)} ${message.method}`);
        const result = message.method === 'initialize' ? { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'counter', version: '1' } } : { tools: [] };
        response.writeHead(200, headers).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const { port } = backend.address() as AddressInfo;
    gateway = await startTestGateway({ config: { routes: [{ path: '/mcp', backend: `http://127.0.0.1:${port}/mcp` }] } });
  });
  after(async () => {
    await gateway?.close();
    await new Promise((resolve) => backend?.close(resolve));
  });

  const tokenOf = (sub: string) => mintAccessToken(gateway.keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub });
  const v2025 = { 'mcp-protocol-version': '2025-11-25' };
  const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } };
  async function open(token: string): Promise<string | null> {
    const response = await mcpPost(`${gateway.url}/mcp`, token, initialize);
    await response.body?.cancel();
    assert.equal(response.status, 200);
    return response.headers.get('mcp-session-id');
  }
  async function list(token: string, session: string): Promise<number> {
    const response = await mcpPost(`${gateway.url}/mcp`, token, toolsList(2), { ...v2025, 'mcp-session-id': session });
    await response.body?.cancel();
    return response.status;
  }

  it("is the new owner's; the earlier owner is refused as for an ended session", async () => {
    const alice = await tokenOf('tenant/alice');
    const bob = await tokenOf('tenant/bob');
    assert.equal(await open(alice), 'session-1');
    assert.equal(await list(alice, 'session-1'), 200);
    // The backend restarted: its counter issues session-1 again, to bob.
    assert.equal(await open(bob), 'session-1');
    assert.equal(await list(bob, 'session-1'), 200, 'the new owner uses the session the backend issued to them');
    assert.equal(await list(alice, 'session-1'), 404, "the earlier owner is kept out of bob's session");
    assert.deepEqual(seen, ['session-1 tools/list', 'session-1 tools/list'], "alice's second request never reached the backend");
  });
});
