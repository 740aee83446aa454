import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManualClock, systemClock } from '../../src/runtime/clock.ts';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIT_NAMESPACE, createAuditLog, type AuditRecord } from '../../src/proxy/audit.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { createRateLimiter } from '../../src/proxy/rate-limit.ts';
import { routeSchema } from '../../src/config/schema.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
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

    // The JSON lines and the store rows are written by the same batch, so the rows are there once the lines are.
    let stored: Array<{ value: AuditRecord }> = [];
    while (stored.length < 2) {
      stored = await gateway.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'user', 'tenant/audited');
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.deepEqual(stored.map((entry) => entry.value.tool).sort(), ['echo', 'secret_tool']);
    const byTool = await gateway.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'tool', 'secret_tool');
    assert.ok(byTool.some((entry) => entry.value.user === 'tenant/audited'));
  });

  it("keeps at most 256 characters of the client's tool name and method, in the record, its index and the file", async () => {
    // One caller's 3-million-character tool name was 9 MB of Redis per request (record, index set, audit line).
    const bearer = await token('/mcp', 'tenant/long-names');
    const longTool = `t${'x'.repeat(300_000)}`;
    // A surrogate pair straddling the cut: the bound never leaves half of one.
    const longMethod = `${'m'.repeat(254)}😀${'m'.repeat(100_000)}`;
    for (const message of [toolsCall(longTool), { jsonrpc: '2.0', id: 2, method: longMethod, params: {} }]) {
      const response = await mcpPost(gateway.url + '/mcp', bearer, message);
      await response.text();
    }
    let stored: Array<{ value: AuditRecord }> = [];
    while (stored.length < 2) {
      stored = await gateway.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'user', 'tenant/long-names');
      await new Promise((resolve) => setImmediate(resolve));
    }
    const lines = gateway.auditLines.filter((line) => line.includes('tenant/long-names'));
    assert.equal(lines.length, 2);
    assert.ok(lines.every((line) => line.length < 1_000), 'the audit lines stay small');
    const tool = stored.find((entry) => entry.value.method === 'tools/call')?.value.tool;
    assert.equal(tool, `${longTool.slice(0, 255)}…`);
    const method = stored.find((entry) => entry.value.method !== 'tools/call')?.value.method;
    assert.equal(method, `${'m'.repeat(254)}…`);
    // The index is named after the bounded name, never the full one.
    assert.equal((await gateway.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'tool', tool!)).length, 1);
    assert.equal((await gateway.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'tool', longTool)).length, 0);
  });

  it('never records a token a client sent as its tool name or method (the log line of the request redacts it)', async () => {
    const bearer = await token('/mcp', 'tenant/token-as-name');
    const [header, payload] = bearer.split('.');
    // Under the 256-character bound, a token was kept whole; the request's log line already said [REDACTED].
    const short = `${header}.${payload!.slice(0, 40)}.${'s'.repeat(43)}`;
    for (const message of [toolsCall(short), { jsonrpc: '2.0', id: 3, method: `x/${bearer}`, params: {} }]) {
      await (await mcpPost(gateway.url + '/mcp', bearer, message)).text();
    }
    let stored: Array<{ value: AuditRecord }> = [];
    while (stored.length < 2) {
      stored = await gateway.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'user', 'tenant/token-as-name');
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.deepEqual(stored.map((entry) => entry.value.tool ?? entry.value.method).sort(), ['[REDACTED]', 'x/[REDACTED]']);
    const lines = gateway.auditLines.filter((line) => line.includes('tenant/token-as-name'));
    assert.ok(lines.length === 2 && lines.every((line) => !line.includes(payload!.slice(0, 40))), lines.join('\n'));
  });

  it('records why a request was refused (its error code), so the console can count denials by reason', async () => {
    const before = gateway.auditLines.length;
    const noToken = await fetch(gateway.url + '/mcp', { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify(toolsCall('echo')) });
    await noToken.text();
    const bearer = await token('/mcp', 'tenant/reasons');
    const missingScope = await mcpPost(gateway.url + '/mcp', bearer, toolsCall('secret_tool'));
    await missingScope.text();
    const refusedToken = await mcpPost(gateway.url + '/mcp', `${bearer.slice(0, -4)}AAAA`, toolsCall('echo'));
    await refusedToken.text();
    const tokenInQuery = await mcpPost(`${gateway.url}/mcp?access_token=${bearer}`, undefined, toolsCall('echo'));
    await tokenInQuery.text();
    const records = (await waitForAudit(before + 4)).slice(before);
    // No token at all is a client's discovery step, told apart from a token sent and refused (in the header or not).
    assert.deepEqual(records.map((record) => [record.status, record.outcome, record.reason]).sort(), [
      [401, 'denied', 'invalid_token'],
      [401, 'denied', 'invalid_token'],
      [401, 'denied', 'no token'],
      [403, 'denied', 'insufficient_scope: missing scope mcp:secret'],
    ]);
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

describe('audit batching', () => {
  const record = (time: number, user: string): AuditRecord => ({ time, user, route: '/mcp', outcome: 'allowed', status: 200, durationMs: 1, bytesIn: 2, bytesOut: 3 });
  const newLog = (sinkWrites: string[], options: { flushIntervalMs?: number; maxBatch?: number } = {}) =>
    createAuditLog({
      store: gateway.store,
      random: cryptoRandom,
      logger: gateway.ctx.logger,
      output: 'store',
      retentionDays: 1,
      sink: { write: (chunk: string) => sinkWrites.push(chunk) },
      ...options,
    });

  it('writes queued records in one sink write per batch, and loses none on close', async () => {
    const writes: string[] = [];
    // An interval no test waits for: only close() can have written these.
    const log = newLog(writes, { flushIntervalMs: 3_600_000 });
    for (let i = 0; i < 5; i++) log.record(record(10 + i, 'tenant/batched'));
    assert.equal(writes.length, 0, 'nothing is written on the request path');
    await log.close();
    assert.equal(writes.length, 1, 'one write for the batch');
    const lines = writes.join('').trim().split('\n').map((line) => JSON.parse(line) as AuditRecord);
    assert.deepEqual(lines.map((line) => line.time), [10, 11, 12, 13, 14]);
    const stored = await gateway.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'user', 'tenant/batched');
    assert.deepEqual(stored.map((entry) => entry.value.time).sort(), [10, 11, 12, 13, 14]);
  });

  it('writes a full batch at once, and records that arrive after close still reach the store', async () => {
    const writes: string[] = [];
    const log = newLog(writes, { flushIntervalMs: 3_600_000, maxBatch: 3 });
    for (let i = 0; i < 3; i++) log.record(record(20 + i, 'tenant/full-batch'));
    await log.flush();
    assert.equal(writes.length, 1);
    await log.close();
    log.record(record(30, 'tenant/full-batch'));
    await log.flush();
    const stored = await gateway.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'user', 'tenant/full-batch');
    assert.deepEqual(stored.map((entry) => entry.value.time).sort(), [20, 21, 22, 30]);
  });

  it('flushes the gateway\'s queue when the server closes', async () => {
    const local = await startTestGateway({ keyring, config: { routes: [{ path: '/mcp', backend: backend.url }] } });
    const bearer = await mintAccessToken(keyring, local.url, { aud: `${local.url}/mcp`, sub: 'tenant/closing' });
    const response = await mcpPost(`${local.url}/mcp`, bearer, toolsCall('echo', { text: 'x' }));
    await response.text();
    await local.app.close();
    const stored = await local.store.findByIndex<AuditRecord>(AUDIT_NAMESPACE, 'user', 'tenant/closing');
    assert.equal(stored.length, 1);
    assert.equal(local.auditLines.length, 1);
    await local.close();
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

describe('rate limiter leases', () => {
  const route = (perUserPerMinute: number) =>
    routeSchema.parse({ path: '/one', backend: 'http://127.0.0.1:9/mcp', rateLimit: { perUserPerMinute, perClientPerMinute: 1_000_000 } });
  const isLimited = (error: unknown) => error instanceof ProtocolError && error.code === 'rate_limited';
  /** Admitted (true) or refused (false), whether the limiter answered at once or once the store had. */
  const admitted = async (attempt: () => void | Promise<void>) => {
    try {
      await attempt();
      return true;
    } catch (error) {
      if (!isLimited(error)) throw error;
      return false;
    }
  };

  it('never lets a burst spread over replicas through more than once: the replicas claim the budget before they admit', async () => {
    // The same store behind two limiters, as two replicas behind one Redis. Batched counts let each replica admit
    // the whole limit before hearing of the other's (20 of 10 here).
    const store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    const clock = new ManualClock(Date.now());
    const replicas = [createRateLimiter({ store, clock }), createRateLimiter({ store, clock })];
    try {
      for (const [limit, burst] of [[10, 40], [1_000, 3_000]] as const) {
        const limited = route(limit);
        const user = `tenant/burst-${limit}`;
        const results = await Promise.all(Array.from({ length: burst }, (_, i) => admitted(() => replicas[i % 2]!.consume(limited, user, 'client-1'))));
        const count = results.filter(Boolean).length;
        assert.ok(count <= limit, `${count} admitted of a limit of ${limit}`);
        // What it costs: the leases (a twentieth of the limit) each replica claimed and did not use.
        assert.ok(count >= limit - 2 * 1.5 * Math.max(1, Math.floor(limit / 20)), `${count} admitted of a limit of ${limit}`);
      }
    } finally {
      await Promise.all(replicas.map((replica) => replica.stop()));
      await store.close();
    }
  });

  it('admits at once while it holds a lease, claiming the next one ahead once its leases have grown', async () => {
    let increments = 0;
    const store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    const counted = { increment: (...args: Parameters<Store['increment']>) => (increments++, store.increment(...args)) } as unknown as Store;
    const limiter = createRateLimiter({ store: counted, clock: new ManualClock(Date.now()) });
    try {
      const limited = route(600);
      let waited = 0;
      const waits: number[] = [];
      for (let i = 0; i < 200; i++) {
        const next = limiter.consume(limited, 'tenant/alice', 'client-1');
        if (next !== undefined) {
          waited++;
          waits.push(i);
          await next;
        }
        // Let a claim made ahead settle, as requests spaced on a real event loop would.
        await new Promise((resolve) => setImmediate(resolve));
      }
      // Leases follow what this replica admitted (1, 1, 2, 3, …, up to 30): the window's first requests wait, then none.
      assert.ok(waited <= 3 && waits.every((index) => index < 3), `requests ${waits.join(', ')} waited`);
      // Not one claim per request (two budgets: user and client).
      assert.ok(increments <= 30, `${increments} increments for 200 requests`);
    } finally {
      await limiter.stop();
      await store.close();
    }
  });

  it('leaves little of a budget unclaimed however many replicas share it, and opens again when a reload raises the limit', async () => {
    const store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    const clock = new ManualClock(Date.now());
    const replicas = Array.from({ length: 40 }, () => createRateLimiter({ store, clock }));
    try {
      // One user's requests, one at a time, round robin over 40 replicas: a lease of a fixed twentieth of the limit
      // had each replica hold up to 45 unused, and the first 429 came at request 20 of a limit of 600.
      let admittedInARow = 0;
      for (let i = 0; i < 600; i++) {
        if (!(await admitted(() => replicas[i % 40]!.consume(route(600), 'tenant/spread', 'client-1')))) break;
        admittedInARow++;
      }
      assert.ok(admittedInARow >= 450, `the first refusal came after ${admittedInARow} of 600`);
      // A reload raises the limit: the budget the window had spent is open again.
      const one = replicas[0]!;
      while (await admitted(() => one.consume(route(600), 'tenant/spread', 'client-1')));
      assert.equal(await admitted(() => one.consume(route(1_200), 'tenant/spread', 'client-1')), true);
    } finally {
      await Promise.all(replicas.map((replica) => replica.stop()));
      await store.close();
    }
  });

  it('counts alone when the store answers no number for a counter, rather than claim for ever', async () => {
    const broken = { increment: () => Promise.resolve(Number.NaN) } as unknown as Store;
    const limiter = createRateLimiter({ store: broken, clock: new ManualClock(Date.now()) });
    try {
      assert.equal(await admitted(() => limiter.consume(route(2), 'tenant/alice', 'client-1')), true);
    } finally {
      await limiter.stop();
    }
  });

  it('counts alone, against the whole limit, when the store cannot be reached, and says so once', async () => {
    const errors: unknown[] = [];
    const down = { increment: () => Promise.reject(new StoreUnavailableError('the store is unavailable')) } as unknown as Store;
    const limiter = createRateLimiter({ store: down, clock: new ManualClock(Date.now()), onError: (error) => errors.push(error) });
    try {
      const results: boolean[] = [];
      for (let i = 0; i < 5; i++) results.push(await admitted(() => limiter.consume(route(3), 'tenant/alice', 'client-1')));
      assert.deepEqual(results, [true, true, true, false, false]);
      assert.equal(errors.length, 2, 'one failed claim per budget (user and client), not one per request');
    } finally {
      await limiter.stop();
    }
  });
});
