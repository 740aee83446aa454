import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { mcpPost, mintAccessToken, startTestGateway, toolsList, type TestGateway } from './harness.ts';

/**
 * `rateLimit.sessionsPerUser`: most clients never end their sessions, and a backend keeps each one until told. A user
 * opening sessions in a loop filled the sample server's table and every other user was refused; now the session
 * opened beyond the limit ends the user's oldest, at the gateway and (its DELETE) at the backend.
 */
describe('sessions per user', () => {
  let backend: Server;
  let gateway: TestGateway;
  let issued = 0;
  // Each DELETE the backend got: its session id and the user the gateway's identity named.
  const deleted: string[] = [];
  const deleteHeaders: string[] = [];
  before(async () => {
    backend = createServer((request, response) => {
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
        if (message.method === 'initialize') headers['mcp-session-id'] = `session-${++issued}`;
        const result = message.method === 'initialize' ? { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'sessions', version: '1' } } : { tools: [] };
        response.writeHead(200, headers).end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const { port } = backend.address() as AddressInfo;
    gateway = await startTestGateway({ config: { routes: [{ path: '/mcp', backend: `http://127.0.0.1:${port}/mcp`, rateLimit: { sessionsPerUser: 2 } }] } });
  });
  after(async () => {
    await gateway?.close();
    await new Promise((resolve) => backend?.close(resolve));
  });

  const tokenOf = (sub: string, clientId = 'client-1') => mintAccessToken(gateway.keyring, gateway.url, { aud: `${gateway.url}/mcp`, sub, clientId });
  const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } };
  async function open(token: string, headers: Record<string, string> = {}): Promise<string> {
    const response = await mcpPost(`${gateway.url}/mcp`, token, initialize, headers);
    await response.body?.cancel();
    assert.equal(response.status, 200);
    return response.headers.get('mcp-session-id') ?? '';
  }
  async function list(token: string, session: string): Promise<number> {
    const response = await mcpPost(`${gateway.url}/mcp`, token, toolsList(2), { 'mcp-protocol-version': '2025-11-25', 'mcp-session-id': session });
    await response.body?.cancel();
    return response.status;
  }

  it("ends the user's oldest session, at the gateway and at the backend, when one more opens; another user's stay", async () => {
    const alice = await tokenOf('tenant/alice');
    const bob = await tokenOf('tenant/bob');
    const bobs = await open(bob);
    const first = await open(alice);
    const second = await open(alice);
    assert.deepEqual(deleted, [], 'within the limit, nothing ends');
    // The third's request carries a header of its client's own: the DELETE of another session does not.
    const third = await open(alice, { 'x-client-trace': 'third' });
    // Ended after the third session's answer, not before it: wait for the backend's DELETE.
    for (let wait = 0; wait < 200 && deleted.length === 0; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(deleted, [`${first} tenant/alice`]);
    assert.doesNotMatch(deleteHeaders[0] ?? '', /x-client-trace|content-type|content-length/, deleteHeaders[0]);
    assert.equal(await list(alice, first), 404, 'the oldest is refused as an ended session');
    assert.equal(await list(alice, second), 200);
    assert.equal(await list(alice, third), 200);
    assert.equal(await list(bob, bobs), 200, "another user's session is not counted with alice's");
  });

  it("bounds a user's sessions whatever clients open them, ending the opening client's own first", async () => {
    const ofA = await tokenOf('tenant/carol', 'client-a');
    const ofB = await tokenOf('tenant/carol', 'client-b');
    const a1 = await open(ofA);
    const b1 = await open(ofB);
    deleted.length = 0;
    // Carol is at her limit of 2. client-b opens another: client-b's own oldest ends, at the backend too, as carol.
    const b2 = await open(ofB);
    for (let wait = 0; wait < 200 && deleted.length === 0; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(deleted, [`${b1} tenant/carol`]);
    assert.equal(await list(ofB, b1), 404);
    assert.equal(await list(ofA, a1), 200, "client-a's session stays while client-b has its own to give up");
    // A third client with none of its own (client ids cost nothing: any CIMD URL) cannot lift the bound: carol's
    // oldest, client-a's, is forgotten here — its id 404s — but not DELETEd in client-c's name.
    const ofC = await tokenOf('tenant/carol', 'client-c');
    deleted.length = 0;
    await open(ofC);
    for (let wait = 0; wait < 200 && (await list(ofA, a1)) === 200; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(await list(ofA, a1), 404);
    assert.equal(await list(ofB, b2), 200);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(deleted, [], "no DELETE of client-a's session in client-c's name");
  });
});
