import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Provider, { type Adapter } from 'oidc-provider';
import { withAuthorizationHooks } from '../../src/authorization/adapter-hooks.ts';
import { installCodeExchangeFinish } from '../../src/authorization/code-exchange-retry.ts';
import { createEndGrant } from '../../src/grants/end-grant.ts';
import { REVOKED_GRANT_NAMESPACE } from '../../src/grants/revoked-grants.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { createOidcAdapter, type OidcPayload } from '../../src/store/oidc-adapter.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';

interface SavableModel {
  save(): Promise<string>;
  addOIDCScope(scope: string): void;
}
type ModelConstructor = new (properties: Record<string, unknown>) => SavableModel;

const redirectUri = 'http://127.0.0.1/callback';

/**
 * The adapter inside a real oidc-provider: two token requests race with the same authorization code. Both read the
 * code before either consumes it (a barrier in `find` makes sure), so the provider's own "already consumed" check
 * cannot catch the second one. The adapter's atomic consume lets the second through only as the retry of an exchange
 * that has not finished (code-exchange-retry.ts); the finish, installed as in production, lets exactly one of the two
 * answer with tokens, and the other is rendered as invalid_grant.
 */
describe('oidc adapter in a real oidc-provider', () => {
  let store: Store;
  let server: Server;
  let provider: Provider;
  let tokenUrl: string;
  let findsToHold = 0;
  let release: () => void = () => {};

  before(async () => {
    store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    // The authorization server's adapter hooks around the store adapter, as in production: they end the grant.
    const StoreAdapter = withAuthorizationHooks(createOidcAdapter(store, systemClock), {
      store,
      clock: systemClock,
      accessTokenTtlSeconds: 600, grantLifetimeSeconds: 86_400,
      refreshReuseGraceSeconds: 0,
    });
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const adapter = (model: string): Adapter => {
      const inner = StoreAdapter(model);
      if (model !== 'AuthorizationCode') return inner;
      return {
        upsert: (id, payload, expiresIn) => inner.upsert(id, payload, expiresIn),
        findByUid: (uid) => inner.findByUid(uid),
        findByUserCode: (userCode) => inner.findByUserCode(userCode),
        destroy: (id) => inner.destroy(id),
        revokeByGrantId: (grantId) => inner.revokeByGrantId(grantId),
        consume: (id) => inner.consume(id),
        find: async (id: string) => {
          const payload = await inner.find(id);
          if (findsToHold > 0) {
            findsToHold -= 1;
            if (findsToHold === 0) release();
            await held;
          }
          return payload;
        },
      };
    };
    provider = new Provider('http://127.0.0.1', {
      adapter,
      clients: [
        {
          client_id: 'app',
          token_endpoint_auth_method: 'none',
          redirect_uris: [redirectUri],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          id_token_signed_response_alg: 'ES256',
        },
      ],
      findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
      scopes: ['api'],
      jwks: { keys: [{ ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), kid: 'k1' }] },
      features: { devInteractions: { enabled: false } },
      ttl: { Grant: 3600, AccessToken: 600, AuthorizationCode: 60 },
    });
    installCodeExchangeFinish(provider, { store, clock: systemClock, endGrant: createEndGrant({ store, clock: systemClock, accessTokenTtlSeconds: 600, grantLifetimeSeconds: 86_400 }) });
    server = createServer(provider.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    tokenUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await store.close();
  });

  it('lets exactly one of two racing redemptions of a code succeed; the other gets invalid_grant', async () => {
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const client = await provider.Client.find('app');
    const grant = new provider.Grant({ accountId: 'user-1', clientId: 'app' });
    grant.addOIDCScope('api');
    const grantId = await grant.save();
    const AuthorizationCode = provider.AuthorizationCode as unknown as ModelConstructor;
    const code = await new AuthorizationCode({
      accountId: 'user-1',
      client,
      grantId,
      redirectUri,
      scope: 'api',
      codeChallenge: challenge,
      codeChallengeMethod: 'S256',
    }).save();

    const redeem = () =>
      fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          code_verifier: verifier,
          redirect_uri: redirectUri,
          client_id: 'app',
        }),
      }).then(async (response) => ({ status: response.status, body: (await response.json()) as Record<string, unknown> }));

    // The code's hash, not the code, is the storage key.
    const codeKey = createHash('sha256').update(code).digest('base64url');
    assert.equal(await store.get('oidc:AuthorizationCode', code), undefined);
    assert.equal((await store.get<OidcPayload>('oidc:AuthorizationCode', codeKey))?.grantId, grantId);

    findsToHold = 2;
    const results = await Promise.all([redeem(), redeem()]);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 400]);
    const winner = results.find((r) => r.status === 200);
    const loser = results.find((r) => r.status === 400);
    assert.equal(typeof winner?.body.access_token, 'string');
    assert.equal(loser?.body.error, 'invalid_grant');

    // Two redemptions at once mean the code leaked: the grant ended everywhere — its record and codes gone, and the
    // gateway told (the revocation record), so the winner's access token is refused too (a raw delete of the grant
    // record used to leave that token valid until it expired).
    assert.equal(await store.get('oidc:Grant', grantId), undefined);
    assert.equal((await store.get<{ reason?: string }>(REVOKED_GRANT_NAMESPACE, grantId))?.reason, 'code_replay');
    assert.deepEqual(await store.findByIndex('oidc:AuthorizationCode', 'grantId', grantId), []);
  });
});
