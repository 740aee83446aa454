import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as z from 'zod/v4';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { InMemoryTaskMessageQueue, InMemoryTaskStore } from '@modelcontextprotocol/sdk/experimental/tasks/stores/in-memory.js';
import { mcpTaskRecord } from '../../src/records/proxy.ts';
import { parseMcpPost } from '../../src/proxy/mcp-message.ts';
import { bindingTtlSeconds, createTaskBindings, REPLAYED_ANSWERS, TASK_BINDING_MAX_SECONDS, taskAnswerScreen, taskUseOf } from '../../src/proxy/task-bindings.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { auditRecordWithReason, createTestKeyring, mcpPost, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * MCP tasks through the gateway, against the MCP SDK's own stateless server with its in-memory task store, as its
 * examples build it: one store for every request. The SDK keys tasks by session, and a stateless server has none, so
 * the backend itself answered any caller for any task id. The gateway binds each task to the user, client and route
 * that created it (src/proxy/task-bindings.ts).
 */
describe('MCP tasks bound to the caller that created them', () => {
  const keyring = createTestKeyring();
  let backend: Server;
  let gateway: TestGateway;
  const taskStore = new InMemoryTaskStore();

  function taskServer(): McpServer {
    const server = new McpServer(
      { name: 'tasks', version: '1.0.0' },
      { capabilities: { tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } }, taskStore, taskMessageQueue: new InMemoryTaskMessageQueue() },
    );
    server.experimental.tasks.registerToolTask(
      'report',
      { inputSchema: { tag: z.string().default(''), ms: z.number().default(0) } },
      {
        async createTask({ tag, ms }, extra) {
          const task = await extra.taskStore.createTask({ ttl: extra.taskRequestedTtl ?? 60_000 });
          const finish = () => extra.taskStore.storeTaskResult(task.taskId, 'completed', { content: [{ type: 'text', text: `report for ${tag}` }] });
          if (ms === 0) await finish();
          else setTimeout(() => void finish().catch(() => undefined), ms);
          return { task };
        },
        getTask: (_args, extra) => extra.taskStore.getTask(extra.taskId),
        getTaskResult: async (_args, extra) => (await extra.taskStore.getTaskResult(extra.taskId)) as CallToolResult,
      },
    );
    return server;
  }

  before(async () => {
    backend = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: !request.url?.startsWith('/sse') });
        const server = taskServer();
        response.on('close', () => {
          void transport.close();
          void server.close();
        });
        void server
          .connect(transport)
          .then(() => transport.handleRequest(request, response, JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown));
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
    gateway = await startTestGateway({
      keyring,
      config: {
        routes: [
          {
            path: '/tasks',
            backend: `${origin}/json`,
            scopes: { 'mcp:tools': 'Use the tools', 'reports:run': 'Run reports' },
            tools: { report: { scopes: ['reports:run'] } },
          },
          { path: '/tasks-sse', backend: `${origin}/sse` },
        ],
      },
    });
  });
  after(async () => {
    await gateway.close();
    backend.closeAllConnections();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  });

  const tokenOf = (path: string, sub: string, clientId = 'client-a', scope = 'mcp:tools reports:run') =>
    mintAccessToken(keyring, gateway.url, { aud: `${gateway.url}${path}`, sub, clientId, scope });
  const rpc = (method: string, params: Record<string, unknown>, id: number | string = 1) => ({ jsonrpc: '2.0', id, method, params });

  /** The JSON-RPC message an answer carries (a JSON body, or the one event of an SSE answer). */
  async function messageOf(response: Response): Promise<{ result?: Record<string, unknown>; error?: { code: number; message: string } }> {
    const text = await response.text();
    if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) return JSON.parse(text) as never;
    const data = text.split('\n').find((line) => line.startsWith('data: {'));
    assert.ok(data, text);
    return JSON.parse(data.slice('data: '.length)) as never;
  }

  async function createTask(path: string, token: string, tag: string, ms = 0): Promise<string> {
    const created = await messageOf(await mcpPost(`${gateway.url}${path}`, token, rpc('tools/call', { name: 'report', arguments: { tag, ms }, task: { ttl: 60_000 } })));
    const taskId = (created.result?.task as { taskId?: string } | undefined)?.taskId;
    assert.equal(typeof taskId, 'string', JSON.stringify(created));
    return taskId!;
  }

  for (const path of ['/tasks', '/tasks-sse']) {
    it(`another user, or the same user's other client, cannot get, read, cancel or list a task (${path}); its creator can`, async () => {
      const alice = await tokenOf(path, 'tenant/alice');
      const bob = await tokenOf(path, 'tenant/bob');
      const aliceElsewhere = await tokenOf(path, 'tenant/alice', 'client-b');
      const done = await createTask(path, alice, 'alice-private');
      const running = await createTask(path, alice, 'alice-long', 60_000);

      for (const stranger of [bob, aliceElsewhere]) {
        for (const [method, taskId] of [['tasks/get', done], ['tasks/result', done], ['tasks/cancel', running]] as const) {
          const answer = await mcpPost(`${gateway.url}${path}`, stranger, rpc(method, { taskId }));
          assert.equal(answer.status, 200, method);
          const message = await messageOf(answer);
          assert.deepEqual(message.error, { code: -32602, message: 'Task not found' }, `${method}: ${JSON.stringify(message)}`);
        }
        const listed = await messageOf(await mcpPost(`${gateway.url}${path}`, stranger, rpc('tasks/list', {})));
        const ids = ((listed.result?.tasks ?? []) as Array<{ taskId: string }>).map((task) => task.taskId);
        assert.equal(ids.includes(done) || ids.includes(running), false, `a stranger's tasks/list: ${JSON.stringify(ids)}`);
      }
      // The 2026-07-28 revision removed tasks/result: a conformant backend answers it -32601 whatever the id, and so
      // does the gateway for a task not the caller's.
      const removed = await mcpPost(`${gateway.url}${path}`, bob, rpc('tasks/result', { taskId: done }), { 'mcp-protocol-version': '2026-07-28' });
      assert.deepEqual((await messageOf(removed)).error, { code: -32601, message: 'Method not found' });
      const listedV2 = await mcpPost(`${gateway.url}${path}`, bob, rpc('tasks/list', { cursor: done }), { 'mcp-protocol-version': '2026-07-28' });
      assert.deepEqual((await messageOf(listedV2)).error, { code: -32601, message: 'Method not found' });
      const cut = await auditRecordWithReason(gateway, 'task not found for this caller');
      assert.equal(cut?.['outcome'], 'denied');
      assert.ok(Number(cut?.['bytesOut']) > 0, 'the refusal the gateway wrote is counted');

      // The running task was not cancelled by them; its creator reads both and lists both.
      const status = await messageOf(await mcpPost(`${gateway.url}${path}`, alice, rpc('tasks/get', { taskId: running })));
      assert.equal(status.result?.status, 'working', JSON.stringify(status));
      const result = await messageOf(await mcpPost(`${gateway.url}${path}`, alice, rpc('tasks/result', { taskId: done })));
      assert.match(JSON.stringify(result.result), /report for alice-private/);
      const listed = await messageOf(await mcpPost(`${gateway.url}${path}`, alice, rpc('tasks/list', {})));
      const ids = ((listed.result?.tasks ?? []) as Array<{ taskId: string }>).map((task) => task.taskId);
      assert.ok(ids.includes(done) && ids.includes(running), JSON.stringify(ids));
      const cancelled = await messageOf(await mcpPost(`${gateway.url}${path}`, alice, rpc('tasks/cancel', { taskId: running })));
      assert.equal(cancelled.result?.status, 'cancelled', JSON.stringify(cancelled));
    });
  }

  it('a task of one route is unknown on another, and a batch naming a foreign task runs none of its requests', async () => {
    const alice = await tokenOf('/tasks', 'tenant/alice');
    const taskId = await createTask('/tasks', alice, 'route-one');
    const elsewhere = await tokenOf('/tasks-sse', 'tenant/alice');
    assert.deepEqual((await messageOf(await mcpPost(`${gateway.url}/tasks-sse`, elsewhere, rpc('tasks/get', { taskId })))).error?.code, -32602);

    const bob = await tokenOf('/tasks', 'tenant/bob');
    const own = await createTask('/tasks', bob, 'bobs');
    const batch = await mcpPost(`${gateway.url}/tasks`, bob, [rpc('tasks/get', { taskId: own }, 1), rpc('tasks/cancel', { taskId }, 2)]);
    const answers = (await batch.json()) as Array<{ id: number; error?: { code: number } }>;
    assert.deepEqual(answers.map((answer) => [answer.id, answer.error?.code]), [[1, -32602], [2, -32602]]);
    assert.equal((await messageOf(await mcpPost(`${gateway.url}/tasks`, alice, rpc('tasks/get', { taskId })))).result?.status, 'completed');
  });

  it('a task id that is not a string, or names no bound task, is unknown (the backend is not asked)', async () => {
    const bob = await tokenOf('/tasks', 'tenant/bob');
    for (const taskId of [42, null, '', 'made-up']) {
      const before = gateway.auditLines.length;
      const message = await messageOf(await mcpPost(`${gateway.url}/tasks`, bob, rpc('tasks/get', { taskId })));
      assert.equal(message.error?.code, -32602, JSON.stringify(taskId));
      // The gateway's answer, not the backend's (which says the same of an id it does not know).
      assert.ok(await auditRecordWithReason(gateway, 'task not found for this caller', before), JSON.stringify(taskId));
    }
    // Sent as a notification (no id), for a backend that would run it anyway: refused all the same.
    const alice = await tokenOf('/tasks', 'tenant/alice');
    const running = await createTask('/tasks', alice, 'notified', 60_000);
    const notified = await mcpPost(`${gateway.url}/tasks`, bob, { jsonrpc: '2.0', method: 'tasks/cancel', params: { taskId: running } });
    // Refused with an HTTP error status, as MCP asks of a notification a server does not accept (no id to answer).
    assert.equal(notified.status, 400);
    assert.equal((await messageOf(notified)).error?.code, -32602);
    assert.equal((await messageOf(await mcpPost(`${gateway.url}/tasks`, alice, rpc('tasks/get', { taskId: running })))).result?.status, 'working');
  });

  it("judges a later request naming a task by the policy of the tool that made it, as it is now", async () => {
    const taskId = await createTask('/tasks', await tokenOf('/tasks', 'tenant/carol'), 'before');
    // The same user and client, now without the tool's scope (a narrower token, a policy tightened by a reload).
    const narrower = await tokenOf('/tasks', 'tenant/carol', 'client-a', 'mcp:tools');
    const refused = await mcpPost(`${gateway.url}/tasks`, narrower, rpc('tasks/result', { taskId }));
    assert.equal(refused.status, 403);
    assert.match(refused.headers.get('www-authenticate') ?? '', /insufficient_scope/);
    // Stopping one's own work stays open.
    const running = await createTask('/tasks', await tokenOf('/tasks', 'tenant/carol'), 'running', 60_000);
    const cancelled = await messageOf(await mcpPost(`${gateway.url}/tasks`, narrower, rpc('tasks/cancel', { taskId: running })));
    assert.equal(cancelled.result?.status, 'cancelled', JSON.stringify(cancelled));
  });

  it('checks the tasks a 2026-07-28 subscriptions/listen names, as any request naming a task', async () => {
    const taskId = await createTask('/tasks', await tokenOf('/tasks', 'tenant/alice'), 'watched', 60_000);
    const bob = await tokenOf('/tasks', 'tenant/bob');
    for (const taskIds of [[taskId], 'not-a-list', [7]]) {
      const before = gateway.auditLines.length;
      const answer = await messageOf(await mcpPost(`${gateway.url}/tasks`, bob, rpc('subscriptions/listen', { notifications: { taskIds } })));
      assert.deepEqual(answer.error, { code: -32602, message: 'Task not found' }, JSON.stringify(taskIds));
      assert.ok(await auditRecordWithReason(gateway, 'task not found for this caller', before));
    }
  });

  it("seals a tasks/list page's cursor to its caller: the MCP SDK's cursor is the page's last task id, often another's", async () => {
    const dave = await tokenOf('/tasks', 'tenant/dave');
    const erin = await tokenOf('/tasks', 'tenant/erin');
    const own = await createTask('/tasks', dave, 'daves');
    const theirs = await Promise.all(Array.from({ length: 11 }, (_, index) => createTask('/tasks', erin, `erin-${index}`)));
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await messageOf(await mcpPost(`${gateway.url}/tasks`, dave, rpc('tasks/list', cursor === undefined ? {} : { cursor })));
      assert.equal(page.error, undefined, JSON.stringify(page));
      seen.push(...((page.result?.tasks ?? []) as Array<{ taskId: string }>).map((task) => task.taskId));
      cursor = page.result?.nextCursor as string | undefined;
      assert.equal(cursor !== undefined && theirs.includes(cursor), false, 'no task id of another in the cursor');
      pages += 1;
    } while (cursor !== undefined && pages < 10);
    assert.ok(seen.includes(own), 'dave pages to his own task');
    assert.deepEqual(seen.filter((id) => theirs.includes(id)), []);

    // A cursor the gateway did not hand this caller: the backend's own (another's task id), or one sealed to another.
    const firstPage = await messageOf(await mcpPost(`${gateway.url}/tasks`, erin, rpc('tasks/list', {})));
    const erinsCursor = firstPage.result?.nextCursor as string;
    assert.equal(typeof erinsCursor, 'string');
    for (const foreign of [theirs[0]!, erinsCursor, 42]) {
      const before = gateway.auditLines.length;
      const answer = await messageOf(await mcpPost(`${gateway.url}/tasks`, dave, rpc('tasks/list', { cursor: foreign })));
      assert.deepEqual(answer.error, { code: -32602, message: 'Invalid cursor' }, JSON.stringify(foreign));
      const audited = await auditRecordWithReason(gateway, 'task list cursor not handed to this caller', before);
      assert.equal(audited?.['outcome'], 'denied');
    }
    // Opened by writing the request again: alone, never a batch whose other messages would be written again with it.
    const batched = await mcpPost(`${gateway.url}/tasks`, dave, [rpc('tasks/list', { cursor: erinsCursor }, 1), rpc('ping', {}, 2)]);
    assert.equal(batched.status, 400);
  });

  it('refuses a batch whose requests share an id: its answers could not be told apart, and one passed unscreened', async () => {
    const bob = await tokenOf('/tasks', 'tenant/bob');
    const answer = await mcpPost(`${gateway.url}/tasks`, bob, [rpc('ping', { task: {} }, 1), rpc('tasks/list', {}, 1)]);
    assert.equal(answer.status, 400);
    assert.match(JSON.stringify(await answer.json()), /share an id/);
  });

  it('refuses a listing or task-making request whose id is no id (its answer could not be matched and screened)', async () => {
    const bob = await tokenOf('/tasks', 'tenant/bob');
    for (const id of [null, true, { x: 1 }]) {
      const answer = await mcpPost(`${gateway.url}/tasks`, bob, { jsonrpc: '2.0', id, method: 'tasks/list', params: {} });
      assert.equal(answer.status, 400, JSON.stringify(id));
    }
  });

  it('binds the task in the store, for its own TTL', async () => {
    const alice = await tokenOf('/tasks', 'tenant/alice');
    const taskId = await createTask('/tasks', alice, 'stored');
    const binding = await gateway.store.get<Record<string, unknown>>(mcpTaskRecord.namespace, `/tasks ${taskId}`);
    assert.equal(binding?.['subject'], 'tenant/alice');
    assert.equal(binding?.['clientId'], 'client-a');
  });
});

