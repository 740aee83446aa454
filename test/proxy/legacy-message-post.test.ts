import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { Agent, fetch } from 'undici';
import { installGracefulShutdown } from '../../src/server/graceful-shutdown.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { createTestKeyring, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * A legacy HTTP+SSE client keeps its connection after a message POST (the next message follows on it). A SIGTERM
 * must then end the drain as soon as the last response has, not wait out the grace period (30 s here) on a client
 * that is only idle. (A production-started gateway did wait it out after the benchmark's legacy load; this
 * in-process gateway did not reproduce Node missing the idle connection, so the test guards the drain, and the
 * benchmark's stop time showed the fix: 10 s before, well under a second after.)
 */
const keyring = createTestKeyring();
let gateway: TestGateway;

let backend: McpBackend;

before(async () => {
  backend = await startMcpBackend({ kind: 'v1-sse', recordHeaders: false });
  gateway = await startTestGateway({ keyring, config: { routes: [{ path: '/legacy', backend: `${backend.url}/sse`, transports: ['sse'] }] } });
});

after(async () => {
  await gateway?.close();
  await backend?.close();
});

describe('legacy HTTP+SSE message POSTs', () => {
  /** Opens a legacy stream; `post` sends a message to the session's messages URL from its `endpoint` event. */
  async function withLegacySession(run: (post: (init: { headers?: Record<string, string>; body: string }) => ReturnType<typeof fetch>) => Promise<void>) {
    const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/legacy` });
    const headers = { authorization: `Bearer ${token}` };
    const stream = new AbortController();
    try {
      const sse = await fetch(`${gateway.url}/legacy/sse`, { headers, signal: stream.signal });
      const reader = sse.body!.getReader();
      let text = '';
      while (!/data: (\S+)\n\n/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      const messagesUrl = /data: (\S+)\n\n/.exec(text)![1]!;
      await run((init) => fetch(messagesUrl, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', ...init.headers }, body: init.body }));
    } finally {
      stream.abort();
    }
  }

  it('relays the backend ack (sent chunked) as one message with its length, not as a stream', async () => {
    await withLegacySession(async (post) => {
      const posted = await post({
        body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'test', version: '1' } } }),
      });
      assert.equal(posted.status, 202);
      assert.equal(posted.headers.get('transfer-encoding'), null);
      assert.equal(posted.headers.get('content-length'), String(Buffer.byteLength(await posted.text())));
    });
  });

  it('refuses Mcp-Method/Mcp-Name headers that disagree with the message, as Streamable HTTP does (-32020)', async () => {
    // They are forwarded like any header: a backend routing on them would see another call than the one judged.
    await withLegacySession(async (post) => {
      const posted = await post({
        headers: { 'mcp-method': 'tools/call', 'mcp-name': 'secret_tool' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping' }),
      });
      assert.equal(posted.status, 400);
      assert.equal(((await posted.json()) as { error: { code: number } }).error.code, -32020);
    });
  });

  it('refuses MCP tasks (a task-augmented call, tasks/*): served over Streamable HTTP only, where each is bound to its caller', async () => {
    await withLegacySession(async (post) => {
      for (const message of [
        { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'echo', arguments: {}, task: { ttl: 1000 } } },
        { jsonrpc: '2.0', id: 9, method: 'tasks/get', params: { taskId: 'someone-elses' } },
        { jsonrpc: '2.0', id: 10, method: 'tasks/list', params: {} },
      ]) {
        const posted = await post({ body: JSON.stringify(message) });
        assert.equal(posted.status, 400, message.method);
        assert.match(((await posted.json()) as { error: { message: string } }).error.message, /Streamable HTTP only/);
      }
    });
  });

  it('ends the drain once the last response has, though the client keeps its connection after a message POST', async () => {
    const token = await mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}/legacy` });
    const headers = { authorization: `Bearer ${token}` };
    const dispatcher = new Agent({ keepAliveTimeout: 60_000 });
    try {
      const stream = new AbortController();
      const sse = await fetch(`${gateway.url}/legacy/sse`, { headers, signal: stream.signal, dispatcher });
      assert.equal(sse.status, 200);
      const reader = sse.body!.getReader();
      let text = '';
      while (!/data: (\S+)\n\n/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      const messagesUrl = /data: (\S+)\n\n/.exec(text)![1]!;
      const posted = await fetch(messagesUrl, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'test', version: '1' } } }),
        dispatcher,
      });
      assert.equal(posted.status, 202);
      assert.equal(await posted.text(), 'Accepted');
      stream.abort();

      const shutdown = installGracefulShutdown(gateway.app, { graceMs: 30_000, logger: gateway.ctx.logger, closeResources: async () => {}, signals: new EventEmitter() });
      assert.equal(await shutdown.shutdown('test'), 0);
      assert.equal(gateway.app.lifecycle.cutting, false, 'the drain ended by itself, not at the grace deadline');
    } finally {
      await dispatcher.destroy();
    }
  });
});
