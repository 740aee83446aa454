import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/runtime/clock.ts';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIT_NAMESPACE, createAuditLog, type AuditRecord } from '../../src/proxy/audit.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/** One audit record per MCP request (store + JSON lines, no arguments or tokens) and per-user/per-client limits. */
let backend: McpBackend;
let gateway: TestGateway;
const keyring = createTestKeyring();

before(async () => {
  backend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
  gateway = await startTestGateway({
    keyring,
    // A clock that stands still: the per-minute windows cannot roll over in the middle of a test.
    clock: new ManualClock(Date.now()),
    config: {
      routes: [
        { path: '/mcp', backend: backend.url, tools: { secret_tool: { scopes: ['mcp:secret'] } } },
        { path: '/limited', backend: backend.url, rateLimit: { perUserPerMinute: 3, perClientPerMinute: 100 } },
        { path: '/client-limited', backend: backend.url, rateLimit: { perUserPerMinute: 100, perClientPerMinute: 2 } },
      ],
    },
  });
});
after(async () => {
  await gateway?.close();
  await backend?.close();
});

const token = (path: string, sub = 'tenant/alice', clientId = 'client-1') =>
  mintAccessToken(keyring, gateway.url, { aud: gateway.url + path, sub, clientId });

async function waitForAudit(count: number): Promise<AuditRecord[]> {
  // Records are written after the response closes; poll the sink until they are there.
  while (gateway.auditLines.length < count) await new Promise((resolve) => setImmediate(resolve));
  return gateway.auditLines.map((line) => JSON.parse(line) as AuditRecord);
}

describe('audit', () => {
  it('records each request with user, client, method, tool, outcome, status and sizes — never arguments or tokens', async () => {
    const bearer = await token('/mcp', 'tenant/audited');
    const ok = await mcpPost(gateway.url + '/mcp', bearer, toolsCall('echo', { text: 'top-secret-argument' }));
    await ok.text();
    const denied = await mcpPost(gateway.url + '/mcp', bearer, toolsCall('secret_tool'));
    await denied.text();
    const records = (await waitForAudit(2)).filter((record) => record.user === 'tenant/audited');
    assert.equal(records.length, 2);
    const [allowed, refused] = records as [AuditRecord, AuditRecord];
    assert.equal(allowed.route, '/mcp');
    assert.equal(allowed.client, 'client-1');
    assert.equal(allowed.method, 'tools/call');
    assert.equal(allowed.tool, 'echo');
    assert.equal(allowed.outcome, 'allowed');
    assert.equal(allowed.status, 200);
    assert.ok(allowed.bytesIn > 0 && allowed.bytesOut > 0);
    assert.ok(allowed.durationMs >= 0);
    assert.equal(refused.tool, 'secret_tool');
    assert.equal(refused.outcome, 'denied');
    assert.equal(refused.status, 403);
    const all = gateway.auditLines.join('\n');
    assert.ok(!all.includes('top-secret-argument'), 'arguments are not audited');
    assert.ok(!all.includes(bearer), 'tokens are not audited');

    let stored: Array<{ value: AuditRecord }> = [];
    while (stored.length < 2) stored = await gateway.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'user', 'tenant/audited');
    assert.deepEqual(stored.map((entry) => entry.value.tool).sort(), ['echo', 'secret_tool']);
    const byTool = await gateway.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'tool', 'secret_tool');
    assert.ok(byTool.some((entry) => entry.value.user === 'tenant/audited'));
  });
});

describe('audit JSON-lines file', () => {
  it('appends one JSON line per record to the configured file, readable only by the owner', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gatehouse-audit-'));
    const path = join(dir, 'audit.jsonl');
    try {
      const log = createAuditLog({ store: gateway.store, random: cryptoRandom, logger: gateway.ctx.logger, output: path, retentionDays: 1 });
      const record: AuditRecord = { time: 1, route: '/mcp', outcome: 'allowed', status: 200, durationMs: 1, bytesIn: 2, bytesOut: 3, tool: 'echo' };
      log.record(record);
      log.record({ ...record, time: 2 });
      await log.close();
      const lines = (await readFile(path, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as AuditRecord);
      assert.deepEqual(lines.map((line) => line.time), [1, 2]);
      assert.equal((await stat(path)).mode & 0o777, 0o600);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After once a user spends the per-minute budget', async () => {
    const bearer = await token('/limited', 'tenant/busy');
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const response = await mcpPost(gateway.url + '/limited', bearer, toolsCall('echo', { text: 'x' }));
      statuses.push(response.status);
      if (response.status === 429) {
        const retryAfter = Number(response.headers.get('retry-after'));
        assert.ok(retryAfter >= 1 && retryAfter <= 60, String(retryAfter));
        assert.equal(((await response.json()) as { jsonrpc: string }).jsonrpc, '2.0');
      } else {
        await response.text();
      }
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    // Another user is not affected by alice's budget.
    const other = await mcpPost(gateway.url + '/limited', await token('/limited', 'tenant/calm'), toolsCall('echo', { text: 'x' }));
    assert.equal(other.status, 200);
    await other.text();
  });

  it('limits a client across its users', async () => {
    const statuses: number[] = [];
    for (const user of ['tenant/u1', 'tenant/u2', 'tenant/u3']) {
      const response = await mcpPost(gateway.url + '/client-limited', await token('/client-limited', user, 'noisy'), toolsCall('echo', { text: 'x' }));
      statuses.push(response.status);
      await response.text();
    }
    assert.deepEqual(statuses, [200, 200, 429]);
  });
});
