import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import { systemClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
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
} from './harness.ts';

/**
 * A refresh the store fails part-way through: the presented token is already consumed when the write that follows
 * fails, and the client is told 503. Its retry after the outage — past the reuse grace window — used to be "reuse":
 * the grant ended as a theft and the user was signed out. No successor was ever handed out, so the retry finishes the
 * rotation instead; a rotation that did finish still ends the grant on reuse. A code exchange is the same: the code
 * consumed, no token handed out, the retry was a "replay".
 */
describe('the token endpoint interrupted by a store outage', () => {
  let server: TestServer;
  let client: RegisteredClient;
  let sqlite: Store;
  /** The namespace whose next write fails as in an outage (once). */
  let failNext: string | undefined;
  /** Writes to `namespace` wait until `count` of them arrived, then all go on (two requests at the same step). */
  let gate: { namespace: string; count: number; waiting: Array<() => void> } | undefined;

  before(async () => {
    sqlite = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
    const failing = (method: 'set' | 'setIfAbsent') => (namespace: string, ...rest: unknown[]) => {
      if (namespace === failNext) {
        failNext = undefined;
        return Promise.reject(new StoreUnavailableError('the store is unavailable'));
      }
      const held = gate;
      if (held?.namespace === namespace) {
        return new Promise<void>((resolve) => {
          held.waiting.push(resolve);
          if (held.waiting.length < held.count) return;
          gate = undefined;
          for (const go of held.waiting) go();
        }).then(() => (sqlite[method] as (...args: unknown[]) => Promise<unknown>).call(sqlite, namespace, ...rest));
      }
      return (sqlite[method] as (...args: unknown[]) => Promise<unknown>).call(sqlite, namespace, ...rest);
    };
    const store = new Proxy(sqlite, {
      get(target, property, receiver) {
        if (property === 'set' || property === 'setIfAbsent') return failing(property);
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    server = await startAuthorizationServer({ store, authorization: { refreshReuseGraceSeconds: 10 } });
    client = await registerPublicClient(server);
  });
  afterEach(() => {
    mock.timers.reset();
  });
  after(async () => {
    await server.close();
    await sqlite.close();
  });

  const refresh = (refreshToken: string) => tokenRequest(server, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
  const isRevoked = async (gid: string) => (await sqlite.get('revoked-grant', gid)) !== undefined;

  for (const [step, namespace] of [
    ['saving the new refresh token', 'oidc:RefreshToken'],
    ['recording the successor (after the provider answered)', 'refresh-successor'],
  ] as const) {
    it(`answers 503 in OAuth JSON when the store fails ${step}, and the retry after the outage finishes the rotation`, async () => {
      mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const tokens = await obtainTokens(server, client);
      const gid = grantIdOf(tokens.access_token);

      failNext = namespace;
      const failed = await refresh(tokens.refresh_token);
      assert.equal(failed.status, 503);
      assert.match(failed.headers.get('content-type') ?? '', /^application\/json/);
      assert.ok(Number(failed.headers.get('retry-after')) >= 1);
      assert.equal(((await failed.json()) as { error: string }).error, 'temporarily_unavailable');
      assert.equal(failNext, undefined, 'the fault was met');

      // The outage lasted a minute: well past the 10 s grace window.
      mock.timers.tick(60_000);
      const retried = await refresh(tokens.refresh_token);
      assert.equal(retried.status, 200, await retried.clone().text());
      const successor = (await retried.json()) as { refresh_token: string; access_token: string };
      assert.equal(grantIdOf(successor.access_token), gid);
      assert.equal(await isRevoked(gid), false, 'the grant was not ended as a theft');

      // The chain goes on from the successor; the old token, its rotation now finished, is reuse again.
      const next = await refresh(successor.refresh_token);
      assert.equal(next.status, 200);
      await next.body?.cancel();
      mock.timers.tick(11_000);
      const reuse = await refresh(tokens.refresh_token);
      assert.equal(reuse.status, 400);
      await reuse.body?.cancel();
      assert.equal(await isRevoked(gid), true);
    });
  }

  for (const [step, namespace] of [
    ['saving the refresh token', 'oidc:RefreshToken'],
    ['recording that the code was exchanged (after the provider answered)', 'code-exchanged'],
  ] as const) {
    it(`answers a code exchange 503 when the store fails ${step}, and the retry finishes it instead of ending the grant`, async () => {
      mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const { code, verifier } = await obtainCode(server, client);

      failNext = namespace;
      const failed = await exchangeCode(server, client, code, verifier);
      assert.equal(failed.status, 503, await failed.clone().text());
      assert.match(failed.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(((await failed.json()) as { error: string }).error, 'temporarily_unavailable');
      assert.equal(failNext, undefined, 'the fault was met');

      // The client retries after the outage, inside the code's 60 s lifetime.
      mock.timers.tick(20_000);
      const retried = await exchangeCode(server, client, code, verifier);
      assert.equal(retried.status, 200, await retried.clone().text());
      const tokens = (await retried.json()) as { access_token: string; refresh_token: string };
      const gid = grantIdOf(tokens.access_token);
      assert.equal(await isRevoked(gid), false, 'the grant was not ended as a replay');
      const refreshed = await refresh(tokens.refresh_token);
      assert.equal(refreshed.status, 200, 'the tokens of the retry work');
      await refreshed.body?.cancel();

      // The exchange finished: the same code again is a replay, which ends the grant.
      const replay = await exchangeCode(server, client, code, verifier);
      assert.equal(replay.status, 400);
      assert.equal(((await replay.json()) as { error: string }).error, 'invalid_grant');
      assert.equal(await isRevoked(gid), true);
    });
  }

  it('ends the grant when a tolerated second redemption fails for any reason but the store, as the atomic consume did', async () => {
    // The tolerance is for finishing an exchange the store interrupted; a second redemption that then fails (here a
    // resource that is not the one authorized) got no tokens but proved someone else holds the code and verifier.
    const { code, verifier } = await obtainCode(server, client);
    failNext = 'oidc:RefreshToken';
    const failed = await exchangeCode(server, client, code, verifier);
    assert.equal(failed.status, 503);
    await failed.body?.cancel();
    const replays = async () => (await sqlite.list<{ reason?: string }>('revoked-grant')).filter((entry) => entry.value.reason === 'code_replay').length;
    const before = await replays();
    const wrong = await tokenRequest(server, {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: client.redirect_uris[0] ?? '',
      client_id: client.client_id,
      resource: 'https://elsewhere.example.test/mcp',
    });
    assert.equal(wrong.status, 400);
    await wrong.body?.cancel();
    assert.equal(await replays(), before + 1, 'the grant ended as a code replay');
    const retried = await exchangeCode(server, client, code, verifier);
    assert.equal(retried.status, 400, 'the code is dead: its grant ended');
    assert.equal(((await retried.json()) as { error: string }).error, 'invalid_grant');
  });

  it('ends the grant when two exchanges of one code both get as far as their tokens: only one may finish', async () => {
    // The tolerance lets a consumed code be exchanged again while no exchange finished; two parties at once both
    // get that far, and the one that does not record the finish ends the grant, as a replay.
    const { code, verifier } = await obtainCode(server, client);
    gate = { namespace: 'code-exchanged', count: 2, waiting: [] };
    const responses = await Promise.all([exchangeCode(server, client, code, verifier), exchangeCode(server, client, code, verifier)]);
    assert.equal(gate, undefined, 'both exchanges reached the finish');
    assert.deepEqual(responses.map((response) => response.status).sort(), [200, 400]);
    const winner = responses.find((response) => response.status === 200);
    const loser = responses.find((response) => response.status === 400);
    assert.ok(winner !== undefined && loser !== undefined);
    const tokens = (await winner.json()) as { access_token: string; refresh_token: string };
    assert.equal(((await loser.json()) as { error: string }).error, 'invalid_grant');
    assert.equal((await sqlite.get<{ reason?: string }>('revoked-grant', grantIdOf(tokens.access_token)))?.reason, 'code_replay', 'the grant ended as a replay');
    const refreshed = await refresh(tokens.refresh_token);
    assert.equal(refreshed.status, 400, "the winner's refresh token went with it");
    await refreshed.body?.cancel();
  });

  it('ends the grant of a revoked refresh token even when the store failed the first attempt part-way (RFC 7009)', async () => {
    // oidc-provider deleted the token, then ended the grant: a store failing in between left the grant's access
    // tokens working, and the client's retry found no token and got 200.
    const tokens = await obtainTokens(server, client);
    const gid = grantIdOf(tokens.access_token);
    const revoke = () =>
      fetch(`${server.publicUrl}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: tokens.refresh_token, token_type_hint: 'refresh_token', client_id: client.client_id }).toString(),
      });
    failNext = 'revoked-grant';
    const failed = await revoke();
    assert.equal(failed.status, 503);
    await failed.body?.cancel();
    assert.equal(failNext, undefined, 'the fault was met');
    const retried = await revoke();
    assert.equal(retried.status, 200);
    await retried.body?.cancel();
    assert.equal(await isRevoked(gid), true, 'the retry ended the grant: its access tokens are refused');
  });
});
