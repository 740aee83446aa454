import assert from 'node:assert/strict';
import { testKeyring } from '../support/keyring.ts';
import { describe, it } from 'node:test';
import { upstreamTokensRecord } from '../../src/records/upstream.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import {
  deleteUpstreamTokens,
  loadUpstreamTokens,
  saveUpstreamTokens,
} from '../../src/upstream/token-vault.ts';
import { startedForSuite } from '../support/suite-server.ts';

describe('upstream token vault', () => {
  const clock = new ManualClock();
  const keyring = testKeyring(clock.now());
  const store = startedForSuite(() => createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 }));
  const deps = () => ({ store, keyring, clock });
  // Every field the vault keeps comes back: `obtainedAt` was dropped on load, and a short-lived token refreshed on every call.
  const tokens = { accessToken: 'at-secret-value', refreshToken: 'rt-secret-value', expiresAt: clock.now() + 3_600_000, scope: 'openid', obtainedAt: clock.now() - 1_000 };

  it('stores the tokens sealed, never in clear, and opens them for the same subject', async () => {
    await saveUpstreamTokens(deps(), 'tenant/user-1', tokens);
    const raw = JSON.stringify(await store.get(upstreamTokensRecord.namespace, 'tenant/user-1'));
    assert.equal(raw.includes('at-secret-value'), false);
    assert.equal(raw.includes('rt-secret-value'), false);
    assert.deepEqual(await loadUpstreamTokens(deps(), 'tenant/user-1'), tokens);
  });

  it('a record copied under another subject does not open (the subject is bound as additional data)', async () => {
    const record = await store.get(upstreamTokensRecord.namespace, 'tenant/user-1');
    await store.set(upstreamTokensRecord.namespace, 'tenant/attacker', record);
    assert.equal(await loadUpstreamTokens(deps(), 'tenant/attacker'), undefined);
    assert.equal(await store.get(upstreamTokensRecord.namespace, 'tenant/attacker'), undefined, 'the unopenable record is removed');
  });

  it('lives as long as the refresh token, or only as long as the access token without one', async () => {
    await saveUpstreamTokens(deps(), 'with-refresh', tokens, { refreshTokenLifetimeSeconds: 7200 });
    await saveUpstreamTokens(deps(), 'access-only', { accessToken: 'a', expiresAt: clock.now() + 60_000 });
    clock.advance(61_000);
    assert.equal(await loadUpstreamTokens(deps(), 'access-only'), undefined);
    assert.ok(await loadUpstreamTokens(deps(), 'with-refresh'));
    clock.advance(7200_000);
    assert.equal(await loadUpstreamTokens(deps(), 'with-refresh'), undefined);
  });

  it("believes an IdP's refresh-token lifetime up to a year, not the centuries a broken answer may state", async () => {
    await saveUpstreamTokens(deps(), 'long-lived', tokens, { refreshTokenLifetimeSeconds: 1e12 });
    const [entry] = (await store.list(upstreamTokensRecord.namespace)).filter((record) => record.key === 'long-lived');
    assert.ok(entry?.expiresAt !== undefined && entry.expiresAt <= clock.now() + 365 * 86_400_000, `kept until ${entry?.expiresAt}`);
  });

  it('deletes on request', async () => {
    await saveUpstreamTokens(deps(), 'gone', tokens);
    assert.equal(await deleteUpstreamTokens(deps(), 'gone'), true);
    assert.equal(await loadUpstreamTokens(deps(), 'gone'), undefined);
  });
});
