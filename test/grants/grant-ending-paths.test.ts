import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { revokeGrantById } from '../../src/admin/grants.ts';
import { revokeClient } from '../../src/admin/clients.ts';
import { createEndGrant } from '../../src/grants/end-grant.ts';
import { GRANT_END_REASONS, type GrantEndReason } from '../../src/grants/grant-end-reason.ts';
import { GRANT_REVOKED_CHANNEL, REVOKED_GRANT_NAMESPACE, type RevokedGrantRecord } from '../../src/grants/revoked-grants.ts';
import { createIdentityForwarder } from '../../src/proxy/identity-forwarding.ts';
import { reauthorizationError } from '../../src/broker/upstream-errors.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import {
  exchangeCode,
  grantIdOf,
  obtainCode,
  obtainTokens,
  registerPublicClient,
  startAuthorizationServer,
  tokenRequest,
  type RegisteredClient,
  type TestServer,
} from '../authorization/harness.ts';

/**
 * Every path that ends a grant goes through `endGrant`, so each leaves the same trace: a `revoked-grant` record with
 * its reason (what the gateway's revocation cache reads), and the grant with its refresh tokens gone. One test per
 * reason in GRANT_END_REASONS; the last test fails if a reason was added without a path test here.
 */
describe('grant-ending paths', () => {
  let server: TestServer;
  let client: RegisteredClient;
  const covered = new Set<GrantEndReason>();

  before(async () => {
    server = await startAuthorizationServer({ authorization: { refreshReuseGraceSeconds: 0 } });
    client = await registerPublicClient(server);
  });
  after(async () => {
    await server.close();
  });

  const adminDeps = () => ({ store: server.store, clock: server.ctx.clock, config: server.ctx.config });

  async function assertEnded(grantId: string, reason: GrantEndReason, refreshToken?: string, options: { racing?: boolean } = {}): Promise<void> {
    const record = await server.store.get<RevokedGrantRecord>(REVOKED_GRANT_NAMESPACE, grantId);
    assert.equal(record?.reason, reason, `revoked-grant record for ${reason}`);
    assert.equal(await server.store.get('oidc:Grant', grantId), undefined, 'the grant record is gone');
    // A winner racing the grant's end may still save its refresh token after the end swept them; that token is dead
    // all the same (its grant is gone, checked below), and its record expires with it.
    if (!options.racing) assert.deepEqual(await server.store.findByIndex('oidc:RefreshToken', 'grantId', grantId), [], 'its refresh tokens are gone');
    if (refreshToken !== undefined) {
      const refreshed = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
      assert.equal(refreshed.status, 400, 'the refresh token no longer works');
    }
    covered.add(reason);
  }

  it('code_replay: a code redeemed a second time', async () => {
    const { code, verifier } = await obtainCode(server, client);
    const first = (await (await exchangeCode(server, client, code, verifier)).json()) as { access_token: string; refresh_token: string };
    assert.equal((await exchangeCode(server, client, code, verifier)).status, 400);
    await assertEnded(grantIdOf(first.access_token), 'code_replay', first.refresh_token);
  });

  it('code_replay: a code redeemed by several requests at once — whoever wins, the grant ends everywhere', async () => {
    const { code, verifier } = await obtainCode(server, client);
    const responses = await Promise.all(Array.from({ length: 6 }, () => exchangeCode(server, client, code, verifier)));
    const bodies = (await Promise.all(responses.map((r) => r.json()))) as Array<{ access_token?: string; refresh_token?: string }>;
    const winners = bodies.filter((body) => typeof body.access_token === 'string');
    assert.ok(winners.length <= 1, 'never two sets of tokens');
    assert.equal(responses.filter((r) => r.status === 400).length, responses.length - winners.length);
    const winner = winners[0];
    if (winner?.access_token !== undefined) await assertEnded(grantIdOf(winner.access_token), 'code_replay', winner.refresh_token, { racing: true });
  });

  it('refresh_reuse: a rotated refresh token presented again', async () => {
    const tokens = await obtainTokens(server, client);
    const rotated = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: client.client_id });
    assert.equal(rotated.status, 200);
    const successor = ((await rotated.json()) as { refresh_token: string }).refresh_token;
    const reuse = await tokenRequest(server, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: client.client_id });
    assert.equal(reuse.status, 400);
    await assertEnded(grantIdOf(tokens.access_token), 'refresh_reuse', successor);
  });

  it('token_revocation: RFC 7009 revocation of the refresh token', async () => {
    const tokens = await obtainTokens(server, client);
    const response = await fetch(`${server.publicUrl}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.refresh_token, client_id: client.client_id }),
    });
    assert.equal(response.status, 200);
    await assertEnded(grantIdOf(tokens.access_token), 'token_revocation', tokens.refresh_token);
  });

  it('token_revocation: RFC 7009 revocation of the JWT access token', async () => {
    const tokens = await obtainTokens(server, client);
    const response = await fetch(`${server.publicUrl}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.access_token, client_id: client.client_id }),
    });
    assert.equal(response.status, 200);
    await assertEnded(grantIdOf(tokens.access_token), 'token_revocation', tokens.refresh_token);
  });

  it('admin: the console or CLI revokes one grant', async () => {
    const tokens = await obtainTokens(server, client);
    await revokeGrantById(adminDeps(), grantIdOf(tokens.access_token));
    await assertEnded(grantIdOf(tokens.access_token), 'admin', tokens.refresh_token);
  });

  it('account: the user revokes their own grant on /account', async () => {
    const tokens = await obtainTokens(server, client);
    const grantId = grantIdOf(tokens.access_token);
    const stored = await server.store.get<{ accountId: string }>('oidc:Grant', grantId);
    await revokeGrantById(adminDeps(), grantId, { subject: stored?.accountId ?? '' });
    await assertEnded(grantId, 'account', tokens.refresh_token);
  });

  it('client_revoked: the admin revokes a whole client', async () => {
    const other = await registerPublicClient(server);
    const first = await obtainTokens(server, other);
    const result = await revokeClient(adminDeps(), other.client_id);
    assert.deepEqual(result.revokedGrants, [grantIdOf(first.access_token)]);
    const record = await server.store.get<RevokedGrantRecord>(REVOKED_GRANT_NAMESPACE, grantIdOf(first.access_token));
    assert.equal(record?.reason, 'client_revoked');
    assert.equal(await server.store.get('oidc:Grant', grantIdOf(first.access_token)), undefined);
    covered.add('client_revoked');
  });

  const upstreamRefusals = [
    { reason: 'upstream_invalid_grant', cause: 'refresh_token_invalid', what: 'the IdP refused the user’s refresh token during an on-behalf-of exchange' },
    { reason: 'upstream_invalid_grant', cause: 'no_upstream_session', what: 'the user’s upstream session is gone' },
    // The MCP SDKs refresh before they re-authorize: a grant left alive would refresh into the same refusal forever.
    { reason: 'upstream_step_up', cause: 'claims_challenge', what: 'the IdP demands a Conditional Access step-up (claims challenge)' },
    { reason: 'upstream_step_up', cause: 'consent_required', what: 'the IdP needs the user’s consent again (AADSTS65001)' },
  ] as const;
  for (const { reason, cause, what } of upstreamRefusals) {
    it(`${reason}: ${what}`, async () => {
      const tokens = await obtainTokens(server, client);
      const grantId = grantIdOf(tokens.access_token);
      const endGrant = createEndGrant({ store: server.store, clock: server.ctx.clock, accessTokenTtlSeconds: 300, grantLifetimeSeconds: 86_400 });
      const forwarder = createIdentityForwarder({
        signer: { assertionFor: async () => ({ jwt: 'unused', authorization: 'Bearer unused' }) },
        broker: {
          getDownstreamToken: async () => {
            throw reauthorizationError(cause);
          },
        },
        endGrant,
      });
      const route = { ...server.ctx.config.routes[0], identity: { mode: 'obo', downstream: 'graph' } } as Parameters<typeof forwarder.authorizationFor>[0]['route'];
      await assert.rejects(
        forwarder.authorizationFor({
          route,
          resource: server.resource,
          challenge: { resourceMetadataUrl: `${server.publicUrl}/.well-known/oauth-protected-resource/mcp`, scope: 'mcp:tools' },
          claims: { sub: 'user', clientId: client.client_id, grantId, jti: 'j', exp: 0, scopes: [] },
          account: undefined,
        }),
        (error: unknown) => (error as { status?: number }).status === 401 && /error="invalid_token"/.test((error as { headers: Record<string, string> }).headers['www-authenticate'] ?? ''),
      );
      await assertEnded(grantId, reason, tokens.refresh_token);
    });
  }

  it('covers every reason a grant can end for', () => {
    assert.deepEqual([...covered].sort(), [...GRANT_END_REASONS].sort());
  });
});

