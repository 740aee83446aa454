import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateKeySet, serializeKeySet } from '../../src/keys/key-set.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import { mintAccessToken } from '../proxy/harness.ts';
import { startDemo, type RunningDemo } from '../support/demo-harness.ts';

/**
 * The sample server as the demo runs it, behind the gateway. A session's standalone GET stream (2025 generation)
 * stays silent until the server has something to say: its status and headers must still go out at once, or the
 * client, and the gateway that waits for the backend's headers, wait for them until the first event (forever, here).
 */
const keySet = generateKeySet({ now: Date.now(), signingAlgorithm: 'ES256' });
let demo: RunningDemo;
before(async () => {
  const keysFile = join(tmpdir(), `gatehouse-sample-stream-${process.pid}.json`);
  await writeFile(keysFile, serializeKeySet(keySet));
  demo = await startDemo({ config: { keys: { source: 'file', file: keysFile } } });
});
after(() => demo?.close());

describe('the sample server behind the gateway', () => {
  it("opens a session's standalone GET stream at once: status and headers before any event", async () => {
    const token = await mintAccessToken(keyringFromKeySet(keySet), demo.publicUrl, { aud: demo.mcpUrl, scope: 'mcp:tools graph:read', sub: 'stream-user' });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };
    const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
    const initialized = await fetch(demo.mcpUrl, { method: 'POST', headers, body: JSON.stringify(initialize) });
    await initialized.text();
    const sessionId = initialized.headers.get('mcp-session-id');
    assert.ok(sessionId, `initialize answered ${initialized.status}`);
    const notified = await fetch(demo.mcpUrl, { method: 'POST', headers: { ...headers, 'mcp-session-id': sessionId }, body: '{"jsonrpc":"2.0","method":"notifications/initialized"}' });
    await notified.text();
    // Given up after a while so the failure is an assertion, not the test runner's timeout.
    const controller = new AbortController();
    const giveUp = setTimeout(() => controller.abort(), 10_000);
    try {
      const stream = await fetch(demo.mcpUrl, { headers: { ...headers, accept: 'text/event-stream', 'mcp-session-id': sessionId }, signal: controller.signal }).catch(() => undefined);
      assert.ok(stream, 'the stream answered with its headers');
      assert.equal(stream.status, 200);
      assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    } finally {
      clearTimeout(giveUp);
      controller.abort();
    }
  });
});
