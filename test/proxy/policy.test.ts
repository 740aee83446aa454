import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { accountRecord, type AccountRecord } from '../../src/records/account.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { auditRecordWithReason, batchAuditRecords, createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, toolsList, type TestGateway } from './harness.ts';

/** Per-tool policy, tools/list filtering, 2026-07-28 header checks and malformed bodies. */
let jsonBackend: McpBackend;
let sseBackend: McpBackend;
let legacyBackend: McpBackend;
let gateway: TestGateway;
const keyring = createTestKeyring();
// A scope and a group: a step-up cannot give the group, so the tool is hidden from those without both (a scope alone
// keeps it listed for the step-up: "a tool that needs only a scope" below).
const policy = { secret_tool: { scopes: ['mcp:secret'], groups: ['admins'] } };

before(async () => {
  jsonBackend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
  sseBackend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'sse' });
  legacyBackend = await startMcpBackend({ kind: 'v1-sse' });
  gateway = await startTestGateway({
    keyring,
    config: {
      server: { allowedOrigins: ['https://app.example'] },
      routes: [
        { path: '/json', backend: jsonBackend.url, scopes: { 'mcp:tools': 'Tools', 'mcp:secret': 'Secret' }, tools: policy },
        // A REST API behind a plain HTTP route (never reached here: only its preflights are asked).
        { path: '/rest', type: 'http', backend: 'http://127.0.0.1:9/rest' },
        { path: '/sse', backend: sseBackend.url, tools: policy },
        { path: '/legacy', backend: legacyBackend.url, transports: ['sse'], tools: policy },
        {
          path: '/legacy-groups',
          backend: legacyBackend.url,
          transports: ['sse'],
          tools: { secret_tool: { groups: ['admins'] } },
          deniedToolResponse: 'jsonrpc_error',
        },
        // A tool that needs only a scope, answered with the step-up challenge (the default) or a JSON-RPC error.
        { path: '/step-up', backend: jsonBackend.url, scopes: { 'mcp:tools': 'Tools', 'mcp:secret': 'Secret' }, tools: { secret_tool: { scopes: ['mcp:secret'] } } },
        // The tool's scope is not among the route's: consent cannot grant it, so no step-up opens the tool.
        { path: '/step-up-unoffered', backend: jsonBackend.url, tools: { secret_tool: { scopes: ['admin'] } } },
        {
          path: '/no-step-up',
          backend: jsonBackend.url,
          scopes: { 'mcp:tools': 'Tools', 'mcp:secret': 'Secret' },
          tools: { secret_tool: { scopes: ['mcp:secret'] } },
          deniedToolResponse: 'jsonrpc_error',
        },
        {
          path: '/groups',
          backend: jsonBackend.url,
          tools: { secret_tool: { groups: ['admins'] } },
          deniedToolResponse: 'jsonrpc_error',
        },
      ],
    },
  });
  const account: AccountRecord = { subject: 'tenant/admin', issuer: 'https://idp', groups: ['admins'], firstSeenAt: 1, lastSeenAt: 1 };
  await gateway.store.set(accountRecord.namespace, account.subject, account);
});
after(async () => {
  await gateway?.close();
  await jsonBackend?.close();
  await sseBackend?.close();
  await legacyBackend?.close();
});

const tokenFor = (path: string, scope = 'mcp:tools', sub = 'tenant/alice') =>
  mintAccessToken(keyring, gateway.url, { aud: gateway.url + path, scope, sub });

async function listedTools(response: Response): Promise<string[]> {
  const text = await response.text();
  const json = response.headers.get('content-type')?.includes('text/event-stream')
    ? text.split('\n').find((line) => line.startsWith('data: ') && line.includes('"tools"'))!.slice(6)
    : text;
  return ((JSON.parse(json) as { result: { tools: Array<{ name: string }> } }).result.tools.map((tool) => tool.name)).sort();
}

