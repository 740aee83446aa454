import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { revokeGrant } from '../../src/grants/revoked-grants.ts';
import { startMcpBackend, type McpBackend } from '../support/mcp-backends.ts';
import { createTestKeyring, mcpPost, mintAccessToken, startTestGateway, toolsCall, type TestGateway } from './harness.ts';

/** RFC 6750 / RFC 9068 / RFC 9728 behaviour of the bearer check, and every bad token the issue lists. */
let backend: McpBackend;
let gateway: TestGateway;
let route: string;
const keyring = createTestKeyring();

before(async () => {
  backend = await startMcpBackend({ kind: 'v2-stateless', responseMode: 'json' });
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        { path: '/mcp', backend: backend.url, scopes: { 'mcp:tools': 'Use tools', 'mcp:admin': 'Admin' } },
        { path: '/mcp/other', backend: backend.url },
      ],
    },
  });
  route = gateway.url + '/mcp';
});
after(async () => {
  await gateway?.close();
  await backend?.close();
});

const token = (options: Partial<Parameters<typeof mintAccessToken>[2]> = {}) =>
  mintAccessToken(keyring, gateway.url, { aud: route, ...options });

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
function claimsNow() {
  const now = Math.floor(Date.now() / 1000);
  return { iss: gateway.url, aud: route, sub: 'tenant/alice', client_id: 'c', gid: 'g', jti: 'j', scope: 'mcp:tools', iat: now, exp: now + 300 };
}

async function expectChallenge(response: Response, error: string | undefined): Promise<string> {
  assert.equal(response.status, 401);
  const challenge = response.headers.get('www-authenticate') ?? '';
  assert.match(challenge, /^Bearer /);
  assert.ok(challenge.includes(`resource_metadata="${gateway.url}/.well-known/oauth-protected-resource/mcp"`), challenge);
  assert.ok(challenge.includes('scope="mcp:tools"'), challenge);
  if (error) assert.ok(challenge.includes(`error="${error}"`), challenge);
  else assert.ok(!challenge.includes('error='), challenge);
  const body = (await response.json()) as { jsonrpc: string; error: { message: string } };
  assert.equal(body.jsonrpc, '2.0');
  return body.error.message;
}

/** The audit record of one request, by the request id its answer carried (records are written in batches). */
async function auditRecordOf(requestId: string | null): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const found = gateway.auditLines.map((line) => JSON.parse(line) as Record<string, unknown>).find((record) => record['requestId'] === requestId);
    if (found !== undefined || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('the MCP URL spelt with a trailing slash', () => {
  it('is the same endpoint with the same tokens, its challenge naming the metadata of that spelling (it was a 404)', async () => {
    const unauthenticated = await mcpPost(`${route}/`, undefined, toolsCall('echo'));
    assert.equal(unauthenticated.status, 401);
    const challenge = unauthenticated.headers.get('www-authenticate') ?? '';
    assert.ok(challenge.includes(`resource_metadata="${gateway.url}/.well-known/oauth-protected-resource/mcp/"`), challenge);
    await unauthenticated.body?.cancel();
    // RFC 9728 §3.3: the document's `resource` is the identifier its URL was made from, with the slash.
    const metadata = await fetch(`${gateway.url}/.well-known/oauth-protected-resource/mcp/`);
    assert.equal(metadata.status, 200);
    assert.equal(((await metadata.json()) as { resource: string }).resource, `${route}/`);
    // The route's own spelling is unchanged.
    assert.equal(((await (await fetch(`${gateway.url}/.well-known/oauth-protected-resource/mcp`)).json()) as { resource: string }).resource, route);
    const called = await mcpPost(`${route}/`, await token(), toolsCall('echo', { text: 'slash' }));
    assert.equal(called.status, 200);
    assert.match(await called.text(), /slash/);
    // Another route's token is refused there as at /mcp.
    const other = await mcpPost(`${route}/`, await token({ aud: `${gateway.url}/mcp/other` }), toolsCall('echo'));
    assert.equal(other.status, 401);
    assert.match(other.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    await other.body?.cancel();
  });
});

describe('protected resource metadata', () => {
  it('serves RFC 9728 documents at the path-inserted and the root well-known URL', async () => {
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      const response = await fetch(gateway.url + path);
      assert.equal(response.status, 200);
      const document = (await response.json()) as Record<string, unknown>;
      assert.equal(document.resource, route);
      assert.deepEqual(document.authorization_servers, [gateway.url]);
      assert.deepEqual(document.bearer_methods_supported, ['header']);
      assert.deepEqual(document.scopes_supported, ['mcp:tools', 'mcp:admin']);
    }
    const other = (await (await fetch(gateway.url + '/.well-known/oauth-protected-resource/mcp/other')).json()) as { resource: string };
    assert.equal(other.resource, gateway.url + '/mcp/other');
  });

  it('answers another method than GET, HEAD or OPTIONS with 405 naming them, not a 404 as if no document were there', async () => {
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource/mcp/', '/.well-known/oauth-protected-resource']) {
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const response = await fetch(gateway.url + path, { method });
        assert.equal(response.status, 405, `${method} ${path}`);
        assert.equal(response.headers.get('allow'), 'GET, HEAD, OPTIONS');
        assert.equal(((await response.json()) as { error: string }).error, 'invalid_request');
      }
      assert.equal((await fetch(gateway.url + path, { method: 'HEAD' })).status, 200);
    }
  });
});

