import assert from 'node:assert/strict';
import { testKeyring } from '../support/keyring.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';


import { ManualClock } from '../../src/runtime/clock.ts';
import {
  authorizeUrl,
  CLIENT_REDIRECT,
  freePort,
  obtainCode,
  obtainTokens,
  pkcePair,
  registerClient,
  registerPublicClient,
  startAuthorizationServer,
  tokenRequest,
  type RegisteredClient,
  type TestServer,
} from './harness.ts';
import { startedForSuite } from '../support/suite-server.ts';

const valid = {
  client_name: 'Registration Test',
  redirect_uris: [CLIENT_REDIRECT],
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
};

describe('dynamic client registration (RFC 7591)', () => {
  const server = startedForSuite(() => startAuthorizationServer({ authorization: { dynamicRegistration: { perIpPerHour: 25 } } }));

  async function expectRefused(metadata: Record<string, unknown>, error: RegExp): Promise<string> {
    const response = await registerClient(server, metadata);
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: string; error_description?: string; client_id?: string };
    assert.match(body.error, error);
    assert.equal(body.client_id, undefined);
    // Never the authorize-time wording, which tells a registering client nothing.
    assert.doesNotMatch(body.error_description ?? '', /did not match any of the client's registered/);
    return body.error_description ?? '';
  }

  it('registers a public client with 201 and its metadata', async () => {
    const response = await registerClient(server, valid);
    assert.equal(response.status, 201);
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(typeof body.client_id, 'string');
    assert.equal(body.token_endpoint_auth_method, 'none');
    assert.deepEqual(body.redirect_uris, [CLIENT_REDIRECT]);
    assert.equal(body.client_secret, undefined);
  });

  it('gives no secret to a client that names no token_endpoint_auth_method (public by default), nor keeps one', async () => {
    // oidc-provider decided on a secret before applying the `none` default: the answer said `none` and held a secret.
    const { token_endpoint_auth_method: _method, ...unnamed } = valid as Record<string, unknown>;
    const response = await registerClient(server, unnamed);
    assert.equal(response.status, 201);
    const body = (await response.json()) as Record<string, unknown>;
    assert.equal(body.token_endpoint_auth_method, 'none');
    assert.equal(body.client_secret, undefined);
    assert.equal(body.client_secret_expires_at, undefined);
    const stored = await server.store.get<Record<string, unknown>>('oidc:Client', String(body.client_id));
    assert.equal(stored?.client_secret, undefined);
  });

  it('bounds what one registration stores: a client_name of at most 200 characters, at most 20 redirect URIs', async () => {
    await expectRefused({ ...valid, client_name: 'x'.repeat(201) }, /invalid_client_metadata/);
    const loopbacks = (count: number) => Array.from({ length: count }, (_, index) => `http://127.0.0.1:${40_000 + index}/cb`);
    await expectRefused({ ...valid, redirect_uris: loopbacks(21) }, /invalid_client_metadata/);
    // 200 characters of a script written with surrogate pairs is still 200 characters.
    const atTheBounds = await registerClient(server, { ...valid, client_name: '𝒜'.repeat(200), redirect_uris: loopbacks(20) });
    assert.equal(atTheBounds.status, 201, await atTheBounds.clone().text());
    await atTheBounds.body?.cancel();
  });

  it('refuses a software_id that is not a string (RFC 7591 §2)', async () => {
    await expectRefused({ ...valid, software_id: { a: 1 } }, /invalid_client_metadata/);
    const named = await registerClient(server, { ...valid, software_id: 'acme-agent' });
    assert.equal(named.status, 201);
    assert.equal(((await named.json()) as { software_id?: string }).software_id, 'acme-agent');
  });

  it('refuses sector_identifier_uri without fetching it: subjects are public, and the fetch was anyone\'s request from the gateway', async () => {
    let fetched = 0;
    const sector = createHttpServer((_request, response) => {
      fetched++;
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(valid.redirect_uris));
    });
    await new Promise<void>((resolve) => sector.listen(0, '127.0.0.1', resolve));
    try {
      const uri = `https://127.0.0.1:${(sector.address() as AddressInfo).port}/sector.json`;
      const description = await expectRefused({ ...valid, sector_identifier_uri: uri }, /invalid_client_metadata/);
      assert.match(description, /sector_identifier_uri is not supported/);
      assert.equal(fetched, 0);
    } finally {
      sector.close();
    }
  });

  it('registers a confidential client and keeps only a hash of its secret', async () => {
    const response = await registerClient(server, { ...valid, token_endpoint_auth_method: 'client_secret_basic' });
    assert.equal(response.status, 201);
    const body = (await response.json()) as RegisteredClient & { client_secret: string };
    assert.ok(body.client_secret.length >= 32);
    const stored = JSON.stringify(await server.store.get('oidc:Client', body.client_id));
    // A 512-bit secret the server generated: SHA-256 leaves nothing to guess, where scrypt made every wrong secret
    // sent by anyone who registered a client cost ≈ 90 ms of the server's CPU.
    assert.ok(stored.includes('$sha256$'), 'the stored client holds a SHA-256 hash of its generated secret');
    assert.ok(!stored.includes(body.client_secret), 'the secret itself is not stored');

    // RFC 7592 §3 read: the client's metadata, without the stored hash in place of its secret.
    const read = await fetch(`${server.publicUrl}/register/${body.client_id}`, { headers: { authorization: `Bearer ${body.registration_access_token}` } });
    assert.equal(read.status, 200);
    const readBody = (await read.json()) as Record<string, unknown>;
    assert.equal(readBody.client_id, body.client_id);
    assert.equal(readBody.client_secret, undefined);

    const basic = Buffer.from(`${body.client_id}:${body.client_secret}`).toString('base64');
    const { code, verifier } = await obtainCode(server, body);
    const exchanged = await tokenRequest(
      server,
      { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: CLIENT_REDIRECT, resource: server.resource },
      { authorization: `Basic ${basic}` },
    );
    assert.equal(exchanged.status, 200, await exchanged.clone().text());
    const tokens = (await exchanged.json()) as { refresh_token: string };
    const refreshed = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { authorization: `Basic ${basic}` });
    assert.equal(refreshed.status, 200, 'the hashed secret still authenticates the client');
    const wrong = Buffer.from(`${body.client_id}:wrong-secret`).toString('base64');
    const refused = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { authorization: `Basic ${wrong}` });
    assert.equal(refused.status, 401);
  });

  for (const [label, uri] of [
    ['javascript:', 'javascript:alert(document.cookie)'],
    ['data:', 'data:text/html,<script>alert(1)</script>'],
    ['file:', 'file:///etc/passwd'],
    ['a fragment', 'https://app.example.test/cb#frag'],
    ['http on a public host', 'http://app.example.test/cb'],
    ['not a URI', 'not a uri'],
  ] as const) {
    it(`refuses a redirect URI with ${label}`, async () => {
      await expectRefused({ ...valid, redirect_uris: [uri] }, /invalid_redirect_uri|invalid_client_metadata/);
    });
  }

  it('says why a redirect URI is refused', async () => {
    assert.match(await expectRefused({ ...valid, redirect_uris: ['http://app.example.test/cb'] }, /invalid_redirect_uri/), /https|loopback/i);
    assert.match(await expectRefused({ ...valid, redirect_uris: ['https://app.example.test/cb#frag'] }, /invalid_redirect_uri/), /fragment/i);
    assert.match(await expectRefused({ ...valid, redirect_uris: 'https://app.example.test/cb' }, /invalid_redirect_uri/), /array/);
  });

  it('refuses a member named twice: the provider kept the last `redirect_uris`, a reader in front the first', async () => {
    const response = await fetch(`${server.publicUrl}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"redirect_uris":["${valid.redirect_uris[0]}"],"token_endpoint_auth_method":"none","redirect_uris":["https://evil.example/cb"]}`,
    });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: string }).error, 'invalid_client_metadata');
  });

  it('refuses a member name written with escapes (read again by the provider, which may misread it), and keeps escaped values', async () => {
    const post = (body: string) => fetch(`${server.publicUrl}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const escapedName = await post(`{"redirect_uris":["${valid.redirect_uris[0]}"],"token_endpoint_auth_method":"none","client_nam\\u0065":"x"}`);
    assert.equal(escapedName.status, 400);
    assert.match(((await escapedName.json()) as { error_description: string }).error_description, /without escapes/);
    const escapedValue = await post(`{"redirect_uris":["${valid.redirect_uris[0]}"],"token_endpoint_auth_method":"none","client_name":"Caf\\u00e9 \\"app\\""}`);
    assert.equal(escapedValue.status, 201, await escapedValue.clone().text());
    assert.equal(((await escapedValue.json()) as { client_name: string }).client_name, 'Café "app"');
  });

  it('refuses malformed bodies', async () => {
    const malformed = await fetch(`${server.publicUrl}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"redirect_uris": [',
    });
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as { error: string }).error, 'invalid_request');
    await expectRefused({ ...valid, redirect_uris: 'https://app.example.test/cb' }, /invalid_client_metadata|invalid_redirect_uri/);
    await expectRefused({ ...valid, grant_types: ['implicit'] }, /invalid_client_metadata/);
  });

  it('refuses an oversized body with 413', async () => {
    const response = await registerClient(server, { ...valid, client_name: 'x'.repeat(20_000) });
    assert.equal(response.status, 413);
    assert.equal(((await response.json()) as { error: string }).error, 'payload_too_large');
  });

  it('lets browser clients register cross-origin (CORS)', async () => {
    const preflight = await fetch(`${server.publicUrl}/register`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:6274', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
  });

  it('registers a client whose address is unknown (Unix socket, or a client already gone) without a store error', async () => {
    // A connection without a peer address: Fastify's request.ip is undefined, as for a client that went away.
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-unix-'));
    const socketPath = join(dir, 'gatehouse.sock');
    const relay = createNetServer((connection) => server.app.server.emit('connection', connection));
    await new Promise<void>((resolve) => relay.listen(socketPath, resolve));
    try {
      const body = JSON.stringify(valid);
      const status = await new Promise<number>((resolve, reject) => {
        const outgoing = httpRequest(
          { socketPath, path: '/register', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
          (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          },
        );
        outgoing.once('error', reject);
        outgoing.end(body);
      });
      assert.equal(status, 201);
      assert.ok(!server.logs.text().includes('cannot be bound'), 'no store binding error was logged');
      const window = Math.floor(Date.now() / 3_600_000);
      assert.equal(await server.store.increment('registration-rate', `${window}:unknown-address`, 7200, 0), 1, 'counted in the shared budget');
    } finally {
      await new Promise((resolve) => relay.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rate-limits registrations per IP', async () => {
    let status = 0;
    for (let attempt = 0; attempt < 30 && status !== 429; attempt += 1) {
      const response = await registerClient(server, valid);
      status = response.status;
      await response.body?.cancel();
    }
    assert.equal(status, 429);
  });
});

describe('registration of a client without the code flow', () => {
  // A server of its own: the suite above spends its registration budget to the last one.
  const server = startedForSuite(() => startAuthorizationServer());

  async function refusal(metadata: Record<string, unknown>): Promise<string> {
    const response = await registerClient(server, metadata);
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: string; error_description?: string; client_id?: string };
    assert.equal(body.error, 'invalid_client_metadata');
    assert.equal(body.client_id, undefined);
    return body.error_description ?? '';
  }

  it('refuses metadata that leaves the client without the code flow it registers redirect URIs for', async () => {
    // The provider repaired these instead: `response_types: []` dropped `authorization_code` and registered a client
    // with `["refresh_token"]` that could never authorize; `grant_types: []` registered `["authorization_code"]`.
    assert.match(await refusal({ ...valid, response_types: [] }), /response_types must include "code"/);
    assert.match(await refusal({ redirect_uris: [CLIENT_REDIRECT], response_types: [], grant_types: ['authorization_code'] }), /response_types/);
    assert.match(await refusal({ ...valid, grant_types: [] }), /grant_types must name/);
    // Left out, both are the code flow with refresh tokens.
    const response = await registerClient(server, { redirect_uris: [CLIENT_REDIRECT] });
    assert.equal(response.status, 201);
    const body = (await response.json()) as Record<string, unknown>;
    assert.deepEqual(body.response_types, ['code']);
    assert.deepEqual(body.grant_types, ['authorization_code', 'refresh_token']);
  });
});

describe('registration budget: exact Retry-After and the loopback allowance', () => {
  const hour = 3_600_000;
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 10) + 1_000_000);
  let server: TestServer;
  before(async () => {
    const port = await freePort();
    server = await startAuthorizationServer({
      port,
      clock,
      authorization: { dynamicRegistration: { perIpPerHour: 2, perLoopbackIpPerHour: 4 } },
      // Trusting X-Forwarded-For lets one test speak for a remote address and for a loopback one.
      extraConfig: { server: { publicUrl: `http://127.0.0.1:${port}`, port, trustProxy: true } },
    });
  });
  after(async () => {
    await server.close();
  });

  async function registerFrom(address: string): Promise<Response> {
    return fetch(`${server.publicUrl}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
      body: JSON.stringify(valid),
    });
  }

  async function statuses(address: string, attempts: number): Promise<number[]> {
    const seen: number[] = [];
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      const response = await registerFrom(address);
      seen.push(response.status);
      await response.body?.cancel();
    }
    return seen;
  }

  it('tells a refused client exactly when its budget comes back, and lets it register then', async () => {
    assert.deepEqual(await statuses('203.0.113.7', 2), [201, 201]);
    const refused = await registerFrom('203.0.113.7');
    assert.equal(refused.status, 429);
    // 1000 s into the hour: 2600 s are left, not a fixed 3600.
    assert.equal(refused.headers.get('retry-after'), '2600');
    await refused.body?.cancel();
    clock.advance(2_000_000);
    const later = await registerFrom('203.0.113.7');
    assert.equal(later.headers.get('retry-after'), '600');
    await later.body?.cancel();
    clock.advance(600_000);
    assert.deepEqual(await statuses('203.0.113.7', 1), [201], 'a new window, a new budget');
    clock.set(Date.UTC(2026, 0, 1, 10) + 1_000_000 + 2 * hour);
  });

  it('gives loopback peers the larger budget and everyone else the production one', async () => {
    assert.deepEqual(await statuses('127.0.0.1', 5), [201, 201, 201, 201, 429]);
    assert.deepEqual(await statuses('::1', 5), [201, 201, 201, 201, 429]);
    assert.deepEqual(await statuses('198.51.100.9', 3), [201, 201, 429]);
  });
});

describe('registration with an initial access token', () => {
  const server = startedForSuite(() => startAuthorizationServer({ authorization: { dynamicRegistration: { initialAccessToken: 'closed-deployment-token' } } }));

  it('requires the token', async () => {
    const without = await registerClient(server, valid);
    assert.equal(without.status, 401);
    const withToken = await fetch(`${server.publicUrl}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer closed-deployment-token' },
      body: JSON.stringify(valid),
    });
    assert.equal(withToken.status, 201);
  });
});

