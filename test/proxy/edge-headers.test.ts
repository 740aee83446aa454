import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { backendRequestHeaders, clientResponseHeaders } from '../../src/proxy/forward-headers.ts';
import { forwardedFor, publicOriginOf } from '../../src/proxy/gateway-runtime.ts';
import { rawRequest } from '../support/raw-http.ts';
import { createTestKeyring, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/**
 * What the gateway accepts at its edge and what it passes on: a singleton header sent twice is refused before any
 * check reads one of its copies, and client-supplied address headers never reach a backend.
 */
const keyring = createTestKeyring();
let gateway: TestGateway;
let backend: Server;
const seen: IncomingHttpHeaders[] = [];

before(async () => {
  backend = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}');
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  gateway = await startTestGateway({
    keyring,
    config: {
      // Small, so the 413 case sends a body the server has fully received when it answers.
      server: { bodyLimitBytes: 4096 },
      routes: [
        { path: '/mcp', backend: url, transports: ['streamable-http', 'sse'] },
        { path: '/api', type: 'http', backend: url },
      ],
    },
  });
});

after(async () => {
  await gateway?.close();
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

const tokenFor = (path: string) => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path });
const body = JSON.stringify(toolsCall('echo', { text: 'hi' }));
const postHeaders = (token: string): Array<[string, string]> => [
  ['Authorization', `Bearer ${token}`],
  ['Content-Type', 'application/json'],
  ['Accept', 'application/json, text/event-stream'],
];

describe('a singleton header sent twice is refused on gateway routes', () => {
  it('accepts the same request with each header once (control)', async () => {
    const response = await rawRequest(`${gateway.url}/mcp`, { method: 'POST', headers: postHeaders(await tokenFor('/mcp')), body });
    assert.equal(response.status, 200, JSON.stringify(response));
  });

  const repeated: Array<[string, (token: string) => string[]]> = [
    // The first copy is a valid token: Node keeps it and drops the second, so only the raw headers show the repetition.
    ['Authorization', (token) => [`Bearer ${token}`, 'Bearer forged']],
    ['Authorization', (token) => ['Bearer forged', `Bearer ${token}`]],
    ['Mcp-Session-Id', () => ['session-a', 'session-b']],
    ['Mcp-Method', () => ['tools/call', 'tools/list']],
    ['Mcp-Name', () => ['echo', 'secret_tool']],
    ['Mcp-Protocol-Version', () => ['2025-11-25', '2026-07-28']],
    ['DPoP', () => ['proof-a', 'proof-b']],
    ['Content-Type', () => ['application/json', 'text/plain']],
    ['Host', () => ['127.0.0.1', 'evil.example']],
    ['Origin', () => [gateway.url, 'https://evil.example']],
  ];
  for (const [name, values] of repeated) {
    it(`${name} twice is 400 with a JSON-RPC error`, async () => {
      const token = await tokenFor('/mcp');
      const base = postHeaders(token).filter(([header]) => header !== name);
      const headers: Array<[string, string]> = [...base, ...values(token).map((value): [string, string] => [name, value])];
      const before = seen.length;
      const response = await rawRequest(`${gateway.url}/mcp`, { method: 'POST', headers, body });
      assert.equal(response.status, 400, response.body);
      const error = (JSON.parse(response.body) as { error: { code: number; message: string } }).error;
      assert.equal(error.code, -32600);
      assert.match(error.message, new RegExp(name, 'i'));
      assert.equal(seen.length, before, 'the backend was not called');
    });
  }

  it('Authorization twice is refused on the legacy SSE and plain HTTP routes too', async () => {
    for (const path of ['/mcp/sse', '/api/items']) {
      const token = await tokenFor(path.startsWith('/api') ? '/api' : '/mcp');
      const response = await rawRequest(`${gateway.url}${path}`, { headers: [['Authorization', `Bearer ${token}`], ['Authorization', 'Bearer forged']] });
      assert.equal(response.status, 400, `${path}: ${response.body}`);
    }
  });
});