describe('endGrant', () => {
  it('records the reason, publishes to replicas, removes what the grant issued, and runs once for concurrent callers', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    try {
      const published: string[] = [];
      await store.subscribe(GRANT_REVOKED_CHANNEL, (message) => published.push(message));
      await store.set('oidc:Grant', 'g1', { accountId: 'u', clientId: 'c1', resources: { 'https://gh.example/mcp': 'mcp:tools' } }, { ttlSeconds: 600 });
      await store.set('app-only-token', 'app-token-1', { clientId: 'agent', resource: 'https://gh.example/mcp' }, { ttlSeconds: 600 });
      await store.set('oidc:RefreshToken', 'rt-hash', { grantId: 'g1' }, { ttlSeconds: 600, indexes: { grantId: 'g1' } });
      await store.set('oidc:AuthorizationCode', 'code-hash', { grantId: 'g1' }, { ttlSeconds: 60, indexes: { grantId: 'g1' } });
      await store.set('oidc:RefreshToken', 'other', { grantId: 'g2' }, { ttlSeconds: 600, indexes: { grantId: 'g2' } });
      const ended: string[] = [];
      const endGrant = createEndGrant({ store, clock, accessTokenTtlSeconds: 300, grantLifetimeSeconds: 86_400, onEnded: (grant) => ended.push(`${grant.grantId}:${grant.reason}:${grant.user}:${grant.client}:${grant.resources.join()}`) });

      const results = await Promise.all([endGrant('g1', 'admin'), endGrant('g1', 'admin')]);

      assert.deepEqual(ended, ['g1:admin:u:c1:https://gh.example/mcp'], 'one run for concurrent callers, told whose grant it was');
      assert.deepEqual(results.toSorted(), [false, true], 'one caller is told it ended the grant');
      assert.deepEqual(await store.get(REVOKED_GRANT_NAMESPACE, 'g1'), { grantId: 'g1', revokedAt: clock.now(), reason: 'admin' });
      // Local pub/sub delivers on a later tick, as Redis would.
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(published, ['g1']);
      assert.equal(await store.get('oidc:Grant', 'g1'), undefined);
      assert.equal(await store.get('oidc:RefreshToken', 'rt-hash'), undefined);
      assert.equal(await store.get('oidc:AuthorizationCode', 'code-hash'), undefined);
      assert.ok(await store.get('oidc:RefreshToken', 'other'), 'another grant is untouched');

      // Another replica ending it after: the record is gone, so it did not end it (not logged, not counted twice),
      // and why the grant ended stays what ended it.
      const otherReplica = createEndGrant({ store, clock, accessTokenTtlSeconds: 300, grantLifetimeSeconds: 86_400, onEnded: (grant) => ended.push(`${grant.grantId}:${grant.reason}:${grant.client}:${grant.resources.join()}:again`) });
      assert.equal(await otherReplica('g1', 'account'), false);
      assert.equal((await store.get<RevokedGrantRecord>(REVOKED_GRANT_NAMESPACE, 'g1'))?.reason, 'admin');
      // An app-only token's grant id has no record: its first revocation is its end, logged like any other, once.
      assert.equal(await otherReplica('app-token-1', 'token_revocation'), true);
      assert.equal(await endGrant('app-token-1', 'token_revocation'), false);
      assert.deepEqual(ended, ['g1:admin:u:c1:https://gh.example/mcp', 'app-token-1:token_revocation:agent:https://gh.example/mcp:again']);


      // The revocation record outlives the longest access token, plus skew.
      clock.advance((300 + 59) * 1000);
      assert.ok(await store.get(REVOKED_GRANT_NAMESPACE, 'g1'));

      // Ending it again renews the record's life (a first ending that failed part-way left a grant that could still
      // refresh; the token minted then must be refused for its whole life), keeping the first reason.
      const revokedAt = clock.now() - 359_000;
      await createEndGrant({ store, clock, accessTokenTtlSeconds: 300, grantLifetimeSeconds: 86_400 })('g1', 'refresh_reuse');
      clock.advance(300_000);
      assert.deepEqual(await store.get(REVOKED_GRANT_NAMESPACE, 'g1'), { grantId: 'g1', revokedAt, reason: 'admin' });
    } finally {
      await store.close();
    }
  });
});
