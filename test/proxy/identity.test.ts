import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import type { TokenBroker } from '../../src/broker/types.ts';
import { configSchema } from '../../src/config/schema.ts';
import { createGatewayPlugin } from '../../src/proxy/gateway-plugin.ts';
import { accountRecord, type AccountRecord } from '../../src/records/account.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/** Identity forwarding (assertion and obo) and plain HTTP routes. */
const keyring = createTestKeyring();
let gateway: TestGateway;
let backend: Server;
const seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders; body: string }> = [];
const brokerCalls: string[] = [];

const broker: TokenBroker = {
  async getDownstreamToken({ user, downstream }) {
    brokerCalls.push(`${user.subject}→${downstream}`);
    if (user.subject === 'tenant/needs-consent') throw new ProtocolError('interaction_required', 'consent needed');
    return { accessToken: `downstream-for-${user.subject}`, expiresAt: Date.now() + 60_000, scopes: ['User.Read'] };
  },
};

before(async () => {
  backend = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}');
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  gateway = await startTestGateway({
    keyring,
    broker,
    config: {
      routes: [
        { path: '/mcp', backend: `${origin}/mcp`, identity: { mode: 'assertion', assertionTtlSeconds: 60 } },
        { path: '/graph', backend: `${origin}/graph`, identity: { mode: 'obo', downstream: 'graph' } },
        { path: '/api', type: 'http', backend: `${origin}/v1` },
      ],
    },
  });
  const account: AccountRecord = {
    subject: 'tenant/alice',
    issuer: 'https://idp.example',
    name: 'Alice',
    email: 'alice@example.com',
    tenantId: 'tenant',
    groups: ['staff'],
    firstSeenAt: 1,
    lastSeenAt: 2,
  };
  await gateway.store.set(accountRecord.namespace, account.subject, account);
});
after(async () => {
  await gateway?.close();
  backend.closeAllConnections();
  await new Promise<void>((resolve) => backend.close(() => resolve()));
});

const token = (path: string, sub = 'tenant/alice') => mintAccessToken(keyring, gateway.url, { aud: gateway.url + path, sub, gid: `g-${sub}` });

describe('assertion mode', () => {
  it('sends a gateway-signed identity assertion the backend can verify with the JWKS, reused per token', async () => {
    const bearer = await token('/mcp');
    for (let i = 0; i < 2; i++) await (await mcpPost(gateway.url + '/mcp', bearer, toolsCall('echo', { text: 'x' }))).text();
    const [first, second] = seen.slice(-2);
    const assertion = first!.headers.authorization!.replace('Bearer ', '');
    assert.notEqual(assertion, bearer);
    assert.equal(second!.headers.authorization, first!.headers.authorization, 'cached per token and route');
    const { payload, protectedHeader } = await jwtVerify(assertion, createLocalJWKSet(keyring.publicJwks()), {
      issuer: gateway.url,
      audience: gateway.url + '/mcp',
      typ: 'gatehouse-id+jwt',
    });
    assert.equal(protectedHeader.typ, 'gatehouse-id+jwt');
    assert.equal(payload.sub, 'tenant/alice');
    assert.equal(payload.name, 'Alice');
    assert.equal(payload.email, 'alice@example.com');
    assert.equal(payload.tid, 'tenant');
    assert.deepEqual(payload.groups, ['staff']);
    assert.equal(payload.gid, 'g-tenant/alice');
    assert.ok(payload.exp! - payload.iat! <= 60);
  });
});

describe('forwarded headers', () => {
  it('passes MCP headers through, strips hop-by-hop and Connection-listed headers, sets X-Forwarded-*', async () => {
    const bearer = await token('/mcp');
    // node:http rather than fetch: fetch does not let a caller set `Connection`.
    const status = await new Promise<number>((resolve, reject) => {
      const body = JSON.stringify(toolsCall('echo', { text: 'x' }));
      const req = request(gateway.url + '/mcp', { method: 'POST', headers: {
      authorization: `Bearer ${bearer}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      'last-event-id': 'stream-1:42',
      'mcp-param-region': 'eu',
      'x-forwarded-for': '6.6.6.6',
      connection: 'keep-alive, x-secret-hop',
      'x-secret-hop': 'do not forward',
      'proxy-authorization': 'Basic abc',
      } }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      });
      req.once('error', reject);
      req.end(body);
    });
    assert.equal(status, 200);
    const headers = seen.at(-1)!.headers;
    assert.equal(headers['mcp-protocol-version'], '2025-11-25');
    assert.equal(headers['last-event-id'], 'stream-1:42');
    assert.equal(headers['mcp-param-region'], 'eu');
    assert.equal(headers['x-secret-hop'], undefined);
    assert.equal(headers['proxy-authorization'], undefined);
    // trustProxy is off: a client-supplied X-Forwarded-For is replaced by the address the gateway saw.
    assert.equal(headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(headers['x-forwarded-host'], new URL(gateway.url).host);
  });
});

describe('obo mode', () => {
  it('forwards the broker’s downstream token instead of the client token', async () => {
    const response = await mcpPost(gateway.url + '/graph', await token('/graph'), toolsCall('echo'));
    assert.equal(response.status, 200);
    await response.text();
    assert.equal(seen.at(-1)!.headers.authorization, 'Bearer downstream-for-tenant/alice');
    assert.ok(brokerCalls.includes('tenant/alice→graph'));
  });

  it('turns interaction_required into a 401 challenge so the client re-authorizes', async () => {
    const response = await mcpPost(gateway.url + '/graph', await token('/graph', 'tenant/needs-consent'), toolsCall('echo'));
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    await response.text();
  });
});

describe('plain HTTP routes', () => {
  it('checks the token and forwards path, query and a streamed body with the identity assertion', async () => {
    const bearer = await token('/api');
    const response = await fetch(`${gateway.url}/api/hello/world?x=1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'text/plain', connection: 'keep-alive' },
      body: 'payload',
    });
    assert.equal(response.status, 200);
    await response.text();
    const last = seen.at(-1)!;
    assert.equal(last.url, '/v1/hello/world?x=1');
    assert.equal(last.body, 'payload');
    assert.match(last.headers.authorization ?? '', /^Bearer ey/);
    assert.notEqual(last.headers.authorization, `Bearer ${bearer}`);
    const refused = await fetch(`${gateway.url}/api/hello`);
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get('www-authenticate') ?? '', /resource_metadata="[^"]+\/\.well-known\/oauth-protected-resource\/api"/);
    assert.equal(((await refused.json()) as { error: string }).error, 'invalid_token');
  });
});

describe('configuration checked at start', () => {
  it('refuses an obo route without a broker, and a path configured twice', () => {
    const base = { ...gateway.ctx };
    const withRoutes = (routes: unknown[]) => ({ ...base, config: configSchema.parse({ routes }) });
    const revokedGrants = gateway.revokedGrants;
    assert.throws(
      () => createGatewayPlugin(withRoutes([{ path: '/graph', backend: 'http://127.0.0.1:1', identity: { mode: 'obo', downstream: 'graph' } }]), { revokedGrants }),
      /needs the token broker/,
    );
    assert.throws(
      () =>
        createGatewayPlugin(withRoutes([{ path: '/a', backend: 'http://127.0.0.1:1' }, { path: '/a', backend: 'http://127.0.0.1:2' }]), { revokedGrants, broker }),
      /configured twice/,
    );
  });
});