describe('client address headers never reach a backend', () => {
  const spoofed: Array<[string, string]> = [
    ['X-Real-IP', '6.6.6.6'],
    ['True-Client-IP', '6.6.6.6'],
    ['X-Client-IP', '6.6.6.6'],
    ['X-Cluster-Client-IP', '6.6.6.6'],
    ['CF-Connecting-IP', '6.6.6.6'],
    ['Fastly-Client-IP', '6.6.6.6'],
    ['X-Original-Forwarded-For', '6.6.6.6'],
    ['Forwarded', 'for=6.6.6.6;host=evil.example;proto=https'],
    ['X-Forwarded-For', '6.6.6.6'],
    ['X-Forwarded-Host', 'evil.example'],
    ['X-Forwarded-Port', '6666'],
    ['X-Forwarded-Server', 'evil.example'],
    ['X-Original-URL', '/admin'],
    // Bare, and misspelt families of the same.
    ['X-Forwarded', 'for=6.6.6.6'],
    ['Forwarded-For', '6.6.6.6'],
    ['X-Envoy-Original-Path', '/admin'],
    ['X-Envoy-Internal', 'true'],
    ['X-Override-URL', '/admin'],
    // The client's Host is what it wrote: the backend hears the public URL's.
    ['Host', 'evil.example", for=6.6.6.6;host=x'],
  ];

  /** Who an authenticating proxy in front of an API says the user is, or what client certificate it checked. */
  const identity: Array<[string, string]> = [
    ['X-Auth-Request-User', 'admin'],
    ['X-Auth-Request-Email', 'admin@corp.example'],
    ['Remote-User', 'admin'],
    ['X-Remote-User', 'admin'],
    ['X-WEBAUTH-USER', 'admin'],
    ['X-MS-CLIENT-PRINCIPAL-NAME', 'admin@corp.example'],
    ['X-MS-CLIENT-PRINCIPAL-ID', 'admin'],
    ['X-MS-TOKEN-AAD-ACCESS-TOKEN', 'forged'],
    ['X-Goog-Authenticated-User-Email', 'accounts.google.com:admin@corp.example'],
    ['X-Goog-IAP-JWT-Assertion', 'forged'],
    ['X-Amzn-Oidc-Identity', 'admin'],
    ['X-Amzn-Oidc-Data', 'forged'],
    ['Cf-Access-Authenticated-User-Email', 'admin@corp.example'],
    ['Cf-Access-Jwt-Assertion', 'forged'],
    ['X-Pomerium-Jwt-Assertion', 'forged'],
    ['X-Forwarded-User', 'admin'],
    ['X-Forwarded-Email', 'admin@corp.example'],
    ['X-Authenticated-User', 'admin'],
    ['X-User', 'admin'],
    ['X-SSL-Client-Cert', 'forged'],
    ['SSL-Client-Cert', 'forged'],
    ['X-Client-Cert', 'forged'],
    ['X-ARR-ClientCert', 'forged'],
    // Spelt with underscores: a CGI or WSGI server (Python's wsgiref, Werkzeug, PHP) reads `X_Forwarded_User` as
    // `HTTP_X_FORWARDED_USER`, the same variable as `X-Forwarded-User`.
    ['X_Forwarded_User', 'admin'],
    ['X_Auth_Request_User', 'admin'],
    ['Remote_User', 'admin'],
    ['X_Goog_Authenticated_User_Email', 'admin@corp.example'],
    ['X_Real_IP', '6.6.6.6'],
    ['X_Forwarded_For', '6.6.6.6'],
    ['X_Forwarded_Host', 'evil.example'],
    ['X_Original_URL', '/admin'],
    ['X_Http_Method_Override', 'DELETE'],
    // The scheme the client claims: the gateway says which one it used.
    ['X-Scheme', 'https-forged'],
    ['X-Url-Scheme', 'https-forged'],
    ['Front-End-Https', 'forged'],
  ];

  for (const [path, method, body] of [['/mcp', 'POST', JSON.stringify(toolsCall('echo'))], ['/api/items', 'GET', undefined]] as const) {
    it(`${path}: stripped, and the forwarding headers say what the gateway saw`, async () => {
      const token = await tokenFor(path.startsWith('/api') ? '/api' : '/mcp');
      const headers = [...postHeaders(token), ...spoofed, ...identity];
      const before = seen.length;
      const response = await rawRequest(`${gateway.url}${path}`, { method, headers, body });
      assert.equal(response.status, 200, response.body);
      assert.equal(seen.length, before + 1);
      const received = seen.at(-1)!;
      assert.ok(!JSON.stringify(received).includes('6.6.6.6'), JSON.stringify(received));
      assert.ok(!JSON.stringify(received).includes('evil.example'), JSON.stringify(received));
      assert.ok(!/admin|forged|DELETE/.test(JSON.stringify(received)), JSON.stringify(received));
      for (const [name] of [...spoofed, ...identity]) {
        if (!['x-real-ip', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'host'].includes(name.toLowerCase())) {
          assert.equal(received[name.toLowerCase()], undefined, name);
        }
      }
      const host = new URL(gateway.url).host;
      assert.equal(received['x-forwarded-for'], '127.0.0.1');
      assert.equal(received['x-forwarded-host'], host);
      assert.equal(received['x-forwarded-proto'], 'http');
      assert.equal(received['x-real-ip'], '127.0.0.1');
      assert.equal(received.forwarded, `for=127.0.0.1;host="${host}";proto=http`);
    });
  }
});

