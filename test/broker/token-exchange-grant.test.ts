import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import Provider, { type KoaContextWithOIDC } from 'oidc-provider';
import { requestDpopProof } from '../../src/authorization/grants/dpop-binding.ts';
import {
  ACCESS_TOKEN_TYPE,
  JWT_TOKEN_TYPE,
  registerTokenExchangeGrant,
  TOKEN_EXCHANGE_GRANT,
} from '../../src/broker/token-exchange-grant.ts';
import type { TokenBroker } from '../../src/broker/types.ts';
import { configSchema } from '../../src/config/schema.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { createRevokedGrantsCache, revokeGrant, type RevokedGrantsCache } from '../../src/grants/revoked-grants.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';
import type { AuditRecord } from '../../src/records/audit.ts';
import { testKeyring } from './support/fixtures.ts';

const backendSecret = 'backend-secret-0123456789abcdef';
const otherSecret = 'other-secret-0123456789abcdef';

describe('RFC 8693 token exchange grant for backends', () => {
  const clock = new ManualClock(Date.now());
  const keyring = testKeyring(clock.now());
  const brokerCalls: Array<{ subject: string; downstream: string }> = [];
  let brokerFailure: ProtocolError | undefined;
  let server: Server;
  let issuer: string;
  let store: Store;
  let revokedGrants: RevokedGrantsCache;
  const audited: AuditRecord[] = [];

  const broker: TokenBroker = {
    async getDownstreamToken({ user, downstream }) {
      brokerCalls.push({ subject: user.subject, downstream });
      if (brokerFailure) throw brokerFailure;
      return { accessToken: `graph-token-for-${user.subject}`, expiresAt: clock.now() + 3_600_000, scopes: ['https://graph.microsoft.com/User.Read'] };
    },
  };

  before(async () => {
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    // Re-read only when a test asks (resync), so the staleness test controls the clock alone.
    revokedGrants = createRevokedGrantsCache({ store, clock, resyncIntervalMs: 3_600_000, maxStalenessMs: 120_000 });
    await revokedGrants.start();
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const config = configSchema.parse({
      routes: [
        { path: '/mcp', backend: 'http://127.0.0.1:9/mcp', downstream: ['graph-full', 'graph'] },
        { path: '/mcp/other', backend: 'http://127.0.0.1:9/other' },
      ],
      broker: {
        downstream: [
          // Listed first, and a superset of `graph`: a request `graph` fits must still get `graph` (least privilege).
          { name: 'graph-full', audience: 'https://graph.microsoft.com', scopes: ['https://graph.microsoft.com/User.Read', 'https://graph.microsoft.com/Mail.ReadWrite'] },
          { name: 'graph', audience: 'https://graph.microsoft.com', scopes: ['https://graph.microsoft.com/User.Read'] },
          { name: 'payroll', audience: 'api://payroll', scopes: ['api://payroll/read'] },
        ],
      },
      authorization: {
        clients: [
          { clientId: 'graph-backend', clientSecret: backendSecret, grantTypes: [TOKEN_EXCHANGE_GRANT], allowedDownstream: ['graph-full', 'graph'] },
          { clientId: 'other-backend', clientSecret: otherSecret, grantTypes: [TOKEN_EXCHANGE_GRANT], allowedDownstream: [] },
        ],
      },
    });
    const provider = new Provider(issuer, {
      clients: config.authorization.clients.map((client) => ({
        client_id: client.clientId,
        client_secret: client.clientSecret,
        grant_types: client.grantTypes,
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_post',
      })),
      features: { devInteractions: { enabled: false } },
    });
    registerTokenExchangeGrant(provider, { config, publicUrl: issuer, keyring, clock, broker, revokedGrants, recordAudit: (entry) => audited.push(entry), checkDpopProof: (grantCtx) => requestDpopProof(provider, grantCtx as unknown as KoaContextWithOIDC) });
    server.on('request', provider.callback());
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await revokedGrants.stop();
    await store.close();
  });
  beforeEach(() => {
    brokerCalls.length = 0;
    brokerFailure = undefined;
  });

  async function assertion(options: { sub?: string; aud?: string; typ?: string; exp?: number; iss?: string; gid?: string | null } = {}): Promise<string> {
    const key = keyring.currentSigningKey();
    const now = Math.floor(clock.now() / 1000);
    const gid = options.gid === undefined ? randomUUID() : options.gid;
    return new SignJWT({ scope: 'mcp:tools', client_id: 'vscode', ...(gid === null ? {} : { gid }) })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: options.typ ?? 'gatehouse-id+jwt' })
      .setIssuer(options.iss ?? issuer)
      .setAudience(options.aud ?? `${issuer}/mcp`)
      .setSubject(options.sub ?? 'tenant/user-1')
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(options.exp ?? now + 120)
      .sign(key.privateKey);
  }

  async function exchange(fields: Record<string, string>, client = { id: 'graph-backend', secret: backendSecret }) {
    const response = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, client_id: client.id, client_secret: client.secret, ...fields }),
    });
    return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
  }

  it('exchanges a gateway identity assertion for the downstream token', async () => {
    const result = await exchange({
      subject_token: await assertion(),
      subject_token_type: JWT_TOKEN_TYPE,
      resource: 'https://graph.microsoft.com',
      scope: 'https://graph.microsoft.com/User.Read',
    });
    assert.equal(result.status, 200);
    assert.equal(result.body.access_token, 'graph-token-for-tenant/user-1');
    assert.equal(result.body.issued_token_type, ACCESS_TOKEN_TYPE);
    assert.equal(result.body.token_type, 'Bearer');
    assert.equal(typeof result.body.expires_in, 'number');
    assert.match(result.headers.get('cache-control') ?? '', /no-store/);
    assert.deepEqual(brokerCalls, [{ subject: 'tenant/user-1', downstream: 'graph' }]);
  });

  it('resolves the downstream from the scope alone', async () => {
    const result = await exchange({ subject_token: await assertion(), subject_token_type: JWT_TOKEN_TYPE, scope: 'https://graph.microsoft.com/User.Read' });
    assert.equal(result.status, 200);
    assert.equal(brokerCalls[0]?.downstream, 'graph');
  });

  it('picks, of the downstream APIs a request fits, the one granting the least; a wider one only when asked for', async () => {
    // The first in configuration order (graph-full: Mail.ReadWrite too) answered a request for User.Read.
    const token = await assertion();
    const narrow: Array<Record<string, string>> = [
      { resource: 'https://graph.microsoft.com', scope: 'https://graph.microsoft.com/User.Read' },
      { resource: 'https://graph.microsoft.com' },
      { audience: 'https://graph.microsoft.com' },
    ];
    for (const fields of narrow) assert.equal((await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, ...fields })).status, 200);
    assert.deepEqual(brokerCalls.map((call) => call.downstream), ['graph', 'graph', 'graph']);
    brokerCalls.length = 0;
    assert.equal((await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, scope: 'https://graph.microsoft.com/Mail.ReadWrite' })).status, 200);
    assert.equal((await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, audience: 'graph-full' })).status, 200);
    assert.deepEqual(brokerCalls.map((call) => call.downstream), ['graph-full', 'graph-full']);
  });

  it('refuses an audience the client is not allowed (invalid_target)', async () => {
    for (const fields of [{ resource: 'api://payroll' }, { resource: 'https://evil.example' }, {}] as Array<Record<string, string>>) {
      const result = await exchange({ subject_token: await assertion(), subject_token_type: JWT_TOKEN_TYPE, ...fields });
      assert.equal(result.status, 400);
      assert.equal(result.body.error, 'invalid_target');
    }
    const other = await exchange(
      { subject_token: await assertion(), subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' },
      { id: 'other-backend', secret: otherSecret },
    );
    assert.equal(other.body.error, 'invalid_target');
    // An assertion forwarded to a route whose backend may not have Graph cannot be exchanged for it.
    const otherRoute = await exchange({
      subject_token: await assertion({ aud: `${issuer}/mcp/other` }),
      subject_token_type: JWT_TOKEN_TYPE,
      resource: 'https://graph.microsoft.com',
    });
    assert.equal(otherRoute.body.error, 'invalid_target');
    assert.equal(brokerCalls.length, 0);
  });

  it('refuses forged, expired, mistyped and foreign subject tokens', async () => {
    const stranger = testKeyring(clock.now()).currentSigningKey();
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: stranger.alg, kid: keyring.currentSigningKey().kid, typ: 'gatehouse-id+jwt' })
      .setIssuer(issuer).setAudience(`${issuer}/mcp`).setSubject('tenant/admin').setIssuedAt().setExpirationTime('2m')
      .sign(stranger.privateKey);
    const now = Math.floor(clock.now() / 1000);
    const bad = [
      forged,
      await assertion({ exp: now - 10 }),
      await assertion({ typ: 'at+jwt' }),
      await assertion({ aud: 'https://elsewhere.example/mcp' }),
      await assertion({ iss: 'https://other-gateway.example' }),
      // Every assertion the proxy forwards for a user names the grant it was forwarded under.
      await assertion({ gid: null }),
      'not-a-jwt',
    ];
    for (const token of bad) {
      const result = await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' });
      assert.equal(result.status, 400);
      assert.equal(result.body.error, 'invalid_request');
      assert.ok(!JSON.stringify(result.body).includes(token));
    }
    assert.equal(brokerCalls.length, 0);
  });

  it('rejects missing or wrong token types and bad client credentials', async () => {
    const token = await assertion();
    const missing = await exchange({ subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' });
    assert.equal(missing.body.error, 'invalid_request');
    const wrongType = await exchange({ subject_token: token, subject_token_type: ACCESS_TOKEN_TYPE, resource: 'https://graph.microsoft.com' });
    assert.equal(wrongType.body.error, 'invalid_request');
    const badClient = await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE }, { id: 'graph-backend', secret: 'wrong-secret-0123456789abcdef' });
    assert.equal(badClient.status, 401);
    assert.equal(badClient.body.error, 'invalid_client');
  });

  it('passes the broker\'s re-consent and outage errors through as OAuth errors of the token endpoint', async () => {
    // A user who must sign in again is 400 interaction_required, as Entra answers an on-behalf-of exchange; never a
    // 401, which at /token says the client's own credentials failed (and carries a Basic challenge).
    brokerFailure = new ProtocolError('interaction_required', 'The user has not consented; sign in again.');
    const consent = await exchange({ subject_token: await assertion(), subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' });
    assert.equal(consent.status, 400);
    assert.equal(consent.body.error, 'interaction_required');
    assert.equal(consent.body.error_description, 'The user has not consented; sign in again.');
    assert.equal(consent.headers.get('www-authenticate'), null);
    brokerFailure = new ProtocolError('access_denied', 'This downstream API is called on behalf of a signed-in user.');
    const denied = await exchange({ subject_token: await assertion(), subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' });
    assert.deepEqual([denied.status, denied.body.error], [400, 'invalid_request']);
    brokerFailure = new ProtocolError('temporarily_unavailable', 'The identity provider is unavailable; retry later.', { headers: { 'Retry-After': '5' } });
    const down = await exchange({ subject_token: await assertion(), subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' });
    assert.equal(down.status, 503);
    assert.equal(down.body.error, 'temporarily_unavailable');
    assert.equal(down.headers.get('retry-after'), '5', "the broker's Retry-After, not a default");
  });

  it("refuses an assertion whose grant has ended, while the assertion itself is still valid", async () => {
    const fields = { subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' };
    const token = await assertion({ gid: 'grant-ended-later' });
    assert.equal((await exchange({ subject_token: token, ...fields })).status, 200);
    // The user revoked the client (or an admin the grant): the client's token no longer passes the gateway, and the
    // assertion the backend still holds for minutes must not keep yielding the user's downstream tokens.
    await revokeGrant(store, 'grant-ended-later', { ttlSeconds: 600, clock });
    await revokedGrants.resync();
    brokerCalls.length = 0;
    const refused = await exchange({ subject_token: token, ...fields });
    assert.deepEqual([refused.status, refused.body.error], [400, 'invalid_request']);
    assert.match(String(refused.body.error_description), /grant .* has ended/);
    assert.deepEqual(brokerCalls, []);
    // Another grant of the same user is unaffected.
    assert.equal((await exchange({ subject_token: await assertion(), ...fields })).status, 200);
  });

  it('answers 503 while the revoked grants cannot be re-read, as the gateway refuses to vouch for a bearer token', async () => {
    const fields = { subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' };
    clock.advance(121_000);
    const token = await assertion();
    try {
      const unknown = await exchange({ subject_token: token, ...fields });
      assert.deepEqual([unknown.status, unknown.body.error], [503, 'temporarily_unavailable']);
    } finally {
      await revokedGrants.resync();
    }
    assert.equal((await exchange({ subject_token: token, ...fields })).status, 200);
  });

  it('refuses `resource` and `audience` naming different targets, and takes either alone', async () => {
    const token = await assertion();
    const both = await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com', audience: 'api://payroll' });
    assert.deepEqual([both.status, both.body.error], [400, 'invalid_request']);
    const same = await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com', audience: 'https://graph.microsoft.com' });
    assert.equal(same.status, 200);
    const audienceOnly = await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, audience: 'https://graph.microsoft.com' });
    assert.equal(audienceOnly.status, 200);
    // `audience` as a logical name (RFC 8693 §2.1): the downstream's configured name, with `resource` or alone.
    const logical = await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com', audience: 'graph' });
    assert.equal(logical.status, 200);
    const nameOnly = await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, audience: 'graph' });
    assert.equal(nameOnly.status, 200, JSON.stringify(nameOnly.body));
    const otherName = await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, audience: 'payroll' });
    assert.deepEqual([otherName.status, otherName.body.error], [400, 'invalid_target']);
  });

  it('refuses `actor_token_type` without `actor_token` (RFC 8693 §2.1), as it refuses `actor_token`', async () => {
    const token = await assertion();
    const fields = { subject_token: token, subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' };
    const typeOnly = await exchange({ ...fields, actor_token_type: JWT_TOKEN_TYPE });
    assert.deepEqual([typeOnly.status, typeOnly.body.error], [400, 'invalid_request']);
    const actor = await exchange({ ...fields, actor_token: token, actor_token_type: JWT_TOKEN_TYPE });
    assert.deepEqual([actor.status, actor.body.error], [400, 'invalid_request']);
    assert.deepEqual(brokerCalls, []);
  });

  it('records the exchanges the provider refuses before the grant runs: bad client credentials, a client without the grant, a parameter twice', async () => {
    audited.length = 0;
    const token = await assertion();
    const fields = { subject_token: token, subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' };
    const badSecret = await exchange(fields, { id: 'graph-backend', secret: 'wrong-secret-0123456789abcdef' });
    assert.equal(badSecret.status, 401);
    const twice = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `${new URLSearchParams({ grant_type: TOKEN_EXCHANGE_GRANT, client_id: 'graph-backend', client_secret: backendSecret, ...fields })}&resource=api%3A%2F%2Fpayroll`,
    });
    assert.equal(twice.status, 400);
    const other = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'nope', client_id: 'graph-backend', client_secret: backendSecret }),
    });
    assert.equal(other.status, 400);
    assert.deepEqual(
      audited.map(({ client, route, method, outcome, status, reason }) => ({ client, route, method, outcome, status, reason })),
      [
        { client: undefined, route: '/token', method: 'token-exchange', outcome: 'denied', status: 401, reason: 'invalid_client' },
        { client: 'graph-backend', route: '/token', method: 'token-exchange', outcome: 'denied', status: 400, reason: 'invalid_request' },
      ],
      'the refresh request is no exchange and is not recorded',
    );
    assert.ok(!JSON.stringify(audited).includes(token));
  });

  it('records every exchange in the audit log: who obtained which downstream token for whom, or why not; never a token', async () => {
    audited.length = 0;
    const token = await assertion({ sub: 'tenant/audited' });
    const allowed = await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' });
    assert.equal(allowed.status, 200);
    const refused = await exchange({ subject_token: 'not-a-jwt', subject_token_type: JWT_TOKEN_TYPE, resource: 'https://graph.microsoft.com' });
    assert.equal(refused.status, 400);
    const target = await exchange({ subject_token: token, subject_token_type: JWT_TOKEN_TYPE, resource: 'api://payroll' });
    assert.equal(target.status, 400);
    assert.deepEqual(
      audited.map(({ user, client, route, method, outcome, status, reason }) => ({ user, client, route, method, outcome, status, reason })),
      [
        { user: 'tenant/audited', client: 'graph-backend', route: '/mcp', method: 'token-exchange graph', outcome: 'allowed', status: 200, reason: undefined },
        // Refused before the subject token named anyone: the endpoint, no user.
        { user: undefined, client: 'graph-backend', route: '/token', method: 'token-exchange', outcome: 'denied', status: 400, reason: 'invalid_request' },
        { user: 'tenant/audited', client: 'graph-backend', route: '/mcp', method: 'token-exchange', outcome: 'denied', status: 400, reason: 'invalid_target' },
      ],
    );
    const text = JSON.stringify(audited);
    assert.ok(!text.includes(token) && !text.includes(String(allowed.body.access_token)), 'no token in the audit records');
  });
});