describe('registrations and grants survive a restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-as-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the client and refreshes the grant after the provider is recreated on the same SQLite file', async () => {
    const storePath = join(dir, 'gatehouse.db');
    const port = await freePort();
    const keyring = testKeyring();
    const first = await startAuthorizationServer({ storePath, port, keyring });
    const client = await registerPublicClient(first);
    const tokens = await obtainTokens(first, client);
    await first.close();
    // Let the client side notice the closed keep-alive sockets before the same port is reused.
    await new Promise((resolve) => setTimeout(resolve, 100));

    const second = await startAuthorizationServer({ storePath, port, keyring });
    try {
      const refreshed = await tokenRequest(second, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: client.client_id });
      assert.equal(refreshed.status, 200, await refreshed.clone().text());
      const { challenge } = pkcePair();
      const authorization = await fetch(
        authorizeUrl(second, {
          client_id: client.client_id,
          redirect_uri: CLIENT_REDIRECT,
          response_type: 'code',
          code_challenge: challenge,
          code_challenge_method: 'S256',
        }),
        { redirect: 'manual' },
      );
      assert.equal(authorization.status, 303);
      assert.match(authorization.headers.get('location') ?? '', /\/interaction\//, 'the registered client is still known');
    } finally {
      await second.close();
    }
  });
});