describe('the task screen, on the shapes of both generations', () => {
  const owner = { subject: 'tenant/alice', clientId: 'client-a' };
  const sealing = createTestKeyring();
  const postOf = (message: unknown) => parseMcpPost(Buffer.from(JSON.stringify(message)));
  let store: Store;
  before(async () => {
    store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
  });
  after(async () => {
    await store.close();
  });

  it('reads a 2026-07-28 task result (the extension declared in _meta) and binds it for its ttlMs', async () => {
    const bindings = createTaskBindings(store, Date.now, sealing);
    const meta = { 'io.modelcontextprotocol/clientCapabilities': { extensions: { 'io.modelcontextprotocol/tasks': {} } } };
    const screen = taskUseOf(postOf({ jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'report', arguments: {}, _meta: meta } }))?.screen;
    assert.ok(screen);
    const answer = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 'c1', result: { resultType: 'task', taskId: 'v2-task', status: 'working', ttlMs: 90_000, createdAt: '', lastUpdatedAt: '' } }));
    assert.equal(await taskAnswerScreen(bindings, '/mcp', owner, screen).json(answer), answer, 'passed on as it came');
    await bindings.require('/mcp', 'v2-task', owner);
    await assert.rejects(bindings.require('/mcp', 'v2-task', { ...owner, subject: 'tenant/bob' }), /Task not found/);
    assert.equal(bindingTtlSeconds(90_000), 240, 'twice the TTL and a minute: the SDK starts the TTL again when the result is stored');
    assert.equal(bindingTtlSeconds(null), TASK_BINDING_MAX_SECONDS);
    assert.equal(bindingTtlSeconds(1e15), TASK_BINDING_MAX_SECONDS);
    // A request that asks for no task, and is no tasks/list, has nothing read.
    assert.equal(taskUseOf(postOf({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'report', arguments: {} } })), undefined);
  });

  it('refuses a tasks/list answer a client may read otherwise (a list named twice, or in another case), and cuts one it reads', async () => {
    const bindings = createTaskBindings(store, Date.now, sealing);
    await bindings.bind('/mcp', 'mine', owner, undefined, 60);
    const screen = taskUseOf(postOf({ jsonrpc: '2.0', id: 7, method: 'tasks/list', params: {} }))!.screen!;
    const tasks = taskAnswerScreen(bindings, '/mcp', owner, screen);
    const listed = (list: string) => Buffer.from(`{"jsonrpc":"2.0","id":7,"result":${list}}`);
    await assert.rejects(tasks.json(listed('{"tasks":[{"taskId":"mine"}],"tasks":[{"taskId":"theirs"}]}')), /otherwise than the gateway/);
    await assert.rejects(tasks.json(listed('{"Tasks":[{"taskId":"theirs"}]}')), /otherwise than the gateway/);
    const cut = JSON.parse((await tasks.json(listed('{"tasks":[{"taskId":"mine"},{"taskId":"theirs"}],"nextCursor":"c"}'))).toString()) as { result: unknown };
    const { nextCursor, ...rest } = cut.result as { nextCursor: string };
    assert.deepEqual(rest, { tasks: [{ taskId: 'mine' }] });
    assert.equal(bindings.openCursor('/mcp', owner, nextCursor), 'c', 'the cursor is sealed to its caller');
    const event = await tasks.event({ id: '', event: '', data: '{"jsonrpc":"2.0","id":7,"\\u0072esult":{"tasks":[{"taskId":"theirs"}]}}' });
    assert.deepEqual(JSON.parse(event.data), { jsonrpc: '2.0', id: 7, result: { tasks: [] } }, 'a member spelt with escapes is read too');
  });

  it("screens a resumed stream's replayed answers by their shape: a task list cut, a created task bound to the caller", async () => {
    const bindings = createTaskBindings(store, Date.now, sealing);
    await bindings.bind('/mcp', 'alices', owner, 'report', 60);
    const tasks = taskAnswerScreen(bindings, '/mcp', owner, REPLAYED_ANSWERS);
    const listed = await tasks.event({ id: '9', event: 'message', data: JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tasks: [{ taskId: 'alices' }, { taskId: 'bobs' }], nextCursor: 'bobs' } }) });
    const { result } = JSON.parse(listed.data) as { result: { tasks: unknown[]; nextCursor: string } };
    assert.deepEqual(result.tasks, [{ taskId: 'alices' }]);
    assert.notEqual(result.nextCursor, 'bobs');
    assert.equal(bindings.openCursor('/mcp', owner, result.nextCursor), 'bobs');
    assert.throws(() => bindings.openCursor('/mcp', { ...owner, subject: 'tenant/bob' }, result.nextCursor), /Invalid cursor/);
    await tasks.event({ id: '10', event: 'message', data: JSON.stringify({ jsonrpc: '2.0', id: 4, result: { task: { taskId: 'replayed', status: 'working', ttl: 1000 } } }) });
    await bindings.require('/mcp', 'replayed', owner);
    // Anything else passes as it came.
    const other = { id: '11', event: 'message', data: '{"jsonrpc":"2.0","id":5,"result":{"content":[]}}' };
    assert.equal(await tasks.event(other), other);
  });

  it('refuses a task list page longer than it screens rather than cut its tail (the cursor would go past it for good)', async () => {
    const bindings = createTaskBindings(store, Date.now, sealing);
    const screen = taskUseOf(postOf({ jsonrpc: '2.0', id: 8, method: 'tasks/list', params: {} }))!.screen!;
    const tasks = Array.from({ length: 10_001 }, (_, index) => ({ taskId: `t${index}` }));
    await assert.rejects(taskAnswerScreen(bindings, '/mcp', owner, screen).json(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 8, result: { tasks } }))), /more than 10000 tasks/);
  });

  it('fails the answer when the binding cannot be written (the store down): no task handed out that its owner could not reach', async () => {
    const down = new Proxy(store, {
      get: (target, property, receiver) =>
        property === 'setIfAbsent' ? () => Promise.reject(new StoreUnavailableError('test outage')) : (Reflect.get(target, property, receiver) as unknown),
    });
    const bindings = createTaskBindings(down, Date.now, sealing);
    const screen = taskUseOf(postOf({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'report', task: {} } }))!.screen!;
    const answer = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { task: { taskId: 'lost', status: 'working', ttl: 1000 } } }));
    await assert.rejects(taskAnswerScreen(bindings, '/mcp', owner, screen).json(answer), StoreUnavailableError);
  });
});
