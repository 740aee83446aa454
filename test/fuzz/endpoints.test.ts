import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateKeySet, serializeKeySet } from '../../src/keys/key-set.ts';
import { keyringFromKeySet } from '../../src/keys/key-set-keyring.ts';
import type { Keyring } from '../../src/keys/keyring.ts';
import { mintAccessToken } from '../proxy/harness.ts';
import { startDemo, type RunningDemo } from '../support/demo-harness.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { CONTENT_TYPES, formBody, jsonBody, METHODS, pathSuffix, pick, queryString, seededRng, type Rng } from './fuzz-inputs.ts';

/**
 * A seeded, bounded fuzz run over every endpoint of the whole demo (gateway, authorization server, admin console,
 * connected apps, metadata, health), with and without valid credentials. The endpoint list is read from the server's
 * own route table plus the authorization server's metadata, so a new route is fuzzed without editing this file.
 *
 * Requests are written as raw bytes on fresh connections, so the run can send what an HTTP client library would
 * refuse to: duplicated headers, chunked bodies, a declared length that lies, no body at all. About a third are
 * well-formed requests of real clients instead (an MCP session's calls, each OAuth grant, registration, the broker
 * behind both routes), which go past the first check to the store, the backend and the broker.
 *
 * Asserted for every response: no 5xx, no stack trace, no token echoed, no HTML page that can be framed. Asserted after the run: the process is alive
 * (an uncaught exception would end this test process), no SSE stream is left counted open, and the number of open
 * file descriptors is back near where it started (a leaked backend stream holds two).
 *
 *   FUZZ_REQUESTS=50000 FUZZ_SEED=7 npm test -- test/fuzz      (npm run fuzz runs a longer, fixed-seed pass)
 */
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 2_500);
const SEED = Number(process.env.FUZZ_SEED ?? 20261205);
const CONCURRENCY = 8;
/** How long one exchange may take before the client gives up (SSE streams and lying lengths never end by themselves). */
const EXCHANGE_MS = 1_500;

interface Target {
  path: string;
  methods: readonly string[];
}

interface Built {
  raw: Buffer;
  /** The request declared more body than it sent: no answer is a correct outcome. */
  truncated: boolean;
  summary: string;
  /** It sent a transfer coding other than chunked, which is refused 501 (RFC 9112 §6.1). */
  unknownCoding: boolean;
  /** The tokens it carries, which no answer may echo. */
  tokens: string[];
  wellFormed: boolean;
}

interface Exchange {
  n: number;
  request: string;
  status?: number;
  head: string;
  body: string;
  timedOut: boolean;
  /** The request declared more body than it sent: no answer is a correct outcome. */
  truncated: boolean;
}

/** The methods a client means something by; the route table also lists every other verb Node parses (answered 405). */
const MEANINGFUL_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'QUERY']);

/**
 * Fastify's printRoutes tree: `├── admin (GET, HEAD)` and under it `│   ├── /audit (GET, HEAD)`. A line names its
 * segment only, so the full path is its parent's plus the segment, by the depth of the line's `── `. `:param`
 * segments get a sample value.
 */
