import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { createMetrics, type GatehouseMetrics } from '../../src/observability/metrics.ts';
import { withAuthorizationHooks } from '../../src/authorization/adapter-hooks.ts';
import { replayRecorder } from '../../src/authorization/provider-metrics.ts';
import { generateKeySet, generateSigningKey } from '../../src/keys/key-set.ts';
import { ManualClock, systemClock } from '../../src/runtime/clock.ts';
import { createOidcAdapter, GrantAlreadyConsumedError } from '../../src/store/oidc-adapter.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { createRecord } from '../../src/store/record-access.ts';
import { codeExchangedRecord } from '../../src/records/authorization.ts';
import { hashToken } from '../../src/keys/hashing.ts';
import {
  exchangeCode,
  obtainCode,
  obtainTokens,
  registerPublicClient,
  startAuthorizationServer,
  swappableKeyring,
  tokenRequest,
  type RegisteredClient,
  type TestServer,
} from './harness.ts';

/** The value of one counter series, 0 when it has not been touched. */
async function counter(metrics: GatehouseMetrics, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((entry) => entry.name === name);
  const series = metric?.values.find((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted));
  return series?.value ?? 0;
}

const issued = (metrics: GatehouseMetrics, kind: string) => counter(metrics, 'gatehouse_tokens_issued_total', { kind });
const refreshes = (metrics: GatehouseMetrics, outcome: string) => counter(metrics, 'gatehouse_token_refreshes_total', { outcome });
const revocations = (metrics: GatehouseMetrics, source: string) => counter(metrics, 'gatehouse_grant_revocations_total', { source });

/** Reads several counters before and after `action` and returns how much each moved. */
async function deltas(reads: Record<string, () => Promise<number>>, action: () => Promise<void>): Promise<Record<string, number>> {
  const before: Record<string, number> = {};
  for (const [key, read] of Object.entries(reads)) before[key] = await read();
  await action();
  const moved: Record<string, number> = {};
  for (const [key, read] of Object.entries(reads)) moved[key] = (await read()) - (before[key] ?? 0);
  return moved;
}

describe('authorization server metrics (oidc-provider events)', () => {
  const now = Date.now();
  const keys = generateKeySet({ now, signingAlgorithm: 'ES256' });
  const keyring = swappableKeyring(keys);
  const metrics = createMetrics({ clock: systemClock });
  let server: TestServer;
  let client: RegisteredClient;

  before(async () => {
    // No grace window: the first reuse of a rotated refresh token is reuse.
    server = await startAuthorizationServer({ keyring, authorization: { refreshReuseGraceSeconds: 0 }, deps: { metrics } });
    client = await registerPublicClient(server);
  });
  after(async () => {
    await server.close();
  });

  const refresh = (refreshToken: string) =>
    tokenRequest(server, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });

  it('counts the code, access token and refresh token of an authorization code grant', async () => {
    let body: Record<string, unknown> = {};
    const moved = await deltas(
      { code: () => issued(metrics, 'authorization_code'), access: () => issued(metrics, 'access_token'), refresh: () => issued(metrics, 'refresh_token'), id: () => issued(metrics, 'id_token') },
      async () => {
        body = (await obtainTokens(server, client)) as unknown as Record<string, unknown>;
      },
    );
    assert.equal(typeof body.access_token, 'string');
    assert.deepEqual(moved, { code: 1, access: 1, refresh: 1, id: typeof body.id_token === 'string' ? 1 : 0 });
  });

  it('counts a refresh as rotated, with the new tokens it issued', async () => {
    const tokens = await obtainTokens(server, client);
    const moved = await deltas(
      { rotated: () => refreshes(metrics, 'rotated'), failed: () => refreshes(metrics, 'failed'), access: () => issued(metrics, 'access_token'), refresh: () => issued(metrics, 'refresh_token') },
      async () => {
        const response = await refresh(tokens.refresh_token);
        assert.equal(response.status, 200);
        await response.body?.cancel();
      },
    );
    assert.deepEqual(moved, { rotated: 1, failed: 0, access: 1, refresh: 1 });
  });

  it('counts an unknown refresh token as a failed refresh', async () => {
    const moved = await deltas({ failed: () => refreshes(metrics, 'failed'), rotated: () => refreshes(metrics, 'rotated') }, async () => {
      const response = await refresh('not-a-refresh-token-at-all');
      assert.equal(response.status, 400);
      await response.body?.cancel();
    });
    assert.deepEqual(moved, { failed: 1, rotated: 0 });
  });

  it('counts refresh-token reuse once, as reuse_detected and a refresh_reuse revocation (not as failed)', async () => {
    const tokens = await obtainTokens(server, client);
    const rotated = await refresh(tokens.refresh_token);
    assert.equal(rotated.status, 200);
    await rotated.body?.cancel();
    const moved = await deltas(
      { reuse: () => refreshes(metrics, 'reuse_detected'), failed: () => refreshes(metrics, 'failed'), revoked: () => revocations(metrics, 'refresh_reuse') },
      async () => {
        const reuse = await refresh(tokens.refresh_token);
        assert.equal(reuse.status, 400);
        await reuse.body?.cancel();
      },
    );
    assert.deepEqual(moved, { reuse: 1, failed: 0, revoked: 1 });
  });

  it('counts a replayed authorization code as a replay revocation', async () => {
    const { code, verifier } = await obtainCode(server, client);
    const first = await exchangeCode(server, client, code, verifier);
    assert.equal(first.status, 200);
    await first.body?.cancel();
    const moved = await deltas({ replay: () => revocations(metrics, 'replay') }, async () => {
      const replay = await exchangeCode(server, client, code, verifier);
      assert.equal(replay.status, 400);
      await replay.body?.cancel();
    });
    assert.deepEqual(moved, { replay: 1 });
  });

  it('counts an RFC 7009 revocation of a refresh token as a client revocation', async () => {
    const tokens = await obtainTokens(server, client);
    const moved = await deltas({ client: () => revocations(metrics, 'client') }, async () => {
      const response = await fetch(`${server.publicUrl}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: tokens.refresh_token, client_id: client.client_id }).toString(),
      });
      assert.equal(response.status, 200);
    });
    assert.deepEqual(moved, { client: 1 });
  });

  it('counts an RFC 7009 revocation of a JWT access token as a client revocation', async () => {
    const tokens = await obtainTokens(server, client);
    const moved = await deltas({ client: () => revocations(metrics, 'client') }, async () => {
      const response = await fetch(`${server.publicUrl}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: tokens.access_token, client_id: client.client_id }).toString(),
      });
      assert.equal(response.status, 200);
    });
    assert.deepEqual(moved, { client: 1 });
  });

  it('keeps counting on the provider rebuilt after a signing-key rotation', async () => {
    const rotatedKey = generateSigningKey({ now: now + 1, signingAlgorithm: 'ES256' });
    keyring.swap({ ...keys, signingKeys: [...keys.signingKeys.map((key) => ({ ...key, retiredAt: now + 1 })), rotatedKey] });
    let kid: string | undefined;
    const moved = await deltas({ access: () => issued(metrics, 'access_token') }, async () => {
      kid = decodeProtectedHeader((await obtainTokens(server, client)).access_token).kid;
    });
    assert.equal(kid, rotatedKey.kid, 'the token came from the rebuilt provider');
    assert.deepEqual(moved, { access: 1 });
  });
});

