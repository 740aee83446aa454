import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { rawRequest } from '../support/raw-http.ts';
import { createTestKeyring, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * What the gateway accepts at its edge and what it passes on: a singleton header sent twice is refused before any
 * check reads one of its copies, and client-supplied address headers never reach a backend.
 */
const keyring = createTestKeyring();
let gateway: TestGateway;
let backend: Server;
const seen: IncomingHttpHeaders[] = [];

before(async () => {
  backend = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}');
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        { path: '/mcp', backend: url, transports: ['streamable-http', 'sse'] },
        { path: '/api', type: 'http', backend: url },
      ],
    },
  });
});

after(async () => {
  await gateway?.close();
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

const tokenFor = (path: string) => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path });
const body = JSON.stringify(toolsCall('echo', { text: 'hi' }));
const postHeaders = (token: string): Array<[string, string]> => [
  ['Authorization', `Bearer ${token}`],
  ['Content-Type', 'application/json'],
  ['Accept', 'application/json, text/event-stream'],
];

describe('a singleton header sent twice is refused on gateway routes', () => {
  it('accepts the same request with each header once (control)', async () => {
    const response = await rawRequest(`${gateway.url}/mcp`, { method: 'POST', headers: postHeaders(await tokenFor('/mcp')), body });
    assert.equal(response.status, 200, JSON.stringify(response));
  });

  const repeated: Array<[string, (token: string) => string[]]> = [
    // The first copy is a valid token: Node keeps it and drops the second, so only the raw headers show the repetition.
    ['Authorization', (token) => [`Bearer ${token}`, 'Bearer forged']],
    ['Authorization', (token) => ['Bearer forged', `Bearer ${token}`]],
    ['Mcp-Session-Id', () => ['session-a', 'session-b']],
    ['Mcp-Method', () => ['tools/call', 'tools/list']],
    ['Mcp-Name', () => ['echo', 'secret_tool']],
    ['Mcp-Protocol-Version', () => ['2025-11-25', '2026-07-28']],
    ['DPoP', () => ['proof-a', 'proof-b']],
    ['Content-Type', () => ['application/json', 'text/plain']],
    ['Host', () => ['127.0.0.1', 'evil.example']],
    ['Origin', () => [gateway.url, 'https://evil.example']],
  ];
  for (const [name, values] of repeated) {
    it(`${name} twice is 400 with a JSON-RPC error`, async () => {
      const token = await tokenFor('/mcp');
      const base = postHeaders(token).filter(([header]) => header !== name);
      const headers: Array<[string, string]> = [...base, ...values(token).map((value): [string, string] => [name, value])];
      const before = seen.length;
      const response = await rawRequest(`${gateway.url}/mcp`, { method: 'POST', headers, body });
      assert.equal(response.status, 400, response.body);
      const error = (JSON.parse(response.body) as { error: { code: number; message: string } }).error;
      assert.equal(error.code, -32600);
      assert.match(error.message, new RegExp(name, 'i'));
      assert.equal(seen.length, before, 'the backend was not called');
    });
  }

  it('Authorization twice is refused on the legacy SSE and plain HTTP routes too', async () => {
    for (const path of ['/mcp/sse', '/api/items']) {
      const token = await tokenFor(path.startsWith('/api') ? '/api' : '/mcp');
      const response = await rawRequest(`${gateway.url}${path}`, { headers: [['Authorization', `Bearer ${token}`], ['Authorization', 'Bearer forged']] });
      assert.equal(response.status, 400, `${path}: ${response.body}`);
    }
  });
});
