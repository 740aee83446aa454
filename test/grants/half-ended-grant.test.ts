import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isGrantRevoked } from '../../src/grants/revoked-grants.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { oidcRecords } from '../../src/store/oidc-records.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { grantIdOf, obtainTokens, registerPublicClient, startAuthorizationServer, tokenRequest, type RegisteredClient, type TestServer } from '../authorization/harness.ts';

/**
 * A grant whose ending the store cut off after its first write: the revocation record made, the grant and its refresh
 * tokens still stored (a lost reply, an outage), the client told 503 and never retrying — the usual case for a
 * replayed refresh token, whose sender is the thief. The record lived only as long as the access tokens, and once it
 * expired the grant's refresh tokens minted working tokens again: the theft signal undone, unlogged.
 */
describe('a grant whose ending the store interrupted part-way', () => {
  const clock = new ManualClock(Date.now());
  let sqlite: Store;
  let server: TestServer;
  let client: RegisteredClient;
  /** Deletes fail as in an outage that began after the revocation record was written. */
  let deletesFail = false;

  before(async () => {
    sqlite = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    const store = new Proxy(sqlite, {
      get(target, property, receiver) {
        if (property === 'deleteByIndex' || property === 'delete') {
          return (...args: [string, string, string?]) => {
            if (deletesFail) return Promise.reject(new StoreUnavailableError('the store is unavailable'));
            return property === 'delete' ? target.delete(args[0], args[1]) : target.deleteByIndex(args[0], args[1], args[2] as string);
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    server = await startAuthorizationServer({ store, clock, authorization: { refreshReuseGraceSeconds: 0 } });
    client = await registerPublicClient(server);
  });
  after(async () => {
    await server.close();
    await sqlite.close();
  });

  const refresh = (refreshToken: string) => tokenRequest(server, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
  const refreshTokensOf = async (grantId: string) => (await sqlite.findByIndex(oidcRecords.RefreshToken.namespace, 'grantId', grantId)).length;

  it('stays refused after the access tokens would have expired, and the next use of it finishes the ending', async () => {
    const first = await obtainTokens(server, client);
    const grantId = grantIdOf(first.access_token);
    const rotated = await refresh(first.refresh_token);
    assert.equal(rotated.status, 200);
    const successor = ((await rotated.json()) as { refresh_token: string }).refresh_token;

    // The rotated token replayed (reuse: the grant ends), the store failing after the revocation record.
    deletesFail = true;
    const replay = await refresh(first.refresh_token);
    deletesFail = false;
    assert.equal(replay.status, 503);
    await replay.body?.cancel();
    assert.equal(await isGrantRevoked(sqlite, grantId), true);
    assert.ok((await refreshTokensOf(grantId)) > 0, 'the grant was left half ended');

    // Past the access tokens' lifetime (and the revocation's skew): the record a settled ending keeps.
    clock.advance((server.ctx.config.authorization.accessTokenTtlSeconds + 61) * 1000);
    assert.equal(await isGrantRevoked(sqlite, grantId), true, 'the record lives as long as the grant could');
    const resurrected = await refresh(successor);
    assert.equal(resurrected.status, 400, 'the successor of the replayed token mints nothing');
    assert.equal(((await resurrected.json()) as { error: string }).error, 'invalid_grant');
    assert.equal(await refreshTokensOf(grantId), 0, 'the ending was finished');
    assert.equal(await sqlite.get(oidcRecords.Grant.namespace, grantId), undefined);

    // Finished, the record lives only as long as the access tokens again.
    clock.advance((server.ctx.config.authorization.accessTokenTtlSeconds + 61) * 1000);
    assert.equal(await isGrantRevoked(sqlite, grantId), false);
    assert.equal((await refresh(successor)).status, 400);
  });

  it('an ending that completes keeps the record only as long as the access tokens', async () => {
    const tokens = await obtainTokens(server, client);
    const grantId = grantIdOf(tokens.access_token);
    const revoked = await fetch(`${server.publicUrl}/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.refresh_token, token_type_hint: 'refresh_token', client_id: client.client_id }).toString(),
    });
    assert.equal(revoked.status, 200);
    assert.equal(await isGrantRevoked(sqlite, grantId), true);
    clock.advance((server.ctx.config.authorization.accessTokenTtlSeconds + 61) * 1000);
    assert.equal(await isGrantRevoked(sqlite, grantId), false, 'no revocation list growing with every grant ever ended');
  });
});