describe('Expect: 100-continue', () => {
  // Found by the endpoint fuzz test: forwarded, the header made undici refuse the backend request (502).
  for (const [path, method, body] of [['/mcp', 'POST', JSON.stringify(toolsCall('echo'))], ['/api/items', 'POST', '{}']] as const) {
    it(`${path}: answered between client and gateway, never forwarded (no 502)`, async () => {
      const token = await tokenFor(path.startsWith('/api') ? '/api' : '/mcp');
      const before = seen.length;
      const response = await rawRequest(`${gateway.url}${path}`, { method, headers: [...postHeaders(token), ['Expect', '100-continue']], body });
      assert.equal(response.status, 200, response.body);
      assert.equal(seen.length, before + 1);
      assert.equal(seen.at(-1)!.expect, undefined);
    });
  }
});

describe('Expect: 100-continue, answered when the body is read', () => {
  /** Sends the head only, with `Expect`, and reports what the gateway answers before any body is sent. */
  function headOnly(path: string, headers: Array<[string, string]>): Promise<string> {
    return new Promise((resolve) => {
      const socket = connect(Number(new URL(gateway.url).port), '127.0.0.1');
      let received = '';
      const done = () => {
        socket.destroy();
        resolve(received);
      };
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        received += chunk;
        // The interim answer, or the final one's head: either settles what was sent before the body.
        if (received.includes('\r\n\r\n')) setTimeout(done, 50);
      });
      socket.on('error', done);
      const body = JSON.stringify(toolsCall('echo'));
      const lines = [`POST ${path} HTTP/1.1`, `Host: ${new URL(gateway.url).host}`, ...headers.map(([name, value]) => `${name}: ${value}`), 'Expect: 100-continue', `Content-Length: ${body.length}`];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      setTimeout(done, 3_000);
    });
  }

  it('an unauthenticated upload gets its 401 and no invitation to send the body (RFC 9110 §10.1.1)', async () => {
    const answer = await headOnly('/mcp', [['Content-Type', 'application/json'], ['Accept', 'application/json, text/event-stream']]);
    assert.match(answer, /^HTTP\/1\.1 401 /);
    assert.doesNotMatch(answer, /100 Continue/);
  });

  it('an authenticated one is invited once the gateway reads its body: an MCP POST, and an upload streamed to a plain HTTP route', async () => {
    const token = await tokenFor('/mcp');
    const answer = await headOnly('/mcp', postHeaders(token).filter(([name]) => name.toLowerCase() !== 'content-length'));
    assert.match(answer, /^HTTP\/1\.1 100 Continue\r\n/);
    const streamed = await headOnly('/api/items', [['Authorization', `Bearer ${await tokenFor('/api')}`], ['Content-Type', 'application/json']]);
    assert.match(streamed, /^HTTP\/1\.1 100 Continue\r\n/);
  });
});