describe('per-tool policy', () => {
  it('filters tools/list to what the caller may call (JSON response)', async () => {
    const response = await mcpPost(gateway.url + '/json', await tokenFor('/json'), toolsList());
    assert.equal(response.status, 200);
    assert.deepEqual(await listedTools(response), ['echo', 'whoami']);
    const full = await mcpPost(gateway.url + '/json', await tokenFor('/json', 'mcp:tools mcp:secret', 'tenant/admin'), toolsList());
    assert.deepEqual(await listedTools(full), ['echo', 'secret_tool', 'whoami']);
  });

  it('lists a tool that needs only a scope, so a client can call it and meet the step-up challenge (MCP step-up flow)', async () => {
    // Hidden, it was never called: the 403 insufficient_scope that starts a step-up could not be reached.
    const bearer = await tokenFor('/step-up');
    assert.deepEqual(await listedTools(await mcpPost(gateway.url + '/step-up', bearer, toolsList())), ['echo', 'secret_tool', 'whoami']);
    const call = await mcpPost(gateway.url + '/step-up', bearer, toolsCall('secret_tool'));
    assert.equal(call.status, 403);
    const challenge = call.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /error="insufficient_scope"/);
    assert.match(challenge, /scope="[^"]*mcp:secret/);
    await call.body?.cancel();
    // A scope the route does not offer: hidden (listed, its challenge would send the client round in circles).
    assert.deepEqual(await listedTools(await mcpPost(gateway.url + '/step-up-unoffered', await tokenFor('/step-up-unoffered'), toolsList())), ['echo', 'whoami']);
    // Refused with a JSON-RPC error instead, there is no step-up to start: hidden.
    assert.deepEqual(await listedTools(await mcpPost(gateway.url + '/no-step-up', await tokenFor('/no-step-up'), toolsList())), ['echo', 'whoami']);
  });

  it('filters tools/list inside a batch too', async () => {
    // The filter once ran only for a single-request body: `[tools/list]` (2025-03-26 batching) listed everything.
    const response = await mcpPost(gateway.url + '/json', await tokenFor('/json'), [toolsList(1)], { 'mcp-protocol-version': '2025-03-26' });
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.match(text, /whoami/);
    assert.doesNotMatch(text, /secret_tool/);
  });

  it('filters tools/list in an SSE response', async () => {
    const response = await mcpPost(gateway.url + '/sse', await tokenFor('/sse'), toolsList());
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/);
    assert.equal(response.headers.get('x-accel-buffering'), 'no');
    assert.deepEqual(await listedTools(response), ['echo', 'whoami']);
  });

  it('filters tools/list and refuses denied calls on the legacy HTTP+SSE transport', async () => {
    const token = await tokenFor('/legacy');
    const transport = new SSEClientTransport(new URL(gateway.url + '/legacy/sse'), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${token}` } }) },
    });
    const client = new Client({ name: 'policy-legacy', version: '1.0.0' });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((tool) => tool.name).sort(), ['echo', 'whoami']);
      await assert.rejects(client.callTool({ name: 'secret_tool', arguments: {} }), /403|insufficient_scope|scope/i);
    } finally {
      await client.close();
    }
  });

  it('refuses a denied call sent as a notification with an HTTP error status, not a 200 answering no request (jsonrpc_error)', async () => {
    const response = await mcpPost(gateway.url + '/groups', await tokenFor('/groups'), { jsonrpc: '2.0', method: 'tools/call', params: { name: 'secret_tool', arguments: {} } });
    assert.equal(response.status, 403);
    assert.equal(((await response.json()) as { id: unknown }).id, null);
    // A call with an id is still answered 200 with the JSON-RPC error, as the route asks.
    const call = await mcpPost(gateway.url + '/groups', await tokenFor('/groups'), toolsCall('secret_tool'));
    assert.equal(call.status, 200);
    await call.body?.cancel();
    // The trail says which rule refused it, not only `access_denied`.
    assert.ok(await auditRecordWithReason(gateway, 'access_denied: in none of the groups the tool requires'));
  });

  it('refuses a denied call on the legacy transport where the client reads it, with jsonrpc_error too', async () => {
    // A legacy client reads answers only from its stream: a JSON-RPC error in a 200 POST body was lost (the call hung).
    const token = await tokenFor('/legacy-groups');
    const transport = new SSEClientTransport(new URL(gateway.url + '/legacy-groups/sse'), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${token}` } }) },
    });
    const client = new Client({ name: 'policy-legacy-jsonrpc', version: '1.0.0' });
    await client.connect(transport);
    try {
      await assert.rejects(client.callTool({ name: 'secret_tool', arguments: {} }, undefined, { timeout: 5_000 }), /403.*not allowed to call secret_tool/s);
    } finally {
      await client.close();
    }
  });

  it('reads a message the way the backend will: a charset other than UTF-8 is 415, not a way around the tool policy', async () => {
    // The legacy backend (MCP SDK v1) decodes a POST by its charset. Under UTF-7 the key `+AG4AYQBtAGU-` is `name`,
    // so the backend read a second `name` — `secret_tool`, which this token may not call — where the gateway had read
    // `echo` (UTF-8), and the call went through.
    const smuggled = '"name":"echo","+AG4AYQBtAGU-":"secret_tool"';
    const token = await tokenFor('/legacy');
    const posts: Array<{ status: number; contentType: string | null }> = [];
    const smuggling: typeof fetch = async (url, init) => {
      const body = typeof init?.body === 'string' ? init.body : undefined;
      if (init?.method !== 'POST' || body === undefined || !body.includes('"arguments":{"text":"smuggle"}')) return fetch(url, init);
      const headers = new Headers(init.headers);
      headers.set('content-type', 'application/json; charset=utf-7');
      const response = await fetch(url, { ...init, headers, body: body.replace('"name":"echo"', smuggled) });
      posts.push({ status: response.status, contentType: headers.get('content-type') });
      return response;
    };
    const transport = new SSEClientTransport(new URL(gateway.url + '/legacy/sse'), {
      fetch: smuggling,
      requestInit: { headers: { authorization: `Bearer ${token}` } },
      eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${token}` } }) },
    });
    const client = new Client({ name: 'policy-charset', version: '1.0.0' });
    await client.connect(transport);
    try {
      const answer = client.callTool({ name: 'echo', arguments: { text: 'smuggle' } }, undefined, { timeout: 5_000 });
      await assert.rejects(answer, /415/);
      assert.deepEqual(posts, [{ status: 415, contentType: 'application/json; charset=utf-7' }]);
      // The same call in UTF-8, named so in any spelling, is served, and reaches the backend as plain `application/json`.
      const before = legacyBackend.seenHeaders.length;
      const utf8 = new SSEClientTransport(new URL(gateway.url + '/legacy/sse'), {
        fetch: (url, init) => {
          const headers = new Headers(init?.headers);
          if (init?.method === 'POST') headers.set('content-type', 'Application/JSON; Charset="UTF-8"');
          return fetch(url, { ...init, headers });
        },
        requestInit: { headers: { authorization: `Bearer ${token}` } },
        eventSourceInit: { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${token}` } }) },
      });
      const second = new Client({ name: 'policy-charset-utf8', version: '1.0.0' });
      await second.connect(utf8);
      try {
        const echoed = await second.callTool({ name: 'echo', arguments: { text: 'plain' } });
        assert.match(JSON.stringify(echoed.content), /plain/);
      } finally {
        await second.close();
      }
      const posted = legacyBackend.seenHeaders.slice(before).filter((headers) => headers['content-length'] !== undefined);
      assert.ok(posted.length > 0);
      for (const headers of posted) assert.equal(headers['content-type'], 'application/json');
    } finally {
      await client.close();
    }
  });

  it('refuses a tool name given twice, either way round: a backend parser may keep the one JSON.parse does not', async () => {
    const token = await tokenFor('/json');
    for (const twice of [
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","name":"secret_tool","arguments":{}}}',
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"secret_tool","name":"echo","arguments":{}}}',
    ]) {
      const response = await mcpPost(gateway.url + '/json', token, twice);
      assert.equal(response.status, 400, twice);
      assert.equal(((await response.json()) as { error: { code: number } }).error.code, -32600);
    }
  });

  it('judges a call by the policy of a name that folds alike (case, NFKC, outer spaces), for a backend that matches loosely', async () => {
    const token = await tokenFor('/json');
    // Invisible characters too: zero-width space and joiner, soft hyphen, NUL.
    for (const name of ['SECRET_TOOL', 'secret_tool ', 'ｓｅｃｒｅｔ＿ｔｏｏｌ', 'secret_tool\u200b', 'secret_\u00adtool', 'SeCrEt_ToOl\u200d', 'secret_tool\u0000', 'secret_tool \u200b']) {
      const response = await mcpPost(gateway.url + '/json', token, toolsCall(name, {}));
      assert.equal(response.status, 403, JSON.stringify(name));
      await response.body?.cancel();
    }
    const allowed = await mcpPost(gateway.url + '/json', token, toolsCall('ECHO', { text: 'x' }));
    assert.notEqual(allowed.status, 403, 'a name without a policy of its own or a look-alike is not refused');
    await allowed.body?.cancel();
  });

  it('refuses a tools/call whose tool name is not a string, or that passes for a response, before any backend sees it', async () => {
    // A backend that looks its handlers up by params.name reads ["secret_tool"] as "secret_tool"; the policy, which
    // judges names, passed it unjudged. So did array params next to a `result`, read as a response and forwarded.
    const token = await tokenFor('/json');
    const bodies = [
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["secret_tool"],"arguments":{}}}',
      '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{}}}',
      '{"jsonrpc":"2.0","id":3,"method":"tools/call"}',
      '[{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}},{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":{"toString":"secret_tool"}}}]',
      '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":["secret_tool"],"result":{}}',
    ];
    for (const body of bodies) {
      const response = await mcpPost(gateway.url + '/json', token, body);
      assert.equal(response.status, 400, body);
      const code = ((await response.json()) as { error: { code: number } }).error.code;
      assert.ok(code === -32602 || code === -32600, `${body}: ${code}`);
    }
  });

  it('refuses an MCP POST in a content coding or without a JSON type, naming what it accepts', async () => {
    const token = await tokenFor('/json');
    const call = toolsCall('echo', { text: 'x' });
    const coded = await mcpPost(gateway.url + '/json', token, call, { 'content-encoding': 'gzip' });
    assert.equal(coded.status, 415);
    assert.equal(coded.headers.get('accept-encoding'), 'identity');
    assert.equal(((await coded.json()) as { error: { code: number } }).error.code, -32600);
    for (const type of ['text/plain', 'application/json; charset=utf-16', 'application/jsonx', 'application/json; charset=utf-8; charset=utf-7']) {
      const response = await mcpPost(gateway.url + '/json', token, call, { 'content-type': type });
      assert.equal(response.status, 415, type);
      await response.body?.cancel();
    }
    const identity = await mcpPost(gateway.url + '/json', token, call, { 'content-encoding': 'identity', 'content-type': 'application/json;charset=utf8' });
    assert.equal(identity.status, 200);
    await identity.body?.cancel();
  });

  it('answers a denied tools/call with 403 insufficient_scope naming every scope needed', async () => {
    const response = await mcpPost(gateway.url + '/json', await tokenFor('/json'), toolsCall('secret_tool', {}, 5));
    assert.equal(response.status, 403);
    const challenge = response.headers.get('www-authenticate') ?? '';
    assert.ok(challenge.includes('error="insufficient_scope"'), challenge);
    assert.ok(challenge.includes('scope="mcp:tools mcp:secret"'), challenge);
    const body = (await response.json()) as { id: number };
    assert.equal(body.id, 5);
    const allowed = await mcpPost(gateway.url + '/json', await tokenFor('/json', 'mcp:tools mcp:secret', 'tenant/admin'), toolsCall('secret_tool'));
    assert.equal(allowed.status, 200);
    assert.match(await allowed.text(), /the secret/);
  });

  it('checks every call of a batch', async () => {
    const batch = [toolsCall('echo', { text: 'a' }, 1), toolsCall('secret_tool', {}, 2)];
    const response = await mcpPost(gateway.url + '/json', await tokenFor('/json'), batch, { 'mcp-protocol-version': '2025-03-26' });
    assert.equal(response.status, 403);
    // Refused whole, and answered per request (JSON-RPC 2.0 §6): with one error and `id: null` neither call could
    // match an answer, so both waited for their timeout. The notification gets none.
    const answers = (await response.json()) as Array<{ id: unknown; error: { code: number; message: string } }>;
    assert.deepEqual(answers.map((answer) => answer.id), [1, 2]);
    // Each id hears that the batch was refused, not that its own call was (echo's answer read "Calling secret_tool…").
    for (const answer of answers) assert.match(answer.error.message, /^The batch was refused, none of its requests ran: .*secret_tool/);
    // The request's record names the refused tool with the reason; each other call of the batch, before or after the
    // refused one and however it spelt the refused tool, has a record of its own, its reason the refused tool's.
    const because = 'insufficient_scope: missing scope mcp:secret; in none of the groups the tool requires';
    for (const [calls, label] of [
      [['echo', 'secret_tool'], 'refused last'],
      [['secret_tool', 'echo'], 'refused first'],
      [['echo', 'SECRET_TOOL'], 'refused in another case'],
    ] as const) {
      const from = gateway.auditLines.length;
      const refused = await mcpPost(gateway.url + '/json', await tokenFor('/json'), calls.map((tool, index) => toolsCall(tool, {}, index + 1)), { 'mcp-protocol-version': '2025-03-26' });
      assert.equal(refused.status, 403, label);
      await refused.text();
      const records = await batchAuditRecords(gateway, from, (record) => record['outcome'] === 'denied', 2);
      assert.deepEqual(
        records.map((record) => [record['method'], record['tool'], record['batchCall'] ?? false, record['reason']]),
        [
          ['batch', 'secret_tool', false, `${because}`],
          ['tools/call', 'echo', true, `for secret_tool in the same batch: ${because}`],
        ],
        label,
      );
    }

    const withNotification = [{ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } }, toolsCall('secret_tool', {}, 7)];
    const jsonError = await mcpPost(gateway.url + '/groups', await tokenFor('/groups'), withNotification, { 'mcp-protocol-version': '2025-03-26' });
    assert.equal(jsonError.status, 200);
    assert.deepEqual(((await jsonError.json()) as Array<{ id: unknown }>).map((answer) => answer.id), [7]);
  });

  it('audits every tool an allowed batch calls, whatever the order: a guarded call cannot hide behind another', async () => {
    const admin = await tokenFor('/json', 'mcp:tools mcp:secret', 'tenant/admin');
    const from = gateway.auditLines.length;
    const batch = [toolsCall('echo', { text: 'a' }, 1), toolsCall('secret_tool', {}, 2), toolsCall('echo', { text: 'b' }, 3)];
    const response = await mcpPost(gateway.url + '/json', admin, batch, { 'mcp-protocol-version': '2025-03-26' });
    assert.equal(response.status, 200, await response.clone().text());
    const records = await batchAuditRecords(gateway, from, (record) => record['tool'] === 'echo', 2);
    assert.deepEqual(
      records.map((record) => [record['method'], record['tool'], record['outcome'], record['status'], record['batchCall'] ?? false]),
      [
        ['batch', 'echo', 'allowed', 200, false],
        ['tools/call', 'secret_tool', 'allowed', 200, true],
      ],
    );
    assert.equal(records[1]!['requestId'], records[0]!['requestId'], 'one request: one id');
    assert.ok((records[0]!['bytesIn'] as number) > 0);
    assert.equal(records[1]!['bytesIn'], 0, 'the request counted once');
  });

  it('enforces group policies from the account record, as a JSON-RPC error when configured', async () => {
    const denied = await mcpPost(gateway.url + '/groups', await tokenFor('/groups'), toolsCall('secret_tool', {}, 7));
    assert.equal(denied.status, 200);
    const body = (await denied.json()) as { id: number; error: { code: number; message: string } };
    assert.equal(body.id, 7);
    assert.match(body.error.message, /secret_tool/);
    const admin = await mcpPost(gateway.url + '/groups', await tokenFor('/groups', 'mcp:tools', 'tenant/admin'), toolsCall('secret_tool'));
    assert.equal(admin.status, 200);
    assert.match(await admin.text(), /the secret/);
  });
});

