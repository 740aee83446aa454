import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, beforeEach, describe, it } from 'node:test';
import { createMetrics } from '../../src/observability/metrics.ts';
import { downstreamCacheKey, forgetDownstreamTokens } from '../../src/broker/downstream-cache.ts';
import { downstreamTokenLock } from '../../src/records/broker.ts';
import { lockName } from '../../src/store/record-access.ts';
import { createTokenBroker } from '../../src/broker/token-broker.ts';
import type { TokenBroker } from '../../src/broker/types.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { UnusableTokenAnswer, UpstreamError, upstreamTokenError } from '../../src/upstream/errors.ts';
import { forgetEndedSession, pendingStepUp, rememberStepUp } from '../../src/records/step-up.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import type { DownstreamTokenRequest, UpstreamTokens } from '../../src/upstream/types.ts';
import { brokerConfig, capturingLogger, memoryVault, oauthError, scriptedUpstream, testKeyring } from './support/fixtures.ts';

const subject = 'contoso-tenant/user-oid-1';
const hour = 3_600_000;

describe('token broker', () => {
  let clock: ManualClock;
  let store: Store;
  let vault: ReturnType<typeof memoryVault>;
  let log: ReturnType<typeof capturingLogger>;
  const stores: Store[] = [];

  beforeEach(async () => {
    clock = new ManualClock();
    store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    stores.push(store);
    vault = memoryVault();
    log = capturingLogger();
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });

  const freshUpstream = (lifetimeMs = hour): UpstreamTokens => ({
    accessToken: `upstream-at-${randomUUID()}`,
    refreshToken: `upstream-rt-${randomUUID()}`,
    expiresAt: clock.now() + lifetimeMs,
  });
  const downstreamFor = (lifetimeMs = hour) => async (request: DownstreamTokenRequest): Promise<UpstreamTokens> => ({
    accessToken: `downstream-${request.audience}-${randomUUID()}`,
    expiresAt: clock.now() + lifetimeMs,
    scope: request.scopes.join(' '),
  });

  /** Waiting is instant unless a test needs real waiters (then the broker's own setTimeout backoff is used). */
  function broker(
    upstream: ReturnType<typeof scriptedUpstream>,
    options: { timeoutMs?: number; realSleep?: boolean; userHasGrant?: (subject: string) => Promise<boolean>; downstream?: Array<Record<string, unknown>> } = {},
  ): TokenBroker {
    return createTokenBroker({
      config: brokerConfig(options),
      store,
      keyring: testKeyring(clock.now()),
      clock,
      logger: log.logger,
      upstream,
      vault,
      ...(options.realSleep ? {} : { sleep: async () => undefined }),
      ...(options.userHasGrant ? { userHasGrant: options.userHasGrant } : {}),
    });
  }

  async function rejectsWith(promise: Promise<unknown>, code: string): Promise<ProtocolError> {
    const error = await promise.then(
      () => assert.fail(`expected ${code}`),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
    assert.equal(error.code, code);
    return error;
  }

  it('exchanges on a miss, then serves the sealed cache until the refresh skew', async () => {
    const upstreamTokens = freshUpstream(10 * hour);
    await vault.save(subject, upstreamTokens);
    const upstream = scriptedUpstream({ exchange: downstreamFor(hour) });
    const tokens = broker(upstream);

    const first = await tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.equal(upstream.calls.exchange.length, 1);
    assert.equal(upstream.calls.exchange[0]?.subjectToken, upstreamTokens.accessToken);
    assert.equal(upstream.calls.exchange[0]?.grant, 'on-behalf-of');
    assert.deepEqual(first.scopes, ['https://graph.microsoft.com/User.Read']);

    clock.advance(hour - 121_000);
    const second = await tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.equal(second.accessToken, first.accessToken);
    assert.equal(upstream.calls.exchange.length, 1);

    // Inside the 120 s skew the cached token is no longer handed out.
    clock.advance(2_000);
    const third = await tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.notEqual(third.accessToken, first.accessToken);
    assert.equal(upstream.calls.exchange.length, 2);
  });

  it('caches per grant: an on-behalf-of and an RFC 8693 entry for the same audience and scopes each get their own token', async () => {
    await vault.save(subject, freshUpstream());
    const upstream = scriptedUpstream({
      exchange: async (request) => ({ accessToken: `${request.grant}-${randomUUID()}`, expiresAt: clock.now() + hour, scope: request.scopes.join(' ') }),
    });
    const same = { audience: 'https://graph.microsoft.com', scopes: ['https://graph.microsoft.com/User.Read'] };
    const b = broker(upstream, {
      downstream: [
        { name: 'graph-obo', grant: 'on-behalf-of', ...same },
        { name: 'graph-exchange', grant: 'token-exchange', ...same },
        { name: 'graph-obo-again', grant: 'on-behalf-of', ...same },
      ],
    });
    const obo = await b.getDownstreamToken({ user: { subject }, downstream: 'graph-obo' });
    const exchanged = await b.getDownstreamToken({ user: { subject }, downstream: 'graph-exchange' });
    assert.match(obo.accessToken, /^on-behalf-of-/);
    assert.match(exchanged.accessToken, /^token-exchange-/, 'not the on-behalf-of token from the cache');
    assert.deepEqual(upstream.calls.exchange.map((call) => call.grant), ['on-behalf-of', 'token-exchange']);
    // An entry asking exactly what another asks shares its token: the name is not part of the request.
    assert.equal((await b.getDownstreamToken({ user: { subject }, downstream: 'graph-obo-again' })).accessToken, obo.accessToken);
    assert.equal(upstream.calls.exchange.length, 2);
  });

  it('serves a token that lives less than the refresh skew from the cache for half its life, not from the IdP on every call', async () => {
    await vault.save(subject, freshUpstream());
    const upstream = scriptedUpstream({ exchange: downstreamFor(100_000) });
    const b = broker(upstream);
    const first = await b.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    clock.advance(40_000);
    assert.equal((await b.getDownstreamToken({ user: { subject }, downstream: 'graph' })).accessToken, first.accessToken);
    assert.equal(upstream.calls.exchange.length, 1);
    clock.advance(15_000); // past half its life: renewed
    assert.notEqual((await b.getDownstreamToken({ user: { subject }, downstream: 'graph' })).accessToken, first.accessToken);
    assert.equal(upstream.calls.exchange.length, 2);
  });

  it('uses an upstream access token that lives less than the refresh skew for half its life before refreshing it', async () => {
    await vault.save(subject, { ...freshUpstream(100_000), obtainedAt: clock.now() });
    const upstream = scriptedUpstream({
      refresh: async () => ({ accessToken: `upstream-at-${randomUUID()}`, refreshToken: `upstream-rt-${randomUUID()}`, expiresAt: clock.now() + 100_000, obtainedAt: clock.now() }),
      exchange: downstreamFor(),
    });
    await broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.deepEqual(upstream.calls.refresh, [], 'fresh for its first 50 s');
    clock.advance(55_000);
    await broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'other' });
    assert.equal(upstream.calls.refresh.length, 1, 'renewed past half its life');
  });

  it('keeps the cached token sealed at rest', async () => {
    await vault.save(subject, freshUpstream());
    const upstream = scriptedUpstream({ exchange: downstreamFor() });
    const token = await broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' });
    const records = await store.list<unknown>('downstream-token');
    assert.equal(records.length, 1);
    assert.ok(!JSON.stringify(records).includes(token.accessToken));
    assert.ok(!JSON.stringify(records).includes(subject));
  });

  it('caches per downstream audience and scopes', async () => {
    await vault.save(subject, freshUpstream());
    const upstream = scriptedUpstream({ exchange: downstreamFor() });
    const tokens = broker(upstream);
    const graph = await tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    const other = await tokens.getDownstreamToken({ user: { subject }, downstream: 'other' });
    assert.notEqual(graph.accessToken, other.accessToken);
    assert.equal(upstream.calls.exchange[1]?.grant, 'token-exchange');
    assert.equal(upstream.calls.exchange.length, 2);
  });

  it('refreshes an expired upstream token once, stores the rotated one, and exchanges with it', async () => {
    const stale = freshUpstream(60_000);
    await vault.save(subject, stale);
    const rotated = { accessToken: `upstream-at-${randomUUID()}`, refreshToken: `upstream-rt-${randomUUID()}` };
    const upstream = scriptedUpstream({
      refresh: async () => ({ ...rotated, expiresAt: clock.now() + hour }),
      exchange: downstreamFor(),
    });
    await broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.deepEqual(upstream.calls.refresh, [stale.refreshToken]);
    assert.equal(upstream.calls.exchange[0]?.subjectToken, rotated.accessToken);
    assert.equal(vault.records.get(subject)?.refreshToken, rotated.refreshToken);
  });

  /**
   * A user whose upstream access token is stale, a store that refuses the vault's writes until `storeBack()`, and an
   * IdP that rotates refresh tokens (the tests assert which ones were presented: the spent one only once).
   */
  async function rotationWithStoreDown() {
    const stale = freshUpstream(0);
    await vault.save(subject, stale);
    const save = vault.save;
    let storeDown = true;
    vault.save = async (who, tokens) => {
      if (storeDown) throw new StoreUnavailableError('store down for the test');
      return save(who, tokens);
    };
    let rotations = 0;
    const upstream = scriptedUpstream({
      refresh: async (presented) => {
        if (presented !== stale.refreshToken && !presented.startsWith('rotated-')) throw oauthError(400, { error: 'invalid_grant' });
        rotations += 1;
        return { accessToken: `upstream-at-${rotations}`, refreshToken: `rotated-${rotations}`, expiresAt: clock.now() + hour };
      },
      exchange: downstreamFor(),
    });
    return { stale, upstream, storeBack: () => void (storeDown = false) };
  }

  it('keeps the rotated tokens when the store refuses them right after the refresh, and never presents the spent refresh token again', async () => {
    const { stale, upstream, storeBack } = await rotationWithStoreDown();
    const b = broker(upstream);
    const failed = await rejectsWith(b.getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
    assert.match(failed.description, /Downstream tokens are unavailable/, 'the store failed, not the identity provider');
    assert.equal(vault.records.get(subject)?.refreshToken, stale.refreshToken, 'the store still holds the spent one');

    storeBack();
    clock.advance(6_000); // past the failure remembered for the callers queued behind the first
    await b.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.deepEqual(upstream.calls.refresh, [stale.refreshToken], 'one refresh: the spent token was never presented again');
    assert.equal(vault.records.get(subject)?.refreshToken, 'rotated-1');
    assert.equal(upstream.calls.exchange[0]?.subjectToken, 'upstream-at-1');
  });

  it('keeps the refresh lock while rotated tokens wait to be saved: another replica waits for them, not refreshing with the spent token', async () => {
    // Replica A refreshes and the store refuses the rotated tokens. As soon as the store is back, replica B needs a
    // token for the user: with the lock released, B refreshed with the spent token still in the store, the IdP saw
    // it reused and ended the session.
    const { stale, upstream, storeBack } = await rotationWithStoreDown();
    const replicaA = broker(upstream);
    const replicaB = broker(upstream, { realSleep: true });
    await rejectsWith(replicaA.getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
    storeBack();
    const served = await replicaB.getDownstreamToken({ user: { subject }, downstream: 'other' });
    assert.deepEqual(upstream.calls.refresh, [stale.refreshToken], 'the spent refresh token was presented once, by A');
    assert.equal(upstream.calls.exchange.at(-1)?.subjectToken, 'upstream-at-1', 'B used the tokens A obtained');
    assert.ok(served.accessToken.startsWith('downstream-api://other'));
    assert.equal(vault.records.get(subject)?.refreshToken, 'rotated-1');
  });

  it('keeps what a refresh answered after the timeout: the rotated tokens are saved, and the lock held until then', async () => {
    // The broker stopped waiting at upstream.timeoutMs, but the IdP still answered (before the client's own HTTP
    // timeout) and rotated: the answer was dropped, the store kept the spent refresh token, and the next refresh
    // presented it — at an IdP that detects reuse, the end of the user's session.
    const stale = freshUpstream(0);
    await vault.save(subject, stale);
    let answer!: (tokens: UpstreamTokens) => void;
    const upstream = scriptedUpstream({
      refresh: (presented) => {
        if (presented !== stale.refreshToken) throw oauthError(400, { error: 'invalid_grant' });
        return new Promise<UpstreamTokens>((resolve) => (answer = resolve));
      },
      exchange: downstreamFor(),
    });
    // A timeout of 200 ms: the refresh lock lives 5.6 s (three timeouts and 5 s), the failure remembered for the
    // callers queued behind the first 5 s.
    await rejectsWith(broker(upstream, { timeoutMs: 200 }).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
    clock.advance(5_300);
    // Another replica needs the user's token while the late answer may still come: it waits, and does not refresh
    // with the stored (about to be spent) refresh token.
    const waiting = broker(upstream, { timeoutMs: 200, realSleep: true }).getDownstreamToken({ user: { subject }, downstream: 'other' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    answer({ accessToken: 'upstream-at-late', refreshToken: 'rotated-late', expiresAt: clock.now() + hour });
    const served = await waiting;
    assert.deepEqual(upstream.calls.refresh, [stale.refreshToken], 'the spent refresh token was presented once');
    assert.equal(vault.records.get(subject)?.refreshToken, 'rotated-late');
    assert.equal(upstream.calls.exchange.at(-1)?.subjectToken, 'upstream-at-late', 'the waiting replica used the late answer');
    assert.ok(served.accessToken.startsWith('downstream-api://other'));
    assert.ok(!log.lines.join('\n').includes('rotated-late'), 'never the token in the log');
  });

  /** Waits (real time, bounded) until the broker logged `message`. */
  async function logged(message: string): Promise<void> {
    for (let turn = 0; turn < 300 && !log.lines.some((line) => line.includes(message)); turn++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(log.lines.some((line) => line.includes(message)), `logged "${message}"`);
  }

  it('never lets a late answer, or tokens kept through an outage, replace the tokens of a sign-in made meanwhile', async () => {
    // The user signed in again (the sign-in writes the vault without the refresh lock) while the late answer was on
    // its way: saved as it came, it replaced the new session's tokens (their step-up, their scopes) with the old one's.
    const stale = freshUpstream(0);
    await vault.save(subject, stale);
    let answer!: (tokens: UpstreamTokens) => void;
    const upstream = scriptedUpstream({ refresh: () => new Promise<UpstreamTokens>((resolve) => (answer = resolve)), exchange: downstreamFor() });
    await rejectsWith(broker(upstream, { timeoutMs: 20 }).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
    const signedIn = freshUpstream();
    await vault.save(subject, signedIn);
    answer({ accessToken: 'upstream-at-late', refreshToken: 'rotated-late', expiresAt: clock.now() + hour });
    await logged('late upstream tokens not saved: the store holds newer ones');
    assert.equal(vault.records.get(subject)?.refreshToken, signedIn.refreshToken);

    // The same for rotated tokens the store refused, offered to it again once it is back.
    clock.advance(6_000); // past the failure remembered for the callers queued behind the first
    const { upstream: rotating, storeBack } = await rotationWithStoreDown();
    await rejectsWith(broker(rotating).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
    storeBack();
    const again = freshUpstream();
    await vault.save(subject, again);
    await logged('rotated upstream tokens not saved: the store failed');
    log.lines.length = 0;
    await logged('late upstream tokens not saved: the store holds newer ones');
    assert.deepEqual(rotating.calls.refresh.length, 1);
    assert.equal(vault.records.get(subject)?.refreshToken, again.refreshToken);
  });

  it('keeps the refresh token a refused late answer rotated to', async () => {
    const stale = freshUpstream(0);
    await vault.save(subject, stale);
    let refuse!: (error: Error) => void;
    const upstream = scriptedUpstream({ refresh: () => new Promise<UpstreamTokens>((_, reject) => (refuse = reject)), exchange: downstreamFor() });
    await rejectsWith(broker(upstream, { timeoutMs: 20 }).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
    const rotated = `upstream-rt-${randomUUID()}`;
    refuse(new UnusableTokenAnswer('refresh', 'token_type is not Bearer', rotated));
    for (let turn = 0; turn < 50 && vault.records.get(subject)?.refreshToken !== rotated; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(vault.records.get(subject)?.refreshToken, rotated);
  });

  it('keeps the refresh token a refused refresh answer rotated to, and presents it (not the spent one) next time', async () => {
    // The IdP answered 200 and rotated, but its access token is not usable (a DPoP token, say): the refresh fails,
    // and the store must not keep the spent refresh token, or the next call presents it and the IdP ends the session.
    const stale = freshUpstream(0);
    await vault.save(subject, stale);
    const rotated = `upstream-rt-${randomUUID()}`;
    let answers = 0;
    const upstream = scriptedUpstream({
      refresh: async (presented) => {
        answers += 1;
        if (answers === 1) throw new UnusableTokenAnswer('refresh', 'token_type is not Bearer', rotated);
        if (presented !== rotated) throw oauthError(400, { error: 'invalid_grant' });
        return { accessToken: `upstream-at-${randomUUID()}`, refreshToken: `upstream-rt-${randomUUID()}`, expiresAt: clock.now() + hour };
      },
      exchange: downstreamFor(),
    });
    const b = broker(upstream);
    const failure = await rejectsWith(b.getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'server_error');
    assert.equal(failure.status, 502);
    assert.equal(vault.records.get(subject)?.refreshToken, rotated);
    assert.ok(!log.lines.join('\n').includes(rotated), 'never the token in the log');
    clock.advance(6_000); // past the failure remembered for the callers queued behind
    await b.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.deepEqual(upstream.calls.refresh, [stale.refreshToken, rotated]);
  });

  it("tells a caller that waited on another's refresh the same as that caller: its reason, and when to come back", async () => {
    // The waiters read the holder's failure from the store: without its reason a refused refresh read as a step-up
    // there, and an outage came without a Retry-After.
    for (const [thrown, code, reason] of [
      [oauthError(400, { error: 'invalid_grant' }), 'interaction_required', 'refresh_token_invalid'],
      [oauthError(503, { error: 'temporarily_unavailable' }), 'temporarily_unavailable', undefined],
    ] as const) {
      clock.advance(10_000);
      await vault.save(subject, freshUpstream(0));
      let release: (() => void) | undefined;
      const upstream = scriptedUpstream({
        refresh: async () => {
          await new Promise<void>((resolve) => (release = resolve));
          throw upstreamTokenError(thrown, 'refresh');
        },
        exchange: downstreamFor(),
      });
      const holder = rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' }), code);
      while (release === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
      const waiter = rejectsWith(broker(upstream, { realSleep: true }).getDownstreamToken({ user: { subject }, downstream: 'other' }), code);
      await new Promise((resolve) => setTimeout(resolve, 30));
      release();
      const [first, second] = await Promise.all([holder, waiter]);
      assert.equal(upstream.calls.refresh.length, 1, 'one refresh');
      assert.equal((second.cause as { reason?: string } | undefined)?.reason, reason);
      assert.equal((first.cause as { reason?: string } | undefined)?.reason, reason);
      assert.equal(second.headers['Retry-After'], first.headers['Retry-After']);
    }
  });

  it('serves the token it obtained when only caching it fails, and blames the store, not the IdP, when the store fails before', async () => {
    await vault.save(subject, freshUpstream());
    const upstream = scriptedUpstream({ exchange: downstreamFor() });
    const flaky = Object.create(store) as Store;
    flaky.set = async () => {
      throw new StoreUnavailableError('store down for the test');
    };
    const b = createTokenBroker({ config: brokerConfig(), store: flaky, keyring: testKeyring(clock.now()), clock, logger: log.logger, upstream, vault, sleep: async () => undefined });
    const token = await b.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.match(token.accessToken, /^downstream-/);
    assert.ok(log.lines.some((line) => line.includes('downstream token not cached')));
    assert.ok(!log.lines.some((line) => line.includes('identity provider is unavailable')));
  });

  it("does not write a user's tokens back when a person ended their last grant while the call was under way", async () => {
    const stale = freshUpstream(0);
    await vault.save(subject, stale);
    let granted = true;
    const upstream = scriptedUpstream({
      refresh: async () => {
        // The grant ends (and its tokens are deleted) while the IdP answers.
        granted = false;
        vault.records.delete(subject);
        return { accessToken: 'upstream-at-new', refreshToken: 'upstream-rt-new', expiresAt: clock.now() + hour };
      },
      exchange: downstreamFor(),
    });
    const b = broker(upstream, { userHasGrant: async () => granted });
    await rejectsWith(b.getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'interaction_required');
    assert.deepEqual(upstream.calls.exchange, [], 'no exchange for a user with no grant');
    assert.equal(vault.records.has(subject), false, 'the refreshed tokens were not left behind');
  });

  it('keeps the old refresh token when the provider does not rotate it', async () => {
    const stale = freshUpstream(0);
    await vault.save(subject, stale);
    const upstream = scriptedUpstream({
      refresh: async () => ({ accessToken: `upstream-at-${randomUUID()}`, expiresAt: clock.now() + hour }),
      exchange: downstreamFor(),
    });
    await broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.equal(vault.records.get(subject)?.refreshToken, stale.refreshToken);
  });

  it('runs one refresh and one exchange for many concurrent calls', async () => {
    await vault.save(subject, freshUpstream(0));
    const upstream = scriptedUpstream({
      refresh: async () => ({ ...freshUpstream(), accessToken: `upstream-at-${randomUUID()}` }),
      exchange: async (request) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return downstreamFor()(request);
      },
    });
    const tokens = broker(upstream, { realSleep: true });
    const results = await Promise.all(
      Array.from({ length: 25 }, () => tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' })),
    );
    assert.equal(upstream.calls.refresh.length, 1);
    assert.equal(upstream.calls.exchange.length, 1);
    assert.equal(new Set(results.map((r) => r.accessToken)).size, 1);
  });

  describe('errors the user can act on', () => {
    const cases: Array<{ name: string; error: () => Error; reason: RegExp }> = [
      {
        name: 'AADSTS65001 (consent missing)',
        error: () => oauthError(400, { error: 'invalid_grant', error_description: 'AADSTS65001: The user or administrator has not consented.', error_codes: [65001] }),
        reason: /consent/i,
      },
      { name: 'consent_required', error: () => oauthError(400, { error: 'consent_required' }), reason: /consent/i },
      { name: 'interaction_required', error: () => oauthError(400, { error: 'interaction_required' }), reason: /sign in again/i },
      {
        name: 'a claims challenge',
        error: () => oauthError(400, { error: 'invalid_grant', error_description: 'AADSTS50076: MFA', claims: '{"access_token":{"acrs":{"essential":true}}}' }),
        reason: /additional claims/i,
      },
    ];
    cases.push(
      {
        name: 'the upstream client\'s UpstreamError for AADSTS65001',
        error: () =>
          new UpstreamError('interaction_required', 'The identity provider needs the user to sign in again (x).', { upstreamError: 'invalid_grant', upstreamErrorCodes: ['AADSTS65001'] }, {
            cause: { error: 'invalid_grant', error_codes: ['AADSTS65001'], claims: false },
          }),
        reason: /consent/i,
      },
      {
        name: 'the upstream client\'s UpstreamError for a claims challenge',
        error: () => new UpstreamError('interaction_required', 'x', { upstreamError: 'interaction_required', claims: '{"access_token":{}}' }),
        reason: /additional claims/i,
      },
    );
    for (const { name, error, reason } of cases) {
      it(`maps ${name} from the exchange to interaction_required`, async () => {
        await vault.save(subject, freshUpstream());
        const upstream = scriptedUpstream({ exchange: async () => { throw error(); } });
        const failure = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'interaction_required');
        assert.match(failure.message, reason);
        assert.equal(failure.status, 401);
        assert.doesNotMatch(failure.message, /AADSTS|acrs/);
      });
    }

    it('maps a refresh token revoked at the IdP to interaction_required', async () => {
      await vault.save(subject, freshUpstream(0));
      const upstream = scriptedUpstream({
        refresh: async () => { throw oauthError(400, { error: 'invalid_grant', error_description: 'AADSTS70008: expired' }); },
        exchange: downstreamFor(),
      });
      const failure = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'interaction_required');
      assert.match(failure.message, /expired or was revoked/);
      assert.equal(upstream.calls.exchange.length, 0);
    });

    it('asks for a new sign-in when there is no refresh token or no upstream session', async () => {
      await vault.save(subject, { accessToken: 'x', expiresAt: clock.now() });
      const upstream = scriptedUpstream({ exchange: downstreamFor() });
      const noRefresh = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'interaction_required');
      const noSession = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject: 'nobody' }, downstream: 'graph' }), 'interaction_required');
      assert.equal(upstream.calls.refresh.length, 0);
      assert.equal(upstream.calls.exchange.length, 0);
      // Said as what they are, not as a step-up the IdP never asked for — and remembered as an ended session, so the
      // next authorization goes to the IdP (the gateway session alone would issue a grant on the same dead session)
      // and a backend's refusal of the same call ends the grant (src/proxy/backend-step-up.ts).
      assert.equal((noRefresh.cause as { reason?: string }).reason, 'refresh_token_invalid');
      assert.equal((noSession.cause as { reason?: string }).reason, 'no_upstream_session');
      assert.match(noSession.message, /no upstream session/);
      assert.deepEqual(await pendingStepUp(store, 'nobody'), { reason: 'upstream_session_ended', createdAt: clock.now() });
      assert.deepEqual(await pendingStepUp(store, subject), { reason: 'upstream_session_ended', createdAt: clock.now() });
    });

    describe('an invalid_grant of the exchange itself', () => {
      const entraRefusal = (code: number) => () =>
        upstreamTokenError(
          Object.assign(new Error('server responded with an error in the response body'), {
            code: 'OAUTH_RESPONSE_BODY_ERROR',
            error: 'invalid_grant',
            status: 400,
            cause: { error: 'invalid_grant', error_description: `AADSTS${code}: text. Trace ID: t`, error_codes: [code] },
          }),
          'on-behalf-of',
        );

      for (const code of [50027, 90009]) {
        it(`AADSTS${code} (the gateway's configuration): a 502 that asks no sign-in, remembers none, and is logged once naming the code`, async () => {
          const upstreamTokens = freshUpstream();
          await vault.save(subject, upstreamTokens);
          const upstream = scriptedUpstream({ exchange: async () => { throw entraRefusal(code)(); } });
          const b = broker(upstream);
          for (let call = 0; call < 3; call++) {
            // The first asks the IdP; the next two meet the failure it remembered: none of them says "sign in".
            const failure = await rejectsWith(b.getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'server_error');
            assert.equal(failure.status, 502);
            assert.equal((failure.cause as { reason?: unknown } | undefined)?.reason, undefined, 'no reason to end the grant');
            assert.doesNotMatch(failure.message, /AADSTS|sign in/);
            clock.advance(1_000);
          }
          assert.equal(upstream.calls.exchange.length, 1);
          assert.equal(upstream.calls.refresh.length, 0, 'the code says what it is: the session is not asked');
          assert.equal(await pendingStepUp(store, subject), undefined, 'a new sign-in would not fix it: no user is sent round the IdP for it');
          const logged = log.lines.filter((line) => line.includes('gateway configuration error'));
          assert.equal(logged.length, 1, log.lines.join('\n'));
          assert.match(logged[0] ?? '', new RegExp(`"aadsts":"AADSTS${code}"`));
          assert.ok(!log.lines.join('\n').includes(upstreamTokens.accessToken));
        });
      }

      for (const code of [50013, 500131]) {
        it(`AADSTS${code} (the token's audience or signature): renewed once — the refresh asks the configured scopes — and a configuration error if the renewed token is refused too`, async () => {
          // A user who signed in before the operator added access_as_user to upstream.scopes holds a Graph token.
          const wrongAudience = freshUpstream();
          await vault.save(subject, wrongAudience);
          const renewed = freshUpstream();
          const upstream = scriptedUpstream({
            refresh: async () => renewed,
            exchange: async (request) => {
              if (request.subjectToken !== renewed.accessToken) throw entraRefusal(code)();
              return downstreamFor()(request);
            },
          });
          const b = broker(upstream);
          const token = await b.getDownstreamToken({ user: { subject }, downstream: 'graph' });
          assert.match(token.accessToken, /^downstream-https:\/\/graph/);
          assert.deepEqual(upstream.calls.refresh, [wrongAudience.refreshToken]);

          // Refused again after the renewal: the configuration, logged as such; a 502 remembered for a minute.
          await vault.save('user-2', freshUpstream());
          const refusing = scriptedUpstream({ refresh: async () => freshUpstream(), exchange: async () => { throw entraRefusal(code)(); } });
          const b2 = broker(refusing);
          for (let call = 0; call < 3; call++) {
            const failure = await rejectsWith(b2.getDownstreamToken({ user: { subject: 'user-2' }, downstream: 'graph' }), 'server_error');
            assert.equal(failure.status, 502);
            clock.advance(10_000);
          }
          assert.equal(refusing.calls.refresh.length, 1);
          assert.equal(refusing.calls.exchange.length, 2);
          assert.equal(await pendingStepUp(store, 'user-2'), undefined);
          const logged = log.lines.filter((line) => line.includes('gateway configuration error'));
          assert.equal(logged.length, 1, log.lines.join('\n'));
          assert.match(logged[0] ?? '', new RegExp(`"aadsts":"AADSTS${code}".*renewed`));
        });
      }

      for (const code of [50173, 50132, 700082, 50078, 50076]) {
        it(`AADSTS${code} (the user's session ended, or MFA): still a sign-in`, async () => {
          await vault.save(subject, freshUpstream());
          const upstream = scriptedUpstream({ exchange: async () => { throw entraRefusal(code)(); } });
          const failure = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'interaction_required');
          assert.equal((failure.cause as { reason?: string }).reason, 'interaction_required');
          assert.equal((await pendingStepUp(store, subject))?.reason, 'interaction_required', 'the next sign-in goes to the IdP');
        });
      }

      it('a bare invalid_grant (RFC 8693, no code) asks the IdP by renewing the session: alive, a second refusal is a 502 that ends no grant', async () => {
        const stale = freshUpstream();
        await vault.save(subject, stale);
        const renewed = freshUpstream();
        const upstream = scriptedUpstream({
          refresh: async () => renewed,
          exchange: async () => { throw oauthError(400, { error: 'invalid_grant' }); },
        });
        const failure = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'other' }), 'server_error');
        assert.equal(failure.status, 502);
        assert.deepEqual(upstream.calls.refresh, [stale.refreshToken]);
        assert.deepEqual(upstream.calls.exchange.map((call) => call.subjectToken), [stale.accessToken, renewed.accessToken]);
        assert.equal(await pendingStepUp(store, subject), undefined);
        assert.ok(log.lines.some((line) => line.includes('gateway configuration error') && line.includes('renewed')));
      });

      it('a bare invalid_grant met call after call: one renewal a minute, not one per call once the 5 s failure record expires', async () => {
        await vault.save(subject, freshUpstream(10 * hour));
        let rotations = 0;
        const upstream = scriptedUpstream({
          refresh: async () => ({ ...freshUpstream(10 * hour), refreshToken: `rotated-${++rotations}` }),
          exchange: async () => { throw oauthError(400, { error: 'invalid_grant' }); },
        });
        const b = broker(upstream);
        for (let call = 0; call < 10; call++) {
          const failure = await rejectsWith(b.getDownstreamToken({ user: { subject }, downstream: 'other' }), 'server_error');
          assert.equal(failure.status, 502);
          clock.advance(6_000);
        }
        assert.equal(upstream.calls.refresh.length, 1, 'renewed once: the refusal after it is remembered for a minute');
        assert.equal(upstream.calls.exchange.length, 2);
        assert.equal(await pendingStepUp(store, subject), undefined);
      });

      it('a bare invalid_grant of a token just refreshed for this call: no second refresh', async () => {
        const stale = freshUpstream(0);
        await vault.save(subject, stale);
        const upstream = scriptedUpstream({
          refresh: async () => freshUpstream(),
          exchange: async () => { throw oauthError(400, { error: 'invalid_grant' }); },
        });
        const failure = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'other' }), 'server_error');
        assert.equal(failure.status, 502);
        assert.deepEqual(upstream.calls.refresh, [stale.refreshToken], 'one refresh: the token it brought is what was refused');
        assert.equal(upstream.calls.exchange.length, 1);
        assert.ok(log.lines.some((line) => line.includes('gateway configuration error') && line.includes('moments ago')));
      });

      it('holds the exchange lock through the longest holder: an exchange, the renewal and a second exchange, each near the timeout', async () => {
        await vault.save(subject, freshUpstream());
        const nearTimeout = 9_900; // upstream.timeoutMs 10 s: three calls of 9.9 s outlived a lock of 2 × 10 s + 5 s
        const lock = lockName(downstreamTokenLock, downstreamCacheKey(subject, { grant: 'token-exchange', audience: 'api://other', scopes: ['api://other/read'] }));
        let lockTakenMeanwhile: boolean | undefined;
        const upstream = scriptedUpstream({
          refresh: async () => {
            clock.advance(nearTimeout);
            return freshUpstream();
          },
          exchange: async () => {
            clock.advance(nearTimeout);
            if (upstream.calls.exchange.length === 2) {
              // Another replica asking for the same token now must find the lock held, not expired under the holder.
              const release = await store.acquireLock(lock, 1_000);
              lockTakenMeanwhile = release !== undefined;
              await release?.();
            }
            throw oauthError(400, { error: 'invalid_grant' });
          },
        });
        await rejectsWith(broker(upstream, { timeoutMs: 10_000 }).getDownstreamToken({ user: { subject }, downstream: 'other' }), 'server_error');
        assert.equal(upstream.calls.exchange.length, 2);
        assert.equal(lockTakenMeanwhile, false);
      });

      it('a bare invalid_grant the renewed token fixes: the token, no failure', async () => {
        await vault.save(subject, freshUpstream());
        const renewed = freshUpstream();
        const upstream = scriptedUpstream({
          refresh: async () => renewed,
          exchange: async (request) => {
            if (request.subjectToken !== renewed.accessToken) throw oauthError(400, { error: 'invalid_grant' });
            return downstreamFor()(request);
          },
        });
        const token = await broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'other' });
        assert.match(token.accessToken, /^downstream-api:\/\/other-/);
      });

      it('a bare invalid_grant whose session the IdP then refuses to renew: the session ended, a sign-in through the IdP', async () => {
        await vault.save(subject, freshUpstream());
        const upstream = scriptedUpstream({
          refresh: async () => { throw oauthError(400, { error: 'invalid_grant' }); },
          exchange: async () => { throw oauthError(400, { error: 'invalid_grant' }); },
        });
        const failure = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'other' }), 'interaction_required');
        assert.equal((failure.cause as { reason?: string }).reason, 'refresh_token_invalid');
        assert.equal(upstream.calls.exchange.length, 1);
        assert.equal((await pendingStepUp(store, subject))?.reason, 'upstream_session_ended');
      });

      it('a refusal written by an exchange still in flight when the user signed in again does not answer the new session', async () => {
        // No refresh token: the bare invalid_grant is remembered for a minute at once. The holder's exchange with the
        // old token answers after the new sign-in cleared the user's failures, and writes its refusal behind the clear.
        const old = { accessToken: `upstream-at-${randomUUID()}`, expiresAt: clock.now() + hour };
        await vault.save(subject, old);
        let answerOld: () => void = () => undefined;
        const upstream = scriptedUpstream({
          exchange: async (request) => {
            if (request.subjectToken !== old.accessToken) return downstreamFor()(request);
            if (upstream.calls.exchange.length === 1) await new Promise<void>((resolve) => { answerOld = resolve; });
            throw oauthError(400, { error: 'invalid_grant' });
          },
        });
        const b = broker(upstream);
        const inFlight = rejectsWith(b.getDownstreamToken({ user: { subject }, downstream: 'other' }), 'server_error');
        while (upstream.calls.exchange.length === 0) await new Promise((resolve) => setImmediate(resolve));
        const signedIn = freshUpstream();
        await vault.save(subject, signedIn);
        await forgetDownstreamTokens(store, subject);
        answerOld();
        assert.equal((await inFlight).status, 502);
        const token = await b.getDownstreamToken({ user: { subject }, downstream: 'other' });
        assert.match(token.accessToken, /^downstream-api:\/\/other-/);
        assert.equal(upstream.calls.exchange.at(-1)?.subjectToken, signedIn.accessToken);
        // While the refused token is the user's, the refusal answers for its minute.
        await vault.save(subject, old);
        await forgetDownstreamTokens(store, subject);
        await rejectsWith(b.getDownstreamToken({ user: { subject }, downstream: 'other' }), 'server_error');
        const exchanges = upstream.calls.exchange.length;
        clock.advance(6_000);
        await rejectsWith(b.getDownstreamToken({ user: { subject }, downstream: 'other' }), 'server_error');
        assert.equal(upstream.calls.exchange.length, exchanges);
      });

      it('a bare invalid_grant with no refresh token to ask with: a 502, not a sign-in that would bring the same token back', async () => {
        await vault.save(subject, { accessToken: `upstream-at-${randomUUID()}`, expiresAt: clock.now() + hour });
        const upstream = scriptedUpstream({ exchange: async () => { throw oauthError(400, { error: 'invalid_grant' }); } });
        const failure = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'other' }), 'server_error');
        assert.equal(failure.status, 502);
        assert.equal(upstream.calls.refresh.length, 0);
        assert.equal(await pendingStepUp(store, subject), undefined);
      });
    });

    it('forgets an ended session once the upstream session works, and never lets one replace a pending claims challenge', async () => {
      await rememberStepUp(store, subject, { reason: 'upstream_session_ended', createdAt: clock.now() });
      await vault.save(subject, freshUpstream());
      await broker(scriptedUpstream({ exchange: downstreamFor() })).getDownstreamToken({ user: { subject }, downstream: 'graph' });
      assert.equal(await pendingStepUp(store, subject), undefined);

      const claims = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}';
      await rememberStepUp(store, subject, { reason: 'claims_challenge', claims, createdAt: clock.now() });
      await rememberStepUp(store, subject, { reason: 'upstream_session_ended', createdAt: clock.now() });
      assert.equal((await pendingStepUp(store, subject))?.claims, claims, 'the next sign-in still carries the challenge');
      await forgetDownstreamTokens(store, subject);
      const exchanging = scriptedUpstream({ exchange: downstreamFor() });
      await broker(exchanging).getDownstreamToken({ user: { subject }, downstream: 'graph' });
      assert.equal(exchanging.calls.exchange.length, 1, 'exchanged, not served from the cache');
      assert.equal((await pendingStepUp(store, subject))?.reason, 'claims_challenge', 'only an ended session is forgotten on success');
    });

    it('keeps a claims challenge another replica writes while an exchange forgets an ended session', async () => {
      const claims = '{"access_token":{"acrs":{"essential":true,"value":"c2"}}}';
      await rememberStepUp(store, subject, { reason: 'upstream_session_ended', createdAt: clock.now() });
      // Whatever this replica reads of the step-up records, the other replica's challenge lands right after the read.
      let raced = false;
      const racing: Store = Object.create(store, {
        get: {
          value: async (namespace: string, key: string) => {
            const value = await store.get(namespace, key);
            if (namespace === 'upstream-step-up' && !raced) {
              raced = true;
              await rememberStepUp(store, subject, { reason: 'claims_challenge', claims, createdAt: clock.now() });
            }
            return value;
          },
        },
      }) as Store;
      await forgetEndedSession(racing, subject);
      // No read at all now; before, the read saw the ended session and the delete took the challenge with it.
      if (!raced) await rememberStepUp(store, subject, { reason: 'claims_challenge', claims, createdAt: clock.now() });
      assert.equal((await pendingStepUp(store, subject))?.claims, claims);
    });

    it('refuses an app-only caller and an unknown downstream', async () => {
      const upstream = scriptedUpstream({ exchange: downstreamFor() });
      const failure = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject: '' }, downstream: 'graph' }), 'access_denied');
      assert.match(failure.message, /app-only/);
      await rejectsWith(
        broker(upstream).getDownstreamToken({ user: undefined as unknown as { subject: string }, downstream: 'graph' }),
        'access_denied',
      );
      await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'payroll' }), 'invalid_target');
    });
  });

  describe('an identity provider that is down or slow', () => {
    it('times out, answers temporarily_unavailable and does not retry until the failure record expires', async () => {
      await vault.save(subject, freshUpstream());
      const upstream = scriptedUpstream({ exchange: () => new Promise<never>(() => undefined) });
      const tokens = broker(upstream, { timeoutMs: 50 });
      const failure = await rejectsWith(tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
      assert.equal(failure.status, 503);
      assert.ok(failure.headers['Retry-After']);

      const queued = await Promise.allSettled(
        Array.from({ length: 10 }, () => tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' })),
      );
      assert.ok(queued.every((r) => r.status === 'rejected' && r.reason instanceof ProtocolError && r.reason.code === 'temporarily_unavailable'));
      assert.equal(upstream.calls.exchange.length, 1);

      clock.advance(6_000);
      await rejectsWith(tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
      assert.equal(upstream.calls.exchange.length, 2);
    });

    it('maps connection failures and 5xx to temporarily_unavailable', async () => {
      await vault.save(subject, freshUpstream(0));
      const refused = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) });
      const upstream = scriptedUpstream({ refresh: async () => { throw refused; } });
      await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');

      clock.advance(10_000);
      await vault.save(subject, freshUpstream());
      const down = scriptedUpstream({ exchange: async () => { throw oauthError(503, { error: 'temporarily_unavailable' }); } });
      await rejectsWith(broker(down).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
    });

    it('answers an IdP refusal classified by the upstream client 502 (its answer, not our failure), and an IdP throttling 503 with Retry-After', async () => {
      // The broker passed the upstream client's classification on with the catalogue's 500; a 429 with an OAuth body
      // was a refusal too.
      const cases: Array<[Error, string, number]> = [
        [oauthError(401, { error: 'invalid_client', error_codes: [7000215] }), 'server_error', 502],
        [oauthError(400, { error: 'unauthorized_client' }), 'server_error', 502],
        [oauthError(429, { error: 'throttled' }), 'temporarily_unavailable', 503],
        [oauthError(429, { error: 'too_many_requests' }), 'temporarily_unavailable', 503],
      ];
      for (const [thrown, code, status] of cases) {
        clock.advance(10_000);
        await vault.save(subject, freshUpstream());
        const upstream = scriptedUpstream({ exchange: async () => { throw upstreamTokenError(thrown, 'on-behalf-of'); } });
        const tokens = broker(upstream);
        const failure = await rejectsWith(tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' }), code);
        assert.equal(failure.status, status, thrown.message);
        if (status === 503) assert.ok(Number(failure.headers['Retry-After']) > 0, 'when to come back');
        // The next caller (on any replica) reads the remembered failure: the same answer, not the catalogue's 500.
        const remembered = await rejectsWith(tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' }), code);
        assert.equal(upstream.calls.exchange.length, 1);
        assert.equal(remembered.status, status, `remembered: ${thrown.message}`);
        assert.equal(remembered.headers['Retry-After'], failure.headers['Retry-After']);
      }
    });

    it("tells the first caller when to retry too, when the upstream client already called it an outage", async () => {
      // What src/upstream's client throws for an IdP answering 503 (with or without an OAuth body): classified, no
      // Retry-After of its own. The callers after the first read the remembered failure, which had one; the first did not.
      for (const thrown of [upstreamTokenError(oauthError(503, { error: 'temporarily_unavailable' }), 'on-behalf-of'), upstreamTokenError(Object.assign(new Error('unexpected HTTP response status code'), { cause: new Response('busy', { status: 503 }) }), 'on-behalf-of')]) {
        clock.advance(10_000);
        await vault.save(subject, freshUpstream());
        const upstream = scriptedUpstream({ exchange: async () => { throw thrown; } });
        const tokens = broker(upstream);
        const first = await rejectsWith(tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
        const next = await rejectsWith(tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
        assert.equal(upstream.calls.exchange.length, 1);
        assert.equal(first.headers['Retry-After'], next.headers['Retry-After']);
        assert.ok(Number(first.headers['Retry-After']) > 0);
        assert.doesNotMatch(first.message, /did not answer/, 'the IdP answered, with an error');
      }
    });

    it('reports a rejected gateway registration as a server error, not a re-consent', async () => {
      await vault.save(subject, freshUpstream());
      const upstream = scriptedUpstream({ exchange: async () => { throw oauthError(401, { error: 'invalid_client', error_description: 'AADSTS7000215' }); } });
      await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'server_error');
    });
  });

  describe('Conditional Access step-up: every Entra answer that needs the user at the IdP again', () => {
    const challenge = '{"access_token":{"polids":{"essential":true,"values":["9ab03e19-ed42-4168-b6b7-7001fb3e933a"]}}}';
    const traceId = 'b72a68c3-0926-4b8e-bc35-3150069c2800';
    /** openid-client's ResponseBodyError: the IdP's JSON body is the error's `cause`. */
    const answer = (body: Record<string, unknown>) =>
      Object.assign(new Error('server responded with an error in the response body'), { code: 'OAUTH_RESPONSE_BODY_ERROR', error: body.error, status: 400, cause: body });
    const entra = (error: string, code: number, extras: Record<string, unknown> = {}) =>
      answer({ error, error_description: `AADSTS${code}: policy text. Trace ID: ${traceId}`, error_codes: [code], trace_id: traceId, ...extras });
    // What src/upstream's client throws for each answer, as the broker receives it.
    const cases = [
      { name: 'AADSTS50076 (MFA required) with its claims challenge', error: () => entra('interaction_required', 50076, { suberror: 'basic_action', claims: challenge }), reason: 'claims_challenge', claims: challenge },
      { name: 'AADSTS50079 (MFA enrollment) with its claims challenge', error: () => entra('interaction_required', 50079, { claims: challenge }), reason: 'claims_challenge', claims: challenge },
      { name: 'AADSTS50076 without a claims challenge', error: () => entra('invalid_grant', 50076, { suberror: 'basic_action' }), reason: 'interaction_required' },
      { name: 'AADSTS53003 (blocked by Conditional Access)', error: () => entra('interaction_required', 53003), reason: 'interaction_required' },
      { name: 'AADSTS65001 (consent needed)', error: () => entra('invalid_grant', 65001, { suberror: 'consent_required' }), reason: 'consent_required' },
      { name: 'interaction_required (no AADSTS code)', error: () => answer({ error: 'interaction_required' }), reason: 'interaction_required' },
      { name: 'CAE insufficient_claims with a challenge', error: () => answer({ error: 'insufficient_claims', claims: challenge }), reason: 'claims_challenge', claims: challenge },
      { name: 'CAE insufficient_claims alone', error: () => answer({ error: 'insufficient_claims' }), reason: 'claims_challenge' },
    ] as const;
    for (const { name, error, reason, ...expected } of cases) {
      it(`${name}: 401 interaction_required, the step-up remembered for the next sign-in, nothing of the IdP's answer shown`, async () => {
        await vault.save(subject, freshUpstream());
        const upstream = scriptedUpstream({ exchange: async () => { throw upstreamTokenError(error(), 'on-behalf-of'); } });
        const failure = await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'interaction_required');
        assert.equal(failure.status, 401);
        assert.equal((failure.cause as { reason?: string }).reason, reason);
        const stepUp = await pendingStepUp(store, subject);
        assert.equal(stepUp?.reason, reason);
        assert.equal(stepUp?.claims, 'claims' in expected ? expected.claims : undefined);
        // Neither the client nor the log gets the IdP's raw description, trace id or claims challenge.
        for (const shown of [failure.message, log.lines.join('\n')]) {
          assert.doesNotMatch(shown, /policy text|polids|9ab03e19|b72a68c3/);
        }
      });
    }

    it('an answer that is not a step-up (the IdP is down) remembers none', async () => {
      await vault.save(subject, freshUpstream());
      const upstream = scriptedUpstream({ exchange: async () => { throw upstreamTokenError(answer({ error: 'temporarily_unavailable' }), 'on-behalf-of'); } });
      await rejectsWith(broker(upstream).getDownstreamToken({ user: { subject }, downstream: 'graph' }), 'temporarily_unavailable');
      assert.equal(await pendingStepUp(store, subject), undefined);
    });
  });

  it('never writes a token to the log', async () => {
    const upstreamTokens = freshUpstream(0);
    await vault.save(subject, upstreamTokens);
    const refreshed = freshUpstream();
    const upstream = scriptedUpstream({ refresh: async () => refreshed, exchange: downstreamFor() });
    const tokens = broker(upstream);
    const token = await tokens.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    const failing = scriptedUpstream({ exchange: async () => { throw oauthError(400, { error: 'invalid_grant', error_description: 'AADSTS65001' }); } });
    await broker(failing).getDownstreamToken({ user: { subject }, downstream: 'other' }).catch(() => undefined);

    const logged = log.lines.join('\n');
    assert.ok(log.lines.length >= 2, 'the broker logs what it does');
    for (const secret of [upstreamTokens.accessToken, upstreamTokens.refreshToken, refreshed.accessToken, refreshed.refreshToken, token.accessToken]) {
      assert.ok(secret && !logged.includes(secret));
    }
  });
});

describe('token broker: operations', () => {
  const clock = new ManualClock();
  const stores: Store[] = [];
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });

  it('counts outcomes in Prometheus and answers 503 when the store is down', async () => {
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    stores.push(store);
    const metrics = createMetrics({ clock });
    const vault = memoryVault();
    await vault.save(subject, { accessToken: 'a', refreshToken: 'r', expiresAt: clock.now() - 1 });
    const upstream = scriptedUpstream({
      refresh: async () => ({ accessToken: `upstream-${randomUUID()}`, expiresAt: clock.now() + hour }),
      exchange: async () => ({ accessToken: `downstream-${randomUUID()}`, expiresAt: clock.now() + hour }),
    });
    const broker = createTokenBroker({
      config: brokerConfig(),
      store,
      keyring: testKeyring(clock.now()),
      clock,
      logger: capturingLogger().logger,
      upstream,
      vault,
      metrics,
    });
    await broker.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    await broker.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    const text = await metrics.registry.metrics();
    assert.match(text, /gatehouse_broker_downstream_tokens_total\{outcome="exchanged",downstream="graph"\} 1/);
    assert.match(text, /gatehouse_broker_downstream_tokens_total\{outcome="cache_hit",downstream="graph"\} 1/);
    assert.match(text, /gatehouse_broker_upstream_refreshes_total\{outcome="refreshed"\} 1/);

    await store.close();
    const failure = await broker.getDownstreamToken({ user: { subject }, downstream: 'other' }).catch((e: unknown) => e);
    assert.ok(failure instanceof ProtocolError);
    assert.equal(failure.code, 'temporarily_unavailable');
  });

  it('forgets a user\'s cached tokens and remembered failures (a new sign-in is not answered from a stale failure)', async () => {
    const store = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    stores.push(store);
    const vault = memoryVault();
    await vault.save(subject, { accessToken: 'a', refreshToken: 'r', expiresAt: clock.now() + hour });
    let consented = false;
    const upstream = scriptedUpstream({
      exchange: async () => {
        if (!consented) throw oauthError(400, { error: 'invalid_grant', error_description: 'AADSTS65001' });
        return { accessToken: `downstream-${randomUUID()}`, expiresAt: clock.now() + hour };
      },
    });
    const broker = createTokenBroker({ config: brokerConfig(), store, keyring: testKeyring(clock.now()), clock, logger: capturingLogger().logger, upstream, vault });
    await assert.rejects(broker.getDownstreamToken({ user: { subject }, downstream: 'graph' }), { code: 'interaction_required' });
    consented = true;
    await assert.rejects(broker.getDownstreamToken({ user: { subject }, downstream: 'graph' }), { code: 'interaction_required' });
    assert.equal(upstream.calls.exchange.length, 1, 'the remembered failure answered the retry');
    assert.ok((await forgetDownstreamTokens(store, subject)) >= 1);
    const token = await broker.getDownstreamToken({ user: { subject }, downstream: 'graph' });
    assert.match(token.accessToken, /^downstream-/);
    assert.equal(upstream.calls.exchange.length, 2);
  });
});