describe('replay caught by the store adapter (two redemptions at once)', () => {
  it('reports the model to onReplayDetected, once, and still refuses the second redemption', async () => {
    const clock = new ManualClock();
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    try {
      const metrics = createMetrics({ clock });
      const factory = withAuthorizationHooks(createOidcAdapter(store, clock), {
        store,
        clock,
        accessTokenTtlSeconds: 300,
        grantLifetimeSeconds: 86_400,
        refreshReuseGraceSeconds: 0,
        onReplayDetected: replayRecorder(metrics),
      });
      const codes = factory('AuthorizationCode');
      const refreshTokens = factory('RefreshToken');
      const exp = Math.floor(clock.now() / 1000) + 60;
      await codes.upsert('code-1', { grantId: 'g1', exp }, 60);
      await refreshTokens.upsert('refresh-1', { grantId: 'g2', exp }, 60);

      // A code consumed by an exchange that has not finished may be consumed again (its retry, or a racing party:
      // the exchange's finish decides, code-exchange-retry.ts); once one finished, a second consume is the replay.
      const codeResults = await Promise.allSettled([codes.consume('code-1'), codes.consume('code-1')]);
      assert.deepEqual(codeResults.map((result) => result.status), ['fulfilled', 'fulfilled']);
      assert.equal(await revocations(metrics, 'replay'), 0);
      await createRecord(store, codeExchangedRecord, hashToken('code-1'), { at: clock.now() }, { ttlSeconds: 61 });
      await assert.rejects(codes.consume('code-1'), GrantAlreadyConsumedError);
      const refreshResults = await Promise.allSettled([refreshTokens.consume('refresh-1'), refreshTokens.consume('refresh-1')]);
      assert.deepEqual(refreshResults.map((result) => result.status).sort(), ['fulfilled', 'rejected']);
      const rejected = refreshResults.find((result) => result.status === 'rejected');
      assert.ok(rejected?.reason instanceof GrantAlreadyConsumedError);
      assert.equal(await revocations(metrics, 'replay'), 1);
      assert.equal(await revocations(metrics, 'refresh_reuse'), 1);
      assert.equal(await refreshes(metrics, 'reuse_detected'), 1);
    } finally {
      await store.close();
    }
  });
});