describe('forwarding headers through trusted proxies', () => {
  it('names every hop, client first, with IPv6 nodes bracketed and quoted (RFC 7239 §6)', () => {
    const incoming = { 'x-real-ip': '6.6.6.6', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-prefix': '/evil', accept: '*/*' };
    const headers = backendRequestHeaders(incoming, { addresses: ['2001:db8::1', '10.0.0.2'], protocol: 'https', host: 'gw.example' }, 'Bearer assertion');
    assert.equal(headers['x-forwarded-for'], '2001:db8::1, 10.0.0.2');
    assert.equal(headers['x-real-ip'], '2001:db8::1');
    assert.equal(headers.forwarded, 'for="[2001:db8::1]", for=10.0.0.2;host="gw.example";proto=https');
    assert.equal(headers['x-forwarded-prefix'], undefined);
    assert.equal(headers.accept, '*/*');
    assert.equal(headers.authorization, 'Bearer assertion');
  });

  it('drops method overrides and the client\'s baggage; trace ids pass', () => {
    const incoming = {
      'x-http-method-override': 'DELETE',
      'x-http-method': 'DELETE',
      'x-method-override': 'DELETE',
      'x-original-method': 'DELETE',
      baggage: 'user=admin',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'vendor=1',
    };
    const headers = backendRequestHeaders(incoming, { addresses: ['10.0.0.2'], protocol: 'http', host: 'gw.example' }, 'Bearer a');
    for (const name of ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-method', 'baggage']) assert.equal(headers[name], undefined, name);
    assert.equal(headers.traceparent, incoming.traceparent);
    assert.equal(headers.tracestate, 'vendor=1');
  });

  it('reads names as CGI and WSGI servers do (`_` as `-`): the body\'s own headers and Connection-listed ones spelt with underscores do not pass; other underscored names do', () => {
    // MCP's headers too: `Mcp_Session_Id` naming another user's session reached such a backend as its session id while
    // the gateway, seeing no `Mcp-Session-Id`, checked no owner; `Mcp_Name` named another tool than the policy judged.
    const mcp = { mcp_session_id: 'victim-session', mcp_name: 'secret_tool', mcp_method: 'tools/call', mcp_protocol_version: '2025-06-18', last_event_id: 'e1' };
    const incoming = { content_encoding: 'gzip', content_type: 'text/plain', content_length: '5', x_custom_id: '7', connection: 'keep-alive, X_Trace', 'x-trace': 'a', x_trace: 'b', ...mcp };
    const headers = backendRequestHeaders(incoming, { addresses: ['10.0.0.2'], protocol: 'http', host: 'gw.example' }, 'Bearer a');
    for (const name of ['content_encoding', 'content_type', 'content_length', 'x-trace', 'x_trace', 'mcp_session_id', 'mcp_name', 'mcp_method', 'mcp_protocol_version', 'last_event_id']) assert.equal(headers[name], undefined, name);
    assert.equal(headers.x_custom_id, '7');
    // MCP 2026-07-28's `Mcp-Param-*` headers may carry `_` in their own names; the gateway judges none of them.
    const params = backendRequestHeaders({ 'mcp-param-tenant_id': 't1', mcp_trace: 'x' }, { addresses: ['10.0.0.2'], protocol: 'http', host: 'gw.example' }, 'Bearer a');
    assert.deepEqual([params['mcp-param-tenant_id'], params.mcp_trace], ['t1', 'x']);
    // And a backend's answer: a header its Connection names, in either spelling, stays between it and the gateway.
    const answer = clientResponseHeaders({ connection: 'X_Internal', x_internal: 'secret-hop', 'x-internal': 'secret-hop', 'x-kept': 'yes' });
    assert.deepEqual([answer['x_internal'], answer['x-internal'], answer['x-kept']], [undefined, undefined, 'yes']);
  });

  it('escapes a quote or a backslash in the host inside its quoted string (RFC 7239 §4, RFC 9110 §5.6.4)', () => {
    const forwarded = (host: string) => backendRequestHeaders({}, { addresses: ['10.0.0.2'], protocol: 'http', host }, 'Bearer a').forwarded;
    assert.equal(forwarded('a"b\\c'), 'for=10.0.0.2;host="a\\"b\\\\c";proto=http');
    assert.equal(forwarded('plain.example:8080'), 'for=10.0.0.2;host="plain.example:8080";proto=http');
  });

  // A client that closes its connection while the gateway still works on its request (an HTTP route, the token
  // being verified) leaves Node without its address: `request.ip` is then undefined, and building the backend's
  // headers threw a TypeError — an "unexpected gateway error" with a stack in the log.
  it('a client whose address Node no longer knows is `for=unknown`, with no empty X-Forwarded-For (RFC 7239 §6.3)', () => {
    const gone = { ip: undefined as unknown as string, ips: undefined };
    const forwarded = forwardedFor(gone, publicOriginOf('http://gw.example'));
    assert.deepEqual(forwarded.addresses, []);
    const headers = backendRequestHeaders({ 'x-forwarded-for': '6.6.6.6' }, forwarded, 'Bearer a');
    assert.equal(headers.forwarded, 'for=unknown;host="gw.example";proto=http');
    assert.equal(headers['x-forwarded-for'], undefined);
    assert.equal(headers['x-real-ip'], undefined);
    // Behind a trusted proxy, the lost peer is the chain's first entry: the hops Fastify read from the header stay.
    const chain = forwardedFor({ ...gone, ips: [undefined as unknown as string, '10.0.0.2', '203.0.113.7'] }, publicOriginOf('http://gw.example'));
    assert.deepEqual(chain.addresses, ['203.0.113.7', '10.0.0.2']);
  });
});

describe("a backend's answer headers", () => {
  it("never set the gateway origin's policies (HSTS, CORS, Alt-Svc, Clear-Site-Data, a service worker's scope) or name the backend's software", () => {
    const backend = {
      'content-type': 'application/json',
      'strict-transport-security': 'max-age=0',
      'access-control-allow-origin': '*',
      'access-control-allow-credentials': 'true',
      'alt-svc': 'h2="evil.example:443"',
      'clear-site-data': '"cookies"',
      'service-worker-allowed': '/',
      server: 'Werkzeug/2.0',
      'x-powered-by': 'Express',
      'set-cookie': 'session=1',
      'mcp-session-id': 's1',
    };
    assert.deepEqual(clientResponseHeaders(backend), { 'content-type': 'application/json', 'mcp-session-id': 's1' });
  });

  it("never set the origin's reporting, login status, client hints or agent cluster, its authentication answers, or name a proxy", () => {
    const backend = {
      'content-type': 'text/event-stream',
      nel: '{"report_to":"x","max_age":31536000}',
      'report-to': '{"group":"x","max_age":31536000,"endpoints":[{"url":"https://collector.example"}]}',
      'reporting-endpoints': 'x="https://collector.example"',
      'set-login': 'logged-out',
      'accept-ch': 'Sec-CH-UA-Model',
      'critical-ch': 'Sec-CH-UA-Model',
      'origin-agent-cluster': '?0',
      'speculation-rules': '"/rules.json"',
      'authentication-info': 'nextnonce="x"',
      'dpop-nonce': 'nonce-chosen-by-backend',
      via: '1.1 internal-proxy',
    };
    assert.deepEqual(clientResponseHeaders(backend), { 'content-type': 'text/event-stream' });
  });
});

describe('JSON-RPC codes match what went wrong', () => {
  const post = async (url: string, headers: Array<[string, string]>, message: unknown) => {
    const response = await rawRequest(url, { method: 'POST', headers, body: JSON.stringify(message) });
    return { status: response.status, body: JSON.parse(response.body) as { id: unknown; error: { code: number; message: string } } };
  };

  it('an unknown Mcp-Session-Id is 404 with -32001 "Session not found" (the MCP SDK servers\' answer), not -32601', async () => {
    const headers: Array<[string, string]> = [...postHeaders(await tokenFor('/mcp')), ['Mcp-Session-Id', 'no-such-session']];
    const { status, body } = await post(`${gateway.url}/mcp`, headers, { jsonrpc: '2.0', id: 7, method: 'tools/list' });
    assert.equal(status, 404);
    assert.deepEqual(body, { jsonrpc: '2.0', id: 7, error: { code: -32001, message: 'Session not found' } });
  });

  it('an unknown or missing legacy SSE session is 404 with -32001', async () => {
    const headers = postHeaders(await tokenFor('/mcp'));
    for (const query of ['?sessionId=no-such-session', '']) {
      const { status, body } = await post(`${gateway.url}/mcp/messages${query}`, headers, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
      assert.equal(status, 404, query);
      assert.equal(body.error.code, -32001, query);
      assert.equal(body.error.message, 'Session not found');
    }
  });

  it('a body over the limit is 413 with the server error code, not -32600 (the message itself was never judged)', async () => {
    const limit = gateway.ctx.config.server.bodyLimitBytes;
    const message = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x'.repeat(limit) } } };
    const { status, body } = await post(`${gateway.url}/mcp`, postHeaders(await tokenFor('/mcp')), message);
    assert.equal(status, 413);
    assert.equal(body.error.code, -32000);
  });
});