function routesOf(printed: string): Target[] {
  const targets: Target[] = [];
  const parents: string[] = [];
  for (const line of printed.split('\n')) {
    const match = /^(.*?── )(\S+)(?: \(([A-Z, -]+)\))?$/.exec(line);
    if (!match?.[1] || !match[2]) continue;
    const depth = Math.round(match[1].length / 4);
    const parent = depth === 1 ? '' : (parents[depth - 2] ?? '');
    // A wildcard child (`/graph` then `*`) is the route `/graph/*`.
    const segment = match[2] === '*' && !parent.endsWith('/') ? '/*' : match[2];
    const path = `${parent}${segment}`.replace(/^\/\//, '/');
    parents[depth - 1] = path;
    parents.length = depth;
    if (!match[3]) continue;
    const methods = match[3].split(', ').filter((method) => MEANINGFUL_METHODS.has(method));
    targets.push({ path: path.replace(/:[A-Za-z]+/g, 'fuzz-id').replace(/\*$/, 'x'), methods: methods.length > 0 ? methods : ['GET'] });
  }
  return targets;
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * `store up`: the demo on SQLite, every answer below 500. `store down`: the demo on a real Redis that is stopped after
 * the warm-up, so every store call fails: each endpoint must still answer in its own format, a 503 with `Retry-After`
 * where it needed the store (502 or 504 where the backend failed), never a 500, a crash or a leaked stream.
 */
for (const mode of ['store up', 'store down'] as const) fuzzEveryEndpoint(mode);

function fuzzEveryEndpoint(mode: 'store up' | 'store down'): void {
  const requests = mode === 'store up' ? REQUESTS : Math.ceil(REQUESTS / 3);
  describe(`fuzz: every endpoint, ${mode}, ${requests} requests, seed ${SEED}`, () => {
    let demo: RunningDemo;
    let redis: RedisServer | undefined;
    let host: string;
    let port: number;
    const tokens: Record<string, string> = {};
    const known = { clientId: '', registrationToken: '', sessionId: '', deletable: '', legacyMessages: '', revocable: '' };
    /** The legacy HTTP+SSE session's stream, open for the run (its message endpoint is fuzzed), closed before the leak count. */
    let legacyStream: AbortController | undefined;
    let targets: Target[] = [];
    let keyring: Keyring;
    // The demo runs in this process: an exception thrown outside any handler (which would end a real process) lands
    // here, and the test fails on it even when it fires after the request that caused it was answered.
    const uncaught: string[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error instanceof Error ? (error.stack ?? error.message) : String(error));

    before(async () => {
      const keysFile = join(tmpdir(), `gatehouse-fuzz-keys-${process.pid}-${mode.replace(' ', '-')}.json`);
      const keySet = generateKeySet({ now: Date.now(), signingAlgorithm: 'ES256' });
      await writeFile(keysFile, serializeKeySet(keySet));
      process.on('uncaughtException', onUncaught);
      // A 1 MiB body limit (the default is 4 MiB) so the `huge` bodies below are over it: the gateway must refuse them
      // itself, whether it learns it while streaming one on or after the backend dropped the upload.
      if (mode === 'store down') redis = await startRedisServer();
      demo = await startDemo({
        config: { keys: { source: 'file', file: keysFile }, server: { bodyLimitBytes: 1024 * 1024 } },
        ...(redis ? { redisUrl: redis.url } : {}),
      });
      const url = new URL(demo.publicUrl);
      host = url.hostname;
      port = Number(url.port);
      keyring = keyringFromKeySet(keySet);
      const issuer = demo.publicUrl;
      tokens.mcp = await mintAccessToken(keyring, issuer, { aud: `${issuer}/mcp`, scope: 'mcp:tools graph:read', sub: 'fuzz-user' });
      tokens.graph = await mintAccessToken(keyring, issuer, { aud: `${issuer}/graph`, scope: 'graph:read', sub: 'fuzz-user' });
      tokens.expired = await mintAccessToken(keyring, issuer, { aud: `${issuer}/mcp`, expiresIn: -60 });
      tokens.wrongAudience = await mintAccessToken(keyring, issuer, { aud: 'http://elsewhere.example/mcp' });
      // Revoked and introspected by the well-formed requests, so the tokens above stay usable all run.
      known.revocable = await mintAccessToken(keyring, issuer, { aud: `${issuer}/mcp`, scope: 'mcp:tools', sub: 'fuzz-user' });

      targets = routesOf(demo.gateway.app.printRoutes({ commonPrefix: false }));
      const metadata = (await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
      for (const value of Object.values(metadata)) {
        if (typeof value === 'string' && value.startsWith(issuer) && value !== issuer) {
          targets.push({ path: new URL(value).pathname, methods: ['GET', 'POST'] });
        }
      }
      targets.push({ path: '/no-such-path', methods: ['GET'] }, { path: '/interaction/fuzz-id', methods: ['GET', 'POST'] });

      // What the well-formed requests below refer to: a registered client and an MCP session, made while the store is up.
      const registered = await fetch(`${issuer}/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_name: 'fuzz', redirect_uris: ['http://127.0.0.1:9/callback'], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'] }),
      });
      assert.equal(registered.status, 201);
      const client = (await registered.json()) as { client_id: string; registration_access_token: string };
      known.clientId = client.client_id;
      known.registrationToken = client.registration_access_token;
      // Not among `tokens`: RFC 7592 §3 has the read of a registration answer with its registration access token.
      const initialized = await fetch(`${issuer}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.mcp}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'fuzz', version: '1' } } }),
      });
      await initialized.arrayBuffer();
      known.sessionId = initialized.headers.get('mcp-session-id') ?? 'no-session';
      assert.notEqual(known.sessionId, 'no-session', `initialize answered ${initialized.status} without a session`);
      // A second session for the well-formed DELETE, so the one above lives all run.
      const second = await fetch(`${issuer}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${tokens.mcp}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'fuzz', version: '1' } } }) });
      await second.arrayBuffer();
      known.deletable = second.headers.get('mcp-session-id') ?? 'no-session';
      // A legacy HTTP+SSE session: its stream names the message endpoint (with its session id) in its first event.
      legacyStream = new AbortController();
      const legacy = await fetch(`${issuer}/mcp/sse`, { headers: { authorization: `Bearer ${tokens.mcp}`, accept: 'text/event-stream' }, signal: legacyStream.signal });
      assert.equal(legacy.status, 200);
      const reader = legacy.body!.getReader();
      let events = '';
      while (!/event: endpoint\ndata: (\S+)/.test(events)) events += new TextDecoder().decode((await reader.read()).value ?? new Uint8Array());
      known.legacyMessages = new URL(/event: endpoint\ndata: (\S+)/.exec(events)?.[1] ?? '', issuer).pathname + new URL(/event: endpoint\ndata: (\S+)/.exec(events)?.[1] ?? '', issuer).search;
      assert.match(known.legacyMessages, /^\/mcp\/messages\?sessionId=/);
    });
    after(async () => {
      legacyStream?.abort();
      await demo?.close();
      await redis?.stop();
      process.off('uncaughtException', onUncaught);
    });

    function credentialHeader(rng: Rng, fresh: { mcp: string; graph: string }): string[] {
      // Minted for this request: a malformed call that ends its grant (a broker call for a user without an upstream
      // session does) must not leave the rest of the run with a revoked token.
      const valid = pick(rng, [fresh.mcp, fresh.graph]);
      return pick(rng, [
        [],
        [],
        [`Authorization: Bearer ${valid}`],
        [`Authorization: Bearer ${valid}`],
        [`Authorization: bearer ${valid}`],
        [`Authorization: Bearer ${tokens.expired}`],
        [`Authorization: Bearer ${tokens.wrongAudience}`],
        ['Authorization: Bearer'],
        ['Authorization: Basic Zm9vOmJhcg=='],
        ['Authorization: Bearer a.b.c'],
        [`Authorization: Bearer ${valid}`, 'Authorization: Bearer other'],
        [`Authorization: DPoP ${valid}`, 'DPoP: x.y.z'],
        [`Authorization: DPoP ${valid}`, 'DPoP: eyJhbGciOiJub25lIiwidHlwIjoiZHBvcCtqd3QifQ.e30.', 'DPoP: second'],
        [`Authorization: DPoP ${valid}`],
        [`Authorization: Bearer ${valid}x`],
      ]);
    }

    function mcpHeaders(rng: Rng): string[] {
      return pick(rng, [
        [],
        ['Accept: application/json, text/event-stream', 'MCP-Protocol-Version: 2025-11-25'],
        ['Accept: application/json, text/event-stream', 'MCP-Protocol-Version: 2026-07-28', 'Mcp-Method: tools/call', 'Mcp-Name: echo'],
        ['Accept: text/event-stream', 'Mcp-Session-Id: no-such-session'],
        ['Mcp-Session-Id: a', 'Mcp-Session-Id: b'],
        ['Mcp-Name: =?base64?Y2Fmw6k=?='],
        ['Mcp-Name: =?base64?***?='],
        ['MCP-Protocol-Version: 1999-01-01'],
        ['Origin: http://evil.example'],
        ['Origin: null'],
        ['traceparent: 00-00000000000000000000000000000000-0000000000000000-01'],
        ['traceparent: zz', 'tracestate: ,,,=', 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
        ['Last-Event-ID: 1', 'Accept: text/event-stream'],
        ['X-Forwarded-For: 1.2.3.4', 'X-Real-IP: 5.6.7.8', 'Forwarded: for=9.9.9.9'],
        ['Cookie: gatehouse-console=AAAA; gatehouse-console=BBBB'],
        [`X-Huge: ${'h'.repeat(12_000)}`],
        ['Transfer-Encoding: gzip, chunked'],
        ['Expect: 100-continue'],
        ['Sec-Fetch-Site: cross-site'],
        // A browser navigating: errors answer it with a page, which must carry the pages' headers however it was sent.
        ['Accept: text/html,application/xhtml+xml'],
        ['Accept: text/html', 'Sec-Fetch-Mode: navigate'],
      ]);
    }

    /** One request as raw bytes. Body framing: none, Content-Length (true, zero, or a lie), or chunked. */
    const freshTokens = async () => ({
      mcp: await mintAccessToken(keyring, demo.publicUrl, { aud: `${demo.publicUrl}/mcp`, scope: 'mcp:tools graph:read', sub: 'fuzz-user' }),
      graph: await mintAccessToken(keyring, demo.publicUrl, { aud: `${demo.publicUrl}/graph`, scope: 'graph:read', sub: 'fuzz-user' }),
    });

    function buildRequest(rng: Rng, target: Target, fresh: { mcp: string; graph: string }): Built {
      const method = rng() < 0.7 ? pick(rng, target.methods) : pick(rng, METHODS);
      const path = target.path + pathSuffix(rng) + queryString(rng);
      const contentType = pick(rng, CONTENT_TYPES);
      const body = contentType.includes('form') ? formBody(rng) : jsonBody(rng);
      const headers = [`Host: ${host}:${port}`, 'Connection: close', ...credentialHeader(rng, fresh), ...mcpHeaders(rng)];
      if (contentType !== '') headers.push(`Content-Type: ${contentType}`);
      const bytes = Buffer.from(body, 'utf8');
      const framing = pick(rng, ['length', 'length', 'length', 'chunked', 'none', 'zero', 'lie', 'huge']);
      let payload = Buffer.alloc(0);
      let truncated = false;
      if (framing === 'length') {
        headers.push(`Content-Length: ${bytes.length}`);
        payload = bytes;
      } else if (framing === 'zero') {
        headers.push('Content-Length: 0');
      } else if (framing === 'lie') {
        headers.push(`Content-Length: ${bytes.length + 100}`);
        payload = bytes;
        truncated = true;
      } else if (framing === 'chunked') {
        headers.push('Transfer-Encoding: chunked');
        const half = Math.floor(bytes.length / 2);
        const chunks = [bytes.subarray(0, half), bytes.subarray(half)].filter((chunk) => chunk.length > 0);
        payload = Buffer.concat([...chunks.flatMap((chunk) => [Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]), Buffer.from('0\r\n\r\n')]);
      } else if (framing === 'huge') {
        // Over the body limit (1 MiB here), chunked so the declared length cannot be used to refuse it early.
        const block = Buffer.alloc(256 * 1024, 0x61);
        headers.push('Transfer-Encoding: chunked');
        payload = Buffer.concat([...Array.from({ length: 5 }, () => [Buffer.from(`${block.length.toString(16)}\r\n`), block, Buffer.from('\r\n')]).flat(), Buffer.from('0\r\n\r\n')]);
      }
      const head = `${method} ${path} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`;
      return {
        raw: Buffer.concat([Buffer.from(head, 'latin1'), payload]),
        truncated,
        summary: `${method} ${path.slice(0, 120)} [${framing}]`,
        unknownCoding: headers.some((header) => /^Transfer-Encoding: (?!chunked$)/i.test(header)),
        tokens: [fresh.mcp, fresh.graph],
        wellFormed: false,
      };
    }

    /**
     * A request as a real client sends it, on a path that reaches the store: an MCP session's POST, GET and DELETE, a
     * stateless 2026-07-28 call, the legacy stream, registration and its management, each OAuth grant, revocation,
     * introspection, the broker behind the plain HTTP route, sign-ins started. Malformed input stops at the first
     * check; these go as deep as a request goes.
     */
    async function wellFormedRequest(rng: Rng): Promise<Built> {
      // A call that reaches the broker may end its grant (the fuzz user has no upstream session: the IdP must see them
      // again), so each gets a token of its own; the shared tokens stay usable all run.
      const ownGrant = await mintAccessToken(keyring, demo.publicUrl, { aud: `${demo.publicUrl}/graph`, scope: 'graph:read', sub: 'fuzz-user' });
      const ownMcpGrant = await mintAccessToken(keyring, demo.publicUrl, { aud: `${demo.publicUrl}/mcp`, scope: 'mcp:tools graph:read', sub: 'fuzz-user' });
      const rpc = (method: string, params: Record<string, unknown>) => JSON.stringify({ jsonrpc: '2.0', id: Math.floor(rng() * 1000), method, params });
      const bearer = `Authorization: Bearer ${tokens.mcp ?? ''}`;
      const session = ['MCP-Protocol-Version: 2025-11-25', `Mcp-Session-Id: ${known.sessionId}`, 'Accept: application/json, text/event-stream'];
      const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
      const [method, path, headers, body] = pick(rng, [
        ['POST', '/mcp', [bearer, 'Content-Type: application/json', ...session], rpc('tools/call', { name: pick(rng, ['echo', 'hello', 'status', 'me']), arguments: { text: 'x' } })],
        ['POST', '/mcp', [`Authorization: Bearer ${ownMcpGrant}`, 'Content-Type: application/json', 'Accept: application/json, text/event-stream', 'MCP-Protocol-Version: 2026-07-28', 'Mcp-Method: tools/call', 'Mcp-Name: get_graph_user_details'], rpc('tools/call', { name: 'get_graph_user_details', arguments: {}, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } })],
        ['POST', '/mcp', [bearer, 'Content-Type: application/json', ...session], rpc('tools/list', {})],
        ['POST', '/mcp', [bearer, 'Content-Type: application/json', 'Accept: application/json, text/event-stream', 'MCP-Protocol-Version: 2025-11-25'], rpc('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'fuzz', version: '1' } })],
        ['POST', '/mcp', [bearer, 'Content-Type: application/json', 'Accept: application/json, text/event-stream', 'MCP-Protocol-Version: 2026-07-28', 'Mcp-Method: tools/call', 'Mcp-Name: hello'], rpc('tools/call', { name: 'hello', arguments: {}, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } })],
        ['GET', '/mcp', [bearer, ...session], ''],
        ['DELETE', '/mcp', [bearer, 'MCP-Protocol-Version: 2025-11-25', `Mcp-Session-Id: ${known.deletable}`], ''],
        ['GET', '/mcp/sse', [bearer, 'Accept: text/event-stream'], ''],
        ['POST', known.legacyMessages, [bearer, 'Content-Type: application/json'], rpc('tools/list', {})],
        ['GET', '/graph/me', [`Authorization: Bearer ${ownGrant}`], ''],
        ['POST', '/graph/echo', [`Authorization: Bearer ${tokens.graph ?? ''}`, 'Content-Type: application/json'], '{"text":"x"}'],
        ['POST', '/register', ['Content-Type: application/json'], JSON.stringify({ client_name: 'fuzz', redirect_uris: ['http://127.0.0.1:9/callback'], token_endpoint_auth_method: 'none' })],
        ['GET', `/register/${known.clientId}`, [`Authorization: Bearer ${known.registrationToken}`], ''],
        ['GET', `/authorize?${form({ client_id: known.clientId, response_type: 'code', redirect_uri: 'http://127.0.0.1:9/callback', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', resource: `${demo.publicUrl}/mcp`, scope: 'mcp:tools', state: 's' })}`, ['Accept: text/html'], ''],
        ['POST', '/token', ['Content-Type: application/x-www-form-urlencoded'], form({ grant_type: 'authorization_code', client_id: known.clientId, code: 'a'.repeat(43), code_verifier: 'v'.repeat(43), redirect_uri: 'http://127.0.0.1:9/callback', resource: `${demo.publicUrl}/mcp` })],
        ['POST', '/token', ['Content-Type: application/x-www-form-urlencoded'], form({ grant_type: 'refresh_token', client_id: known.clientId, refresh_token: 'r'.repeat(43) })],
        ['POST', '/token', ['Content-Type: application/x-www-form-urlencoded', 'DPoP: e30.e30.e30'], form({ grant_type: 'refresh_token', client_id: known.clientId, refresh_token: 'r'.repeat(43) })],
        ['POST', '/revoke', ['Content-Type: application/x-www-form-urlencoded'], form({ client_id: known.clientId, token: known.revocable })],
        ['POST', '/revoke', ['Content-Type: application/x-www-form-urlencoded'], form({ client_id: known.clientId, token: 'r'.repeat(43), token_type_hint: 'refresh_token' })],
        ['POST', '/introspect', ['Content-Type: application/x-www-form-urlencoded'], form({ client_id: known.clientId, token: known.revocable })],
        ['GET', '/account', ['Accept: text/html'], ''],
        ['GET', '/admin/sign-in', ['Accept: text/html'], ''],
        ['GET', '/callback?code=x&state=y&iss=z', ['Accept: text/html'], ''],
        ['GET', '/readyz', [], ''],
      ] as Array<[string, string, string[], string]>);
      const bytes = Buffer.from(body, 'utf8');
      const head = [`${method} ${path} HTTP/1.1`, `Host: ${host}:${port}`, 'Connection: close', ...headers, ...(bytes.length > 0 || method === 'POST' ? [`Content-Length: ${bytes.length}`] : [])];
      return { raw: Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), bytes]), truncated: false, summary: `${method} ${path.slice(0, 120)} [well-formed]`, unknownCoding: false, tokens: [ownGrant, ownMcpGrant], wellFormed: true };
    }

    function exchange(n: number, built: Built): Promise<Exchange> {
      return new Promise((resolve) => {
        const socket = connect({ host: '127.0.0.1', port });
        const received: Buffer[] = [];
        let done = false;
        const finish = (timedOut: boolean) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          socket.destroy();
          // Interim `100 Continue` responses come before the real one.
          const text = Buffer.concat(received).toString('latin1').replace(/^(?:HTTP\/1\.1 100 [^\r]*\r\n\r\n)+/, '');
          const split = text.indexOf('\r\n\r\n');
          const head = split === -1 ? text : text.slice(0, split);
          const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1];
          resolve({
            n,
            request: built.summary,
            ...(status === undefined ? {} : { status: Number(status) }),
            head,
            body: split === -1 ? '' : text.slice(split + 4),
            timedOut,
            truncated: built.truncated,
          });
        };
        const timer = setTimeout(() => finish(true), EXCHANGE_MS);
        socket.on('data', (chunk: Buffer) => {
          received.push(chunk);
          // An SSE stream stays open: its status line and headers are all this test needs.
          if (Buffer.concat(received).includes('text/event-stream')) setTimeout(() => finish(false), 50);
        });
        socket.on('end', () => finish(false));
        socket.on('close', () => finish(false));
        socket.on('error', () => finish(false));
        socket.write(built.raw);
      });
    }

    it(mode === 'store up'
      ? 'answers malformed input on every endpoint without a 5xx, a stack trace, a leaked token, a stream or a descriptor'
      : 'answers every endpoint with the store down without a 500, a stack trace, a leaked token, a stream or a descriptor', async () => {
      assert.ok(targets.length >= 20, `endpoints found: ${targets.map((t) => t.path).join(' ')}`);
      // The route table is read as a tree: nested routes keep their parents' paths, and every verb is parsed.
      for (const [path, method] of [['/mcp', 'POST'], ['/mcp/sse', 'GET'], ['/mcp/messages', 'POST'], ['/admin/audit', 'GET'], ['/account/decisions/forget', 'POST'], ['/graph/x', 'PUT'], ['/healthz', 'GET'], ['/interaction/fuzz-id/decision', 'POST']]) {
        assert.ok(targets.some((target) => target.path === path && target.methods.includes(method as string)), `${method} ${path} is fuzzed`);
      }
      const rng = seededRng(SEED);
      // Warm up so lazily opened pools and caches do not count as leaks.
      const warmUpTokens = await freshTokens();
      await Promise.all(targets.map((target, i) => exchange(-i, buildRequest(seededRng(i), target, warmUpTokens))));
      await new Promise((resolve) => setTimeout(resolve, 500));
      await redis?.stop();
      const fdsBefore = openFds();

      const failures: string[] = [];
      const statuses = new Map<number, number>();
      let next = 0;
      let unanswered = 0;
      let wellFormed = 0;
      let wellFormedServed = 0;
      const worker = async () => {
        while (next < requests) {
          const n = next++;
          const target = pick(rng, targets);
          const built = rng() < 0.3 ? await wellFormedRequest(rng) : buildRequest(rng, target, await freshTokens());
          const result = await exchange(n, built);
          if (built.wellFormed) {
            wellFormed += 1;
            if (result.status !== undefined && result.status < 300) wellFormedServed += 1;
          }
          if (result.status !== undefined) statuses.set(result.status, (statuses.get(result.status) ?? 0) + 1);
          const where = `#${n} ${result.request}`;
          if (result.status === undefined) {
            unanswered += 1;
            // Only a request whose body never fully arrived may go unanswered (the server waits for the rest).
            if (!result.truncated && !result.timedOut) failures.push(`${where}: connection closed without a response`);
            continue;
          }
          // 501: a transfer coding no one here decodes (RFC 9112 §6.1), refused at the edge.
          if (!(result.status === 501 && built.unknownCoding) && (mode === 'store up' ? result.status >= 500 : result.status >= 500 && ![502, 503, 504].includes(result.status))) {
            failures.push(`${where}: ${result.status} ${result.body.slice(0, 200)}`);
          }
          if (result.status === 503 && !/^retry-after: *\d+\s*$/im.test(result.head)) failures.push(`${where}: 503 without Retry-After`);
          if (/\bat [^\s]+ \(?[^\s]*\.(?:ts|js):\d+/.test(result.body)) failures.push(`${where}: stack trace in the body`);
          // Every page the gateway itself renders cannot be framed, whichever path answered it (a backend's relayed page
          // on a plain HTTP route keeps its own headers plus the defaults, so it is held to the same).
          if (/^content-type: *text\/html/im.test(result.head) && !(/^content-security-policy:.*frame-ancestors 'none'/im.test(result.head) && /^x-frame-options: *DENY/im.test(result.head))) {
            failures.push(`${where}: an HTML page without the framing protection`);
          }
          for (const token of [...Object.values(tokens), ...built.tokens]) {
            if (result.body.includes(token) || result.head.includes(token)) failures.push(`${where}: a token echoed back`);
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      assert.deepEqual(failures.slice(0, 20), [], `${failures.length} failures (seed ${SEED}); statuses ${JSON.stringify([...statuses])}`);
      assert.deepEqual(uncaught, [], 'no exception escaped a handler');
      assert.ok(unanswered < requests / 4, `${unanswered} of ${requests} requests unanswered`);
      // The well-formed requests went as deep as they claim: most are served while the store is up (a session that
      // ended early, or a revoked shared token, would turn them into 404s and 401s).
      if (mode === 'store up') assert.ok(wellFormedServed > wellFormed * 0.3, `${wellFormedServed} of ${wellFormed} well-formed requests served`);

      legacyStream?.abort();
      // Leaks: what is still open once closed connections had time to be reaped on both sides. Counted until they
      // are, for up to 20 s: a fixed second was not always that time on a loaded machine.
      const openStreams = async () => {
        const metrics = await (await fetch(`${demo.publicUrl}/metrics`)).text();
        return Number(/^gatehouse_open_streams(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? 0);
      };
      for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
        if ((await openStreams()) === 0 && openFds() <= fdsBefore + 40) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      assert.equal(await openStreams(), 0, 'no SSE stream is still counted open');
      const fdsAfter = openFds();
      assert.ok(fdsAfter <= fdsBefore + 40, `open descriptors grew from ${fdsBefore} to ${fdsAfter}`);
    });
  });
}
