import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { createLocalJWKSet, generateKeyPair } from 'jose';
import { startDirectoryApi, type RunningDirectoryApi } from '../../src/demo/directory-api/directory-api.ts';
import { startGraphServer, type RunningGraphServer } from '../../examples/graph-server/graph-server.ts';
import { capturingLogger, startGateway, startScriptedGraph, type Gateway } from './graph-server-fixture.ts';

type ToolResult = { content?: Array<{ type: string; text?: string }>; structuredContent?: Record<string, unknown>; isError?: boolean };

describe('sample Graph MCP server', () => {
  let gateway: Gateway;
  let directory: RunningDirectoryApi;
  let scripted: Awaited<ReturnType<typeof startScriptedGraph>>;
  let server: RunningGraphServer;
  let throttled: RunningGraphServer;
  let obo: RunningGraphServer;
  const log = capturingLogger();
  const sleeps: number[] = [];
  /** Everything a client saw: searched for tokens at the end. */
  const seen: string[] = [];
  const audience = () => `${gateway.url}/mcp`;
  /** The plain HTTP route in front of the REST endpoints. */
  const httpAudience = () => `${gateway.url}/graph`;
  const brokerSecret = 'graph-backend-secret-0123456789';

  before(async () => {
    gateway = await startGateway(audience);
    directory = await startDirectoryApi({
      port: 0,
      issuer: gateway.idpIssuer,
      audience: 'https://graph.microsoft.com',
      jwks: createLocalJWKSet(gateway.idpJwks),
      users: [{ id: 'alice-id', displayName: 'Alice Example', givenName: 'Alice', surname: 'Example', mail: 'alice@example.test', userPrincipalName: 'alice@example.test', jobTitle: 'Engineer' }],
    });
    scripted = await startScriptedGraph();
    const common = {
      port: 0,
      gatewayIssuer: gateway.url,
      audience: audience(),
      httpAudience: httpAudience(),
      jwksUrl: `${gateway.url}/jwks`,
      tokenSource: 'broker' as const,
      broker: { tokenUrl: `${gateway.url}/token`, clientId: 'graph-backend', clientSecret: brokerSecret },
      logger: log.logger,
    };
    server = await startGraphServer({ ...common, graphBaseUrl: directory.url });
    obo = await startGraphServer({ port: 0, gatewayIssuer: gateway.url, audience: audience(), jwksUrl: `${gateway.url}/jwks`, tokenSource: 'obo', graphBaseUrl: directory.url, logger: log.logger });
    throttled = await startGraphServer({
      ...common,
      graphBaseUrl: scripted.url,
      maxRetryAfterMs: 5_000,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
  });
  after(async () => {
    await Promise.all([server.close(), throttled.close(), obo.close()]);
    await Promise.all([directory.close(), scripted.close(), gateway.close()]);
  });

  async function http(base: string, path: string, init: RequestInit & { bearer?: string | null } = {}) {
    // Each surface takes assertions for its own routes: the REST endpoints the HTTP route's, the MCP endpoints the MCP route's.
    const aud = path.startsWith('/api/') ? httpAudience() : audience();
    const bearer = init.bearer === undefined ? await gateway.signAssertion({}, { aud }) : init.bearer;
    const headers = new Headers(init.headers);
    if (bearer) headers.set('authorization', `Bearer ${bearer}`);
    const response = await fetch(base + path, { ...init, headers });
    const text = await response.text();
    seen.push(text);
    return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) as Record<string, any> };
  }

  async function modernClient(base: string, bearer?: string): Promise<Client> {
    const client = new Client({ name: 'test', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    const token = bearer ?? (await gateway.signAssertion());
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    return client;
  }

  async function call(client: { callTool: Client['callTool'] }, name: string, args: Record<string, unknown> = {}): Promise<ToolResult> {
    const result = (await client.callTool({ name, arguments: args })) as ToolResult;
    seen.push(JSON.stringify(result));
    return result;
  }

  describe('refuses anything but a valid gateway identity assertion', () => {
    const paths: Array<[string, RequestInit]> = [
      ['/api/status', {}],
      ['/api/hello', {}],
      ['/api/tools', {}],
      ['/api/me', {}],
      ['/api/echo', { method: 'POST', body: 'x' }],
      ['/mcp', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' }],
      ['/sse', {}],
    ];
    it('with 401 on every endpoint', async () => {
      const otherKey = (await generateKeyPair('ES256')).privateKey;
      const now = Math.floor(Date.now() / 1000);
      const bad: Array<[string, string | null]> = [
        ['none', null],
        ['garbage', 'not-a-jwt'],
        ['forged', await gateway.signAssertion({}, { key: otherKey })],
        ['expired', await gateway.signAssertion({}, { exp: now - 30 })],
        ['wrong audience', await gateway.signAssertion({}, { aud: 'https://elsewhere.test/mcp' })],
        ['an access token', await gateway.signAssertion({}, { typ: 'at+jwt' })],
        ['wrong issuer', await gateway.signAssertion({}, { iss: 'https://evil.test' })],
      ];
      for (const [path, init] of paths) {
        for (const [label, bearer] of bad) {
          const result = await http(server.url, path, { ...init, bearer });
          assert.equal(result.status, 401, `${label} on ${path}`);
          assert.equal(result.json().error, 'invalid_token');
          assert.match(result.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
          if (bearer) assert.ok(!result.text.includes(bearer));
        }
      }
    });
  });

  describe('keeps its MCP and REST surfaces apart', () => {
    const mcpRequests: Array<[string, RequestInit]> = [
      ['/mcp', { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' }],
      ['/sse', {}],
      ['/messages?sessionId=x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }],
    ];
    it('refuses an assertion for the HTTP route on every MCP endpoint', async () => {
      for (const [path, init] of mcpRequests) {
        const result = await http(server.url, path, { ...init, bearer: await gateway.signAssertion({}, { aud: httpAudience() }) });
        assert.equal(result.status, 401, path);
        assert.equal(result.json().error, 'invalid_token');
      }
    });

    it('refuses an assertion for the MCP route on every REST endpoint', async () => {
      for (const path of ['/api/status', '/api/me', '/api/hello', '/api/tools']) {
        const result = await http(server.url, path, { bearer: await gateway.signAssertion({}, { aud: audience() }) });
        assert.equal(result.status, 401, path);
        assert.equal(result.json().error, 'invalid_token');
      }
    });

    it('holds no MCP endpoint under the REST base path, and no REST endpoint outside it', async () => {
      for (const [path, init] of mcpRequests) assert.equal((await http(server.url, `/api${path}`, init)).status, 404, `/api${path}`);
      for (const path of ['/status', '/me', '/hello', '/tools']) {
        assert.equal((await http(server.url, path, { bearer: await gateway.signAssertion({}, { aud: httpAudience() }) })).status, 404, path);
      }
    });

    it('refuses every assertion on the REST endpoints when no HTTP audience is configured, and an audience given for both', async () => {
      const broker = { tokenUrl: `${gateway.url}/token`, clientId: 'graph-backend', clientSecret: brokerSecret };
      const narrow = await startGraphServer({ port: 0, gatewayIssuer: gateway.url, audience: audience(), jwksUrl: `${gateway.url}/jwks`, tokenSource: 'broker', broker, graphBaseUrl: directory.url, logger: log.logger });
      try {
        for (const aud of [audience(), httpAudience()]) {
          assert.equal((await http(narrow.url, '/api/status', { bearer: await gateway.signAssertion({}, { aud }) })).status, 401, aud);
        }
      } finally {
        await narrow.close();
      }
      await assert.rejects(
        startGraphServer({ port: 0, gatewayIssuer: gateway.url, audience: [audience(), httpAudience()], httpAudience: httpAudience(), jwksUrl: `${gateway.url}/jwks`, tokenSource: 'broker', broker, graphBaseUrl: directory.url, logger: log.logger }),
        /both an MCP and an HTTP audience/,
      );
    });
  });

  describe('plain HTTP endpoints', () => {
    it('GET|POST /hello greets the user or the given name, and rejects bad input with 400', async () => {
      assert.equal((await http(server.url, '/api/hello')).json().message, 'Hello, Alice Example!');
      assert.equal((await http(server.url, '/api/hello?name=Bob')).json().message, 'Hello, Bob!');
      const posted = await http(server.url, '/api/hello', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"Carol"}' });
      assert.equal(posted.json().message, 'Hello, Carol!');
      assert.equal((await http(server.url, '/api/hello', { method: 'POST', body: '{not json' })).status, 400);
      assert.equal((await http(server.url, '/api/hello', { method: 'POST', body: '{"name":42}' })).status, 400);
    });

    it('POST /echo returns the exact body and content type', async () => {
      const body = '{"odd":  "spacing",\n "unicode": "\u00e9\u00e8"}';
      const result = await http(server.url, '/api/echo', { method: 'POST', headers: { 'content-type': 'application/vnd.test+json' }, body });
      assert.equal(result.status, 200);
      assert.equal(result.text, body);
      assert.equal(result.headers.get('content-type'), 'application/vnd.test+json');
    });

    it('GET /tools lists every tool with input and output schemas', async () => {
      const tools = (await http(server.url, '/api/tools')).json().tools as Array<{ name: string; inputSchema: { type: string }; outputSchema: { type: string } }>;
      assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'get_graph_user_details', 'hello', 'me', 'status']);
      for (const tool of tools) {
        assert.equal(tool.inputSchema.type, 'object');
        assert.equal(tool.outputSchema.type, 'object');
      }
    });

    it('GET /status reports health and the asserted user; GET /me returns the Graph profile via token exchange', async () => {
      const status = (await http(server.url, '/api/status')).json();
      assert.equal(status.status, 'ok');
      assert.equal(status.authenticated, true);
      assert.equal(status.tokenSource, 'broker');
      assert.equal(status.user.subject, 'tenant-1/alice-id');
      assert.deepEqual(status.user.groups, ['staff']);

      const assertion = await gateway.signAssertion({}, { aud: httpAudience() });
      const before = gateway.tokenRequests.length;
      const me = await http(server.url, '/api/me', { bearer: assertion });
      assert.equal(me.status, 200);
      assert.equal(me.json().displayName, 'Alice Example');
      assert.equal(me.json().jobTitle, 'Engineer');
      const request = gateway.tokenRequests[before];
      assert.equal(request?.get('grant_type'), 'urn:ietf:params:oauth:grant-type:token-exchange');
      assert.equal(request?.get('subject_token'), assertion);
      assert.equal(request?.get('subject_token_type'), 'urn:ietf:params:oauth:token-type:jwt');
      assert.equal(request?.get('resource'), 'https://graph.microsoft.com');
      // client_secret_basic, as Gatehouse registers secret clients (RFC 6749 §2.3.1).
      assert.equal(request?.get('client_secret'), null);
      const basic = gateway.tokenRequestAuthorization[before] ?? '';
      assert.equal(Buffer.from(basic.replace(/^Basic /, ''), 'base64').toString(), `graph-backend:${brokerSecret}`);
    });

    it('answers unknown endpoints with 404, echoing the path neither in the answer nor in its log', async () => {
      assert.equal((await http(server.url, '/api/nope')).status, 404);
      // A client may put anything in a path, a token included (the gateway redacts its own log, not this server's).
      const secret = `eyJ${'x'.repeat(40)}.eyJ${'y'.repeat(40)}.${'z'.repeat(43)}`;
      for (const path of [`/api/x/${secret}`, `/${secret}`]) {
        const answer = await http(server.url, path);
        // Outside the REST base a caller is judged first (401 for a REST route's assertion), then the path.
        assert.ok([401, 404].includes(answer.status), `${path}: ${answer.status}`);
        assert.ok(!answer.text.includes(secret), answer.text);
      }
      assert.ok(!log.text().includes(secret), 'not in the log');
    });

    it('GET /me answers a step-up as Graph does (401 insufficient_claims), and a gateway that cannot now with 503 and Retry-After', async () => {
      // Fresh assertions miss the per-assertion token cache, so the gateway is asked each time.
      gateway.nextTokenError = { status: 400, body: { error: 'interaction_required', error_description: 'MFA needed' } };
      const stepUp = await http(server.url, '/api/me', { bearer: await gateway.signAssertion({}, { aud: httpAudience() }) });
      assert.equal(stepUp.status, 401);
      assert.match(stepUp.headers.get('www-authenticate') ?? '', /^Bearer error="insufficient_claims"/);
      gateway.nextTokenError = { status: 503, body: { error: 'temporarily_unavailable' } };
      const later = await http(server.url, '/api/me', { bearer: await gateway.signAssertion({}, { aud: httpAudience() }) });
      assert.equal(later.status, 503);
      assert.equal(later.headers.get('retry-after'), '5');
      assert.match(later.json().error_description, /gateway cannot get a Microsoft Graph token right now/);
    });
  });

  describe('MCP', () => {
    it('serves the 2026-07-28 generation (stateless) with output schemas', async () => {
      const client = await modernClient(server.url);
      try {
        assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28');
        const { tools } = await client.listTools();
        assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'get_graph_user_details', 'hello', 'me', 'status']);
        assert.ok(tools.every((t) => t.outputSchema?.type === 'object'));
        const details = await call(client, 'get_graph_user_details');
        assert.equal(details.isError, undefined);
        assert.equal(details.structuredContent?.displayName, 'Alice Example');
        assert.equal(details.structuredContent?.['@odata.context'], 'https://graph.microsoft.com/v1.0/$metadata#users/$entity');
        assert.equal((await call(client, 'hello', { name: 'Dan' })).structuredContent?.message, 'Hello, Dan!');
        assert.equal((await call(client, 'echo', { message: 'ping' })).structuredContent?.message, 'ping');
        const me = await call(client, 'me');
        assert.equal(me.structuredContent?.subject, 'tenant-1/alice-id');
        assert.equal(me.structuredContent?.clientId, 'test-client');
        assert.equal((await call(client, 'status')).structuredContent?.status, 'ok');
      } finally {
        await client.close();
      }
    });

    it('serves the 2025 generation with sessions bound to the user', async () => {
      const client = new Client({ name: 'legacy', version: '1.0.0' });
      const transport = new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${await gateway.signAssertion()}` } },
      });
      await client.connect(transport);
      try {
        const sessionId = transport.sessionId;
        assert.ok(sessionId, 'the 2025 handshake opens a session');
        assert.match(client.getNegotiatedProtocolVersion() ?? '', /^2025-/);
        assert.equal((await call(client, 'hello')).structuredContent?.message, 'Hello, Alice Example!');

        // The same user continues the session with a fresh assertion (assertions are short-lived and renewed).
        const continued = await http(server.url, '/mcp', {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
          body: '{"jsonrpc":"2.0","id":9,"method":"tools/list"}',
        });
        assert.equal(continued.status, 200);
        assert.match(continued.text, /get_graph_user_details/);
      } finally {
        await client.close();
      }
    });

    it('refuses a session id presented by a different user', async () => {
      const client = new Client({ name: 'legacy', version: '1.0.0' });
      const transport = new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${await gateway.signAssertion()}` } },
      });
      await client.connect(transport);
      try {
        const other = await gateway.signAssertion({ name: 'Mallory' }, { sub: 'tenant-1/mallory-id' });
        const hijack = await http(server.url, '/mcp', {
          method: 'POST',
          bearer: other,
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': transport.sessionId ?? '', 'mcp-protocol-version': '2025-11-25' },
          body: '{"jsonrpc":"2.0","id":9,"method":"tools/list"}',
        });
        assert.equal(hijack.status, 404);
      } finally {
        await client.close();
      }
    });

    it("ends a user's least recently used session past their share, and never refuses another user for a full table", async () => {
      // One user opening sessions in a loop (clients rarely end theirs) once filled the table: 503 for everyone.
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
      const initialize = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"loop","version":"1"}}}';
      const loopUser = await gateway.signAssertion({ name: 'Loop' }, { sub: 'tenant-1/loop-id' });
      const opened: string[] = [];
      for (let i = 0; i < 60; i++) {
        const answer = await http(server.url, '/mcp', { method: 'POST', bearer: loopUser, headers, body: initialize });
        assert.equal(answer.status, 200, answer.text);
        opened.push(answer.headers.get('mcp-session-id') ?? '');
      }
      const use = async (session: string) =>
        (
          await http(server.url, '/mcp', {
            method: 'POST',
            bearer: loopUser,
            headers: { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' },
            body: '{"jsonrpc":"2.0","id":2,"method":"tools/list"}',
          })
        ).status;
      assert.equal(await use(opened[0]!), 404, 'the first of 60 ended: 50 per user');
      assert.equal(await use(opened[9]!), 404);
      assert.equal(await use(opened[10]!), 200, 'the 50 most recent stay');
      assert.equal(await use(opened[59]!), 200);
      const other = await http(server.url, '/mcp', { method: 'POST', headers, body: initialize });
      assert.equal(other.status, 200, "another user's session opens");
    });

    it('serves the legacy HTTP+SSE transport', async () => {
      const client = new V1Client({ name: 'sse', version: '1.0.0' });
      const authorization = `Bearer ${await gateway.signAssertion()}`;
      await client.connect(new SSEClientTransport(new URL(`${server.url}/sse`), { requestInit: { headers: { authorization } } }));
      try {
        const { tools } = await client.listTools();
        assert.equal(tools.length, 5);
        const result = (await client.callTool({ name: 'get_graph_user_details', arguments: {} })) as ToolResult;
        seen.push(JSON.stringify(result));
        assert.equal(result.structuredContent?.displayName, 'Alice Example');
      } finally {
        await client.close();
      }
    });
  });

  describe('obo mode (the gateway forwards a Graph token)', () => {
    /** What the gateway would forward: a delegated Graph token from the identity provider. */
    async function graphToken(): Promise<string> {
      const before = gateway.issuedTokens.length;
      await http(server.url, '/api/me');
      const token = gateway.issuedTokens.slice(before).find((t) => JSON.parse(Buffer.from(t.split('.')[1] ?? '', 'base64url').toString()).scp);
      assert.ok(token);
      return token;
    }

    it('uses the forwarded token for Graph and takes the user from Graph', async () => {
      const token = await graphToken();
      const requestsBefore = gateway.tokenRequests.length;
      const me = await http(obo.url, '/api/me', { bearer: token });
      assert.equal(me.status, 200);
      assert.equal(me.json().displayName, 'Alice Example');
      const status = (await http(obo.url, '/api/status', { bearer: token })).json();
      assert.equal(status.tokenSource, 'obo');
      assert.equal(status.user.subject, 'alice-id');
      const client = await modernClient(obo.url, token);
      try {
        assert.equal((await call(client, 'get_graph_user_details')).structuredContent?.id, 'alice-id');
      } finally {
        await client.close();
      }
      assert.equal(gateway.tokenRequests.length, requestsBefore, 'no token exchange in obo mode');
    });

    it('refuses a token Graph does not accept, and an identity assertion, with 401', async () => {
      for (const bearer of [await gateway.signAssertion(), 'not-a-token', null]) {
        const result = await http(obo.url, '/api/status', { bearer });
        assert.equal(result.status, 401);
        assert.equal(result.json().error, 'invalid_token');
      }
    });
  });

  it('survives a Host header no URL can hold and a request target like //x, and keeps serving', async () => {
    const { hostname, port } = new URL(server.url);
    const statusOf = (path: string, headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ hostname, port, path, headers }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.once('error', reject);
        req.end();
      });
    // The server reads only the path (against a fixed base), so neither can throw outside a handler: each is an
    // ordinary answer (here 401: no assertion), never a crash.
    assert.equal(await statusOf('/api/status', { host: 'a b' }), 401);
    assert.equal(await statusOf('//x', {}), 401);
    assert.equal((await http(server.url, '/api/status')).status, 200);
  });

  it('refuses a body over the size limit with 413', async () => {
    const result = await http(server.url, '/api/echo', { method: 'POST', body: 'x'.repeat(1024 * 1024 + 1) });
    assert.equal(result.status, 413);
  });

  describe('Microsoft Graph failures', () => {
    it('honours Retry-After once on 429, then succeeds', async () => {
      scripted.script.push({ status: 429, headers: { 'retry-after': '2' } });
      const client = await modernClient(throttled.url);
      try {
        const result = await call(client, 'get_graph_user_details');
        assert.equal(result.isError, undefined);
        assert.equal(result.structuredContent?.id, 'alice-id');
        assert.deepEqual(sleeps.slice(-1), [2000]);
      } finally {
        await client.close();
      }
    });

    it('reports persistent throttling and 5xx as clear tool errors, and a re-consent need as a 401 step-up', async () => {
      const client = await modernClient(throttled.url);
      try {
        scripted.script.push({ status: 429, headers: { 'retry-after': '1' } }, { status: 429, headers: { 'retry-after': '1' } });
        const throttledResult = await call(client, 'get_graph_user_details');
        assert.equal(throttledResult.isError, true);
        assert.match(throttledResult.content?.[0]?.text ?? '', /throttling.*retry after 1 s/);

        scripted.script.push({ status: 503 });
        const failed = await call(client, 'get_graph_user_details');
        assert.equal(failed.isError, true);
        assert.match(failed.content?.[0]?.text ?? '', /Microsoft Graph failed \(HTTP 503\)/);
        assert.doesNotMatch(failed.content?.[0]?.text ?? '', /raw graph detail/);

        // A fresh assertion misses the per-assertion cache, so the gateway is asked again.
        const fresh = await modernClient(throttled.url);
        gateway.nextTokenError = { status: 401, body: { error: 'interaction_required', error_description: 'consent needed' } };
        // A step-up (MFA, consent) is answered at the HTTP level, 401 `insufficient_claims` as Graph answers, so the
        // gateway can make the MCP client re-authorize (step-up-preflight.ts); a tool error would leave it stuck.
        await assert.rejects(call(fresh, 'get_graph_user_details'), (error: unknown) => /401|unauthori[sz]ed/i.test(String((error as { status?: unknown }).status ?? error)));
        await fresh.close();
      } finally {
        await client.close();
      }
    });

    it('never puts a token in results, errors or logs', async () => {
      assert.ok(gateway.issuedTokens.length > 5);
      const outputs = seen.join('\n');
      const logs = log.text();
      assert.ok(logs.length > 0);
      for (const token of gateway.issuedTokens) {
        assert.ok(!outputs.includes(token), 'a client-visible output contains a token');
        assert.ok(!logs.includes(token), 'the log contains a token');
      }
      // Graph did receive the delegated token (so the check above is meaningful).
      assert.ok(scripted.seenAuthorization.some((value) => gateway.issuedTokens.includes(value.replace(/^Bearer /, ''))));
    });
  });

});
