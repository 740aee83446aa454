import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mcpPost, mintAccessToken, startTestGateway, toolsList, type TestGateway } from './harness.ts';

/**
 * A 2025-11-25 MCP backend that issues session ids as `nextSessionId` says (a counter, a counter that starts over),
 * behind a gateway on `/mcp`, and a client of it: the session tests' fixture. The backend records what it saw: each
 * request on a session (`<id> <method>`), and each DELETE with the user the gateway's identity named and its headers.
 */
export interface SessionFixture {
  gateway: TestGateway;
  seen: string[];
  deleted: string[];
  deleteHeaders: string[];
  tokenOf(sub: string, clientId?: string): Promise<string>;
  /** Opens a session (initialize); its id (empty when the answer carried none). */
  open(token: string, headers?: Record<string, string>): Promise<string>;
  /** A `tools/list` on a session; the status. */
  list(token: string, session: string): Promise<number>;
  close(): Promise<void>;
}

const INITIALIZE = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } };

/** `route`: more of the `/mcp` route's configuration (e.g. its rate limits). */
export async function startSessionFixture(nextSessionId: () => string, route: Record<string, unknown> = {}): Promise<SessionFixture> {
  const seen: string[] = [];
  const deleted: string[] = [];
  const deleteHeaders: string[] = [];
  const backend = createServer((request, response) => {
    if (request.method === 'DELETE') {
      // The gateway's signed identity of the user (never the client's token): a backend ends only its owner's session.
      const identity = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
      const subject = identity === undefined ? 'nobody' : (JSON.parse(Buffer.from(identity.split('.')[1] ?? '', 'base64url').toString()) as { sub?: string }).sub;
      deleted.push(`${String(request.headers['mcp-session-id'])} ${subject}`);
      deleteHeaders.push(Object.keys(request.headers).sort().join(' '));
      response.writeHead(200).end();
      return;
    }
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const message = JSON.parse(body) as { id: number; method: string };
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (message.method === 'initialize') headers['mcp-session-id'] = nextSessionId();
      else seen.push(`${String(request.headers['mcp-session-id'])} ${message.method}`);
      const result = message.method === 'initialize' ? { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'sessions', version: '1' } } : { tools: [] };
      response.writeHead(200, headers).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const { port } = backend.address() as AddressInfo;
  const gateway = await startTestGateway({ config: { routes: [{ path: '/mcp', backend: `http://127.0.0.1:${port}/mcp`, ...route }] } });
  return {
    gateway,
    seen,
    deleted,
    deleteHeaders,
    tokenOf: (sub, clientId = 'client-1') => mintAccessToken(gateway.keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub, clientId }),
    async open(token, headers = {}) {
      const response = await mcpPost(`${gateway.url}/mcp`, token, INITIALIZE, headers);
      await response.body?.cancel();
      assert.equal(response.status, 200);
      return response.headers.get('mcp-session-id') ?? '';
    },
    async list(token, session) {
      const response = await mcpPost(`${gateway.url}/mcp`, token, toolsList(2), { 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': session });
      await response.body?.cancel();
      return response.status;
    },
    async close() {
      await gateway.close();
      await new Promise((resolve) => backend.close(resolve));
    },
  };
}