describe('2026-07-28 mirrored headers', () => {
  it('rejects Mcp-Name disagreeing with the body with -32020, audited as the header that disagreed', async () => {
    const from = gateway.auditLines.length;
    const response = await mcpPost(gateway.url + '/json', await tokenFor('/json'), toolsCall('secret_tool', {}, 3), {
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'echo',
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { id: number; error: { code: number } };
    assert.equal(body.error.code, -32020);
    assert.equal(body.id, 3);
    const record = await auditRecordWithReason(gateway, 'invalid_request: The Mcp-Name header does not match the request body.', from);
    assert.equal(record?.['tool'], 'secret_tool');
  });

  it('rejects Mcp-Method disagreeing with the body', async () => {
    const response = await mcpPost(gateway.url + '/json', await tokenFor('/json'), toolsList(), { 'mcp-method': 'tools/call' });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: { code: number } }).error.code, -32020);
  });

  it('refuses a base64-sentinel Mcp-Name that is not strict base64 (a lenient decoder skipped what a strict one refuses)', async () => {
    for (const [name, value] of [
      ['echo', '=?base64?ZW!!Nob*w==?='],
      [undefined, '=?base64?not*base64?='],
    ] as const) {
      const message = name === undefined ? toolsList() : toolsCall(name, { text: 'x' });
      const response = await mcpPost(gateway.url + '/json', await tokenFor('/json'), message, {
        'mcp-method': name === undefined ? 'tools/list' : 'tools/call',
        'mcp-name': value,
      });
      assert.equal(response.status, 400, value);
      assert.equal(((await response.json()) as { error: { code: number } }).error.code, -32020);
    }
  });

  it('decodes base64-sentinel Mcp-Name values', async () => {
    const response = await mcpPost(gateway.url + '/json', await tokenFor('/json'), toolsCall('echo', { text: 'x' }), {
      'mcp-method': 'tools/call',
      'mcp-name': `=?base64?${Buffer.from('echo').toString('base64')}?=`,
    });
    assert.equal(response.status, 200);
    await response.body?.cancel();
  });
});