describe('bearer check', () => {
  it('accepts the Bearer scheme in any case', async () => {
    const valid = await token();
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'BeArEr']) {
      const response = await mcpPost(route, undefined, toolsCall('echo', { text: 'x' }), { authorization: `${scheme} ${valid}` });
      assert.equal(response.status, 200, scheme);
      await response.body?.cancel();
    }
  });

  it('asks for a token without an error code when none was sent', async () => {
    await expectChallenge(await mcpPost(route, undefined, toolsCall('echo', { text: 'x' })), undefined);
  });

  for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'Bearer a b', 'Bearer tok"en', 'Token abc']) {
    it(`refuses the malformed header ${JSON.stringify(header)}`, async () => {
      await expectChallenge(await mcpPost(route, undefined, toolsCall('echo'), { authorization: header }), 'invalid_token');
    });
  }

  it('refuses a token in the query string, even with a valid header, however its name is spelt for a query parser', async () => {
    const valid = await token();
    for (const name of ['access_token', 'access%5Ftoken', '%61ccess_token', 'access+token', 'access.token', 'ACCESS_TOKEN', 'access_token[]', 'access_token%5B0%5D', 'access_token%00']) {
      for (const query of [`${name}=${valid}`, `a=1;${name}=${valid}`, `a=1&${name}=${valid}`]) {
        const message = await expectChallenge(await mcpPost(`${route}?${query}`, valid, toolsCall('echo')), 'invalid_token');
        assert.ok(!message.includes(valid));
      }
    }
  });

  const bad: Array<[string, () => Promise<string>]> = [
    ['an expired token', () => token({ expiresIn: -120 })],
    ['a token for another route', () => token({ aud: `${gateway.url}/mcp/other` })],
    ['a token from another issuer', () => token({ issuer: 'https://evil.example' })],
    ['a token with the wrong typ', () => token({ typ: 'JWT' })],
    ['a token signed by another key', () => mintAccessToken(createTestKeyring(), gateway.url, { aud: route })],
    ['an unsigned token (alg none)', async () => `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claimsNow())}.`],
    [
      'an HS256 token keyed with the public key',
      async () => {
        const jwk = keyring.publicJwks().keys[0]!;
        return new SignJWT(claimsNow())
          .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: jwk.kid })
          .sign(new TextEncoder().encode(JSON.stringify(jwk)));
      },
    ],
    ['a token with a tampered payload', async () => {
      const [header, , signature] = (await token()).split('.');
      return `${header}.${b64({ ...claimsNow(), sub: 'tenant/admin' })}.${signature}`;
    }],
  ];
  for (const [name, make] of bad) {
    it(`refuses ${name}`, async () => {
      const forged = await make();
      const message = await expectChallenge(await mcpPost(route, forged, toolsCall('echo')), 'invalid_token');
      assert.ok(!message.includes(forged), 'the error never echoes the token');
    });
  }

  it('answers 403 insufficient_scope naming every scope the route needs', async () => {
    const response = await mcpPost(route, await token({ scope: 'profile' }), toolsCall('echo'));
    assert.equal(response.status, 403);
    const challenge = response.headers.get('www-authenticate') ?? '';
    assert.ok(challenge.includes('error="insufficient_scope"'), challenge);
    assert.ok(challenge.includes('scope="mcp:tools"'), challenge);
    await response.body?.cancel();
  });

  it('refuses a token of a revoked grant', async () => {
    const valid = await token({ gid: 'grant-to-revoke' });
    const before = await mcpPost(route, valid, toolsCall('echo', { text: 'x' }));
    assert.equal(before.status, 200);
    await before.body?.cancel();
    await revokeGrant(gateway.store, 'grant-to-revoke', { ttlSeconds: 600 });
    // Published on the store's channel: the in-memory cache learns it without a store read per request.
    await gateway.revokedGrants.resync();
    const refused = await mcpPost(route, valid, toolsCall('echo'));
    const requestId = refused.headers.get('x-request-id');
    await expectChallenge(refused, 'invalid_token');
    // Refused naming whose token it was (its signature verified): who kept using a revoked grant is in the trail.
    const record = await auditRecordOf(requestId);
    assert.equal(record?.['user'], 'tenant/alice');
    assert.equal(record?.['client'], 'client-1');
  });

  it('names the user of an expired token this replica never saw in the audit record (its check fails in the signature library)', async () => {
    const expired = await token({ expiresIn: -120 });
    const refused = await mcpPost(route, expired, toolsCall('echo'));
    const requestId = refused.headers.get('x-request-id');
    await expectChallenge(refused, 'invalid_token');
    assert.equal((await auditRecordOf(requestId))?.['user'], 'tenant/alice');
    // A token for another route is no token of this one: whose it is stays unnamed.
    const other = await token({ aud: `${gateway.url}/elsewhere`, expiresIn: -120 });
    const foreign = await mcpPost(route, other, toolsCall('echo'));
    const foreignId = foreign.headers.get('x-request-id');
    await foreign.body?.cancel();
    const foreignRecord = await auditRecordOf(foreignId);
    assert.ok(foreignRecord, 'the refusal is audited');
    assert.equal(foreignRecord['user'], undefined);
  });

  it('never lets the client token or cookies reach the backend', async () => {
    const valid = await token();
    const response = await mcpPost(route, valid, toolsCall('echo', { text: 'x' }), { cookie: 'session=abc' });
    assert.equal(response.status, 200);
    await response.body?.cancel();
    const seen = backend.seenHeaders.at(-1)!;
    assert.notEqual(seen.authorization, `Bearer ${valid}`);
    assert.match(seen.authorization ?? '', /^Bearer ey/);
    assert.equal(seen.cookie, undefined);
  });
});
