import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport as StreamableHTTPClientTransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { createTestKeyring, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * Real SDK clients through the gateway to real SDK backends, on every transport: v2 client at protocol 2026-07-28,
 * v1 client over Streamable HTTP with sessions (2025-11-25), and v1 over the legacy HTTP+SSE transport.
 */
const keyring = createTestKeyring();
let gateway: TestGateway;
const backends: Record<string, McpBackend> = {};

const textOf = (result: unknown): string => ((result as { content: Array<{ text: string }> }).content[0]?.text ?? '');

before(async () => {
  const identityFor = (path: string) => () => ({ jwks: keyring.publicJwks(), issuer: gateway.url, audience: gateway.url + path });
  backends.modern = await startMcpBackend({ kind: 'v2-stateless', identity: identityFor('/mcp') });
  backends.session = await startMcpBackend({ kind: 'v2-session', identity: identityFor('/mcp/session') });
  backends.legacy = await startMcpBackend({ kind: 'v1-sse', identity: identityFor('/mcp/legacy') });
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        { path: '/mcp', backend: backends.modern!.url, transports: ['streamable-http'] },
        { path: '/mcp/session', backend: backends.session!.url, transports: ['streamable-http'] },
        { path: '/mcp/legacy', backend: backends.legacy!.url, transports: ['sse'] },
      ],
    },
  });
});

after(async () => {
  await gateway?.close();
  for (const backend of Object.values(backends)) await backend.close();
});

const tokenFor = (path: string, sub = 'tenant/alice') => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path, sub });

function assertNoClientToken(backend: McpBackend, token: string): void {
  assert.ok(backend.seenHeaders.length > 0, 'the backend saw requests');
  for (const headers of backend.seenHeaders) {
    assert.ok(!JSON.stringify(headers).includes(token), 'the client token reached the backend');
    assert.equal(headers.cookie, undefined);
  }
}

describe('v2 SDK client, protocol 2026-07-28, Streamable HTTP', () => {
  it('lists and calls tools; the backend gets a verified identity, never the client token', async () => {
    const token = await tokenFor('/mcp');
    const client = new Client({ name: 'test-v2', version: '1.0.0' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url + '/mcp'), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((tool) => tool.name).sort(), ['echo', 'secret_tool', 'whoami']);
      assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'héllo' } })), 'héllo');
      const who = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, unknown>;
      assert.equal(who.sub, 'tenant/alice');
      assert.equal(who.aud, gateway.url + '/mcp');
      assert.equal(who.client_id, 'client-1');
      assert.equal(who.scope, 'mcp:tools');
      assert.equal(who.error, undefined);
    } finally {
      await client.close();
    }
    assertNoClientToken(backends.modern!, token);
    const seen = backends.modern!.seenHeaders.at(-1)!;
    assert.equal(seen['mcp-method'], 'tools/call');
    assert.equal(seen['mcp-name'], 'whoami');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
  });
});

describe('v1 SDK client, Streamable HTTP with sessions', () => {
  it('initializes a session, lists and calls tools, and deletes the session', async () => {
    const token = await tokenFor('/mcp/session');
    const transport = new StreamableHTTPClientTransportV1(new URL(gateway.url + '/mcp/session'), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    });
    const client = new ClientV1({ name: 'test-v1', version: '1.0.0' });
    await client.connect(transport);
    try {
      assert.ok(transport.sessionId, 'the backend issued a session id through the gateway');
      const { tools } = await client.listTools();
      assert.equal(tools.length, 3);
      const who = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, unknown>;
      assert.equal(who.sub, 'tenant/alice');
      assert.equal(who.aud, gateway.url + '/mcp/session');

      // Another user holding a valid token for this route cannot use alice's session.
      const mallory = await tokenFor('/mcp/session', 'tenant/mallory');
      const hijack = await fetch(gateway.url + '/mcp/session', {
        method: 'POST',
        headers: {
          authorization: `Bearer ${mallory}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': transport.sessionId,
          'mcp-protocol-version': '2025-11-25',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
      });
      assert.equal(hijack.status, 404);
      const body = (await hijack.json()) as { jsonrpc: string; id: number; error: { code: number } };
      assert.equal(body.jsonrpc, '2.0');
      assert.equal(body.id, 9);
      assert.equal(body.error.code, -32001);
      await transport.terminateSession();
    } finally {
      await client.close();
    }
    assertNoClientToken(backends.session!, token);
  });
});

describe('v1 SDK client, legacy HTTP+SSE transport', () => {
  it('gets an endpoint on the gateway, lists and calls tools', async () => {
    const token = await tokenFor('/mcp/legacy');
    const transport = new SSEClientTransport(new URL(gateway.url + '/mcp/legacy/sse'), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      eventSourceInit: {
        fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${token}` } }),
      },
    });
    const client = new ClientV1({ name: 'test-v1-sse', version: '1.0.0' });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      assert.equal(tools.length, 3);
      assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'legacy' } })), 'legacy');
      const who = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} }))) as Record<string, unknown>;
      assert.equal(who.sub, 'tenant/alice');
    } finally {
      await client.close();
    }
    assertNoClientToken(backends.legacy!, token);
  });
});