describe('malformed requests', () => {
  const cases: Array<[string, string, number]> = [
    ['invalid JSON', '{"jsonrpc":', -32700],
    // No server defines such a method; a backend that trims or stops at a NUL would run it as tools/call unjudged.
    ['a method with white space', '{"jsonrpc":"2.0","id":1,"method":"tools/call ","params":{"name":"secret_tool"}}', -32600],
    ['a method with a NUL', '{"jsonrpc":"2.0","id":1,"method":"tools/call\\u0000","params":{"name":"secret_tool"}}', -32600],
    ['a JSON value that is not JSON-RPC', '{"hello":"world"}', -32600],
    ['a wrong jsonrpc version', '{"jsonrpc":"1.0","id":1,"method":"tools/list"}', -32600],
    ['an empty batch', '[]', -32600],
  ];
  for (const [name, body, code] of cases) {
    it(`answers ${name} with 400 and JSON-RPC error ${code}`, async () => {
      const response = await mcpPost(gateway.url + '/json', await tokenFor('/json'), body);
      assert.equal(response.status, 400);
      const parsed = (await response.json()) as { jsonrpc: string; error: { code: number } };
      assert.equal(parsed.jsonrpc, '2.0');
      assert.equal(parsed.error.code, code);
    });
  }

  it('refuses a 50 MB body with 413 without reading it all', async () => {
    const huge = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"${'a'.repeat(50 * 1024 * 1024)}"}}}`;
    const response = await mcpPost(gateway.url + '/json', await tokenFor('/json'), huge).catch((error: unknown) => error);
    // The gateway may answer before the upload ends and close the connection; either way it is a 413, never a 2xx.
    if (response instanceof Response) {
      assert.equal(response.status, 413);
      await response.body?.cancel();
    } else {
      assert.ok(response instanceof Error);
    }
  });
});

describe('Origin', () => {
  it('allows requests without Origin and from allowed origins, refuses others with 403', async () => {
    const token = await tokenFor('/json');
    const allowed = await mcpPost(gateway.url + '/json', token, toolsCall('echo', { text: 'x' }), { origin: 'https://app.example' });
    assert.equal(allowed.status, 200);
    await allowed.body?.cancel();
    const own = await mcpPost(gateway.url + '/json', token, toolsCall('echo', { text: 'x' }), { origin: gateway.url });
    assert.equal(own.status, 200);
    await own.body?.cancel();
    const evil = await mcpPost(gateway.url + '/json', token, toolsCall('echo', { text: 'x' }), { origin: 'https://evil.example' });
    assert.equal(evil.status, 403);
    assert.match(await evil.text(), /origin/i);
  });
});

describe('CORS for browser clients', () => {
  it('answers preflights from allowed origins and exposes the MCP response headers', async () => {
    const preflight = await fetch(gateway.url + '/json', {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, dpop, content-type, mcp-protocol-version, mcp-session-id',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /mcp-session-id/);
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /dpop/, 'a browser client may send its DPoP proof');
    assert.equal(preflight.headers.get('access-control-allow-credentials'), null);

    const refused = await fetch(gateway.url + '/json', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
    await refused.body?.cancel();

    const unauthenticated = await mcpPost(gateway.url + '/json', undefined, toolsList(), { origin: 'https://app.example' });
    assert.equal(unauthenticated.status, 401);
    assert.equal(unauthenticated.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(unauthenticated.headers.get('access-control-expose-headers') ?? '', /www-authenticate/);
    assert.match(unauthenticated.headers.get('access-control-expose-headers') ?? '', /dpop-nonce/, 'and read the RFC 9449 §9 nonce');
    await unauthenticated.body?.cancel();
  });

  it('answers the preflight of every resource metadata document from any origin, as its GET is (the MCP endpoint keeps its allow-list)', async () => {
    // An MCP SDK client sends MCP-Protocol-Version on the metadata fetch: the browser preflights it. Refused, a
    // client that does not retry without the header could not discover the server (the document's GET answers `*`).
    const documents = ['/.well-known/oauth-protected-resource/json', '/.well-known/oauth-protected-resource/json/', '/.well-known/oauth-protected-resource'];
    for (const path of documents) {
      for (const origin of ['https://app.example', 'http://localhost:6274']) {
        const preflight = await fetch(gateway.url + path, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'mcp-protocol-version, accept' },
        });
        assert.equal(preflight.status, 204, `${origin} ${path}`);
        assert.ok([origin, '*'].includes(preflight.headers.get('access-control-allow-origin') ?? ''), `${origin} ${path}`);
        assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /\bGET\b/);
        assert.equal(preflight.headers.get('access-control-allow-headers'), 'mcp-protocol-version, accept');
        assert.equal(preflight.headers.get('access-control-allow-credentials'), null);
        const document = await fetch(gateway.url + path, { headers: { origin, 'mcp-protocol-version': '2025-11-25' } });
        assert.equal(document.status, 200, path);
        assert.ok([origin, '*'].includes(document.headers.get('access-control-allow-origin') ?? ''));
        await document.body?.cancel();
      }
    }
    const mcp = await fetch(gateway.url + '/json', { method: 'OPTIONS', headers: { origin: 'http://localhost:6274', 'access-control-request-method': 'POST' } });
    assert.equal(mcp.status, 403, 'the MCP endpoint itself answers only the allowed origins');
    assert.equal(mcp.headers.get('access-control-allow-origin'), null);
    await mcp.body?.cancel();
  });

  it('answers a REST client\'s preflight on a plain HTTP route with every method it forwards and its own headers', async () => {
    for (const path of ['/rest', '/rest/items/7']) {
      const preflight = await fetch(gateway.url + path, {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization, content-type, if-match, x-request-tag' },
      });
      assert.equal(preflight.status, 204, path);
      assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /\bPUT\b.*\bPATCH\b/);
      assert.equal(preflight.headers.get('access-control-allow-headers'), 'authorization, content-type, if-match, x-request-tag');
      assert.equal(preflight.headers.get('access-control-allow-credentials'), null);
    }
    // Not a header name, or a cookie: refused. And MCP endpoints keep the MCP list.
    const odd = await fetch(gateway.url + '/rest', { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'cookie' } });
    assert.equal(odd.status, 403);
    await odd.body?.cancel();
    const mcp = await fetch(gateway.url + '/json', { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-request-tag' } });
    assert.equal(mcp.status, 403);
    await mcp.body?.cancel();
    // Without an Origin it is no preflight but a plain OPTIONS (RFC 9110 §9.3.7): what the route allows, no CORS grant.
    for (const [path, allow] of [
      ['/json', 'GET, POST, DELETE, OPTIONS'],
      ['/rest', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS'],
      // Each URL names what it serves, as its 405 does.
      ['/legacy/sse', 'GET, OPTIONS'],
      ['/legacy/messages', 'POST, OPTIONS'],
      ['/.well-known/oauth-protected-resource/json', 'GET, HEAD, OPTIONS'],
    ]) {
      const plain = await fetch(gateway.url + path, { method: 'OPTIONS' });
      assert.equal(plain.status, 204, path);
      assert.equal(plain.headers.get('allow'), allow);
      assert.equal(plain.headers.get('access-control-allow-origin'), null);
      assert.equal(plain.headers.get('access-control-allow-methods'), null);
    }
  });
});
