import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { exchangeCode, grantIdOf, obtainCode, obtainTokens, registerPublicClient, startAuthorizationServer, tokenRequest, type RegisteredClient, type TestServer } from './harness.ts';

/**
 * A refresh the store fails part-way through, at every store call it makes, in both ways a store fails: before the
 * call takes effect (Redis down) and after (the command ran, its reply was lost: a connection reset). The client is
 * told 503 and retries with the token it holds — at once, and after the reuse grace window. It must get a working
 * token, and the grant must live: a retry the store caused is not a thief. A Redis connection reset during a refresh
 * ended grants as `refresh_reuse` (reported against two replicas behind a TCP proxy dropping replies).
 */
const WRITES = ['set', 'setMany', 'setIfAbsent', 'delete', 'consume', 'deleteByIndex', 'addIndexes', 'increment'] as const;
type Fault = { call: number; when: 'before' | 'after' } | undefined;

/** A store whose n-th write (counted from `arm`) fails, before or after it took effect. */
function faultyStore(inner: Store): { store: Store; arm(fault: Fault): void; writes(): number } {
  let fault: Fault;
  let count = 0;
  const store = Object.create(inner) as Store;
  for (const method of WRITES) {
    const original = (inner[method] as (...args: unknown[]) => Promise<unknown>).bind(inner);
    (store as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => {
      count += 1;
      if (fault === undefined || count !== fault.call) return original(...args);
      if (fault.when === 'before') throw new StoreUnavailableError('injected: the store is down');
      await original(...args);
      throw new StoreUnavailableError('injected: the reply was lost');
    };
  }
  return {
    store,
    arm(next) {
      fault = next;
      count = 0;
    },
    writes: () => count,
  };
}

describe('a refresh or code exchange interrupted by the store at any write, then retried', () => {
  const clock = new ManualClock(Date.now());
  let server: TestServer;
  let client: RegisteredClient;
  let faults: ReturnType<typeof faultyStore>;
  let base: Store;

  before(async () => {
    base = await createSqliteStore({ path: ':memory:', clock, purgeIntervalMs: 0 });
    faults = faultyStore(base);
    server = await startAuthorizationServer({ store: faults.store, clock });
    client = await registerPublicClient(server);
  });
  after(async () => {
    await server?.close();
    await base?.close();
  });

  const refresh = (refreshToken: string) =>
    tokenRequest(server, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id, resource: server.resource });

  it('counts the writes of one refresh', async () => {
    const tokens = await obtainTokens(server, client);
    faults.arm(undefined);
    assert.equal((await refresh(tokens.refresh_token)).status, 200);
    assert.ok(faults.writes() >= 3, `a refresh makes ${faults.writes()} writes`);
  });

  for (const retryAfterSeconds of [0, 30]) {
    for (const when of ['before', 'after'] as const) {
      it(`keeps the grant when any write fails ${when} taking effect and the client retries ${retryAfterSeconds === 0 ? 'at once' : `after ${retryAfterSeconds} s`}`, async () => {
        faults.arm(undefined);
        const probe = await obtainTokens(server, client);
        assert.equal((await refresh(probe.refresh_token)).status, 200);
        const writes = faults.writes();
        const problems: string[] = [];
        for (let call = 1; call <= writes; call++) {
          faults.arm(undefined);
          const tokens = await obtainTokens(server, client);
          faults.arm({ call, when });
          const first = await refresh(tokens.refresh_token);
          faults.arm(undefined);
          const firstBody = (await first.json()) as { refresh_token?: string; error?: string };
          if (first.status !== 200 && first.status !== 503) problems.push(`write ${call}: first answer ${first.status} ${firstBody.error}`);
          clock.advance(retryAfterSeconds * 1000);
          // What the client holds: the new token if it was answered, else the one it sent.
          const held = first.status === 200 && firstBody.refresh_token ? firstBody.refresh_token : tokens.refresh_token;
          const retry = await refresh(held);
          const retryBody = (await retry.json()) as { refresh_token?: string; error?: string };
          if (retry.status !== 200) {
            problems.push(`write ${call}: retry ${retry.status} ${retryBody.error}`);
            continue;
          }
          const next = await refresh(retryBody.refresh_token ?? '');
          if (next.status !== 200) problems.push(`write ${call}: the token the retry gave does not refresh (${next.status})`);
          const revoked = await base.get('revoked-grant', grantIdOf(tokens.access_token));
          if (revoked !== undefined) problems.push(`write ${call}: the grant was ended`);
          // And the token the client started from is spent: presented again past the grace window, it is refused (a
          // rotated token still working would be a second chain for whoever stole it).
          clock.advance(30_000);
          const stale = await refresh(tokens.refresh_token);
          if (stale.status === 200) problems.push(`write ${call}: the first token still refreshes after the rotation`);
        }
        assert.deepEqual(problems, []);
      });
    }
  }

  for (const when of ['before', 'after'] as const) {
    it(`lets a code exchange the store failed at any write (${when} taking effect) be retried, and keeps the grant`, async () => {
      faults.arm(undefined);
      const probe = await obtainCode(server, client);
      faults.arm(undefined);
      assert.equal((await exchangeCode(server, client, probe.code, probe.verifier)).status, 200);
      const writes = faults.writes();
      const problems: string[] = [];
      for (let call = 1; call <= writes; call++) {
        faults.arm(undefined);
        const { code, verifier } = await obtainCode(server, client);
        faults.arm({ call, when });
        const first = await exchangeCode(server, client, code, verifier);
        faults.arm(undefined);
        const firstBody = (await first.json()) as { access_token?: string; error?: string };
        if (first.status === 200) continue;
        if (first.status !== 503) problems.push(`write ${call}: first answer ${first.status} ${firstBody.error}`);
        const retry = await exchangeCode(server, client, code, verifier);
        const retryBody = (await retry.json()) as { access_token?: string; error?: string };
        if (retry.status !== 200) problems.push(`write ${call}: retry ${retry.status} ${retryBody.error}`);
        else if (await base.get('revoked-grant', grantIdOf(retryBody.access_token ?? ''))) problems.push(`write ${call}: the grant was ended`);
      }
      assert.deepEqual(problems, []);
    });
  }

  it("hands out the successor a concurrent retry was answered with, and the rotated token stays spent, when its own write's reply was lost", async () => {
    // Request A records the successor, its reply is lost; before A reads the record back, a retry B (the client on
    // another replica) is answered with it. A undoing the record (the first fix) left B's token dead and the rotated
    // one open to a thief past the grace window.
    faults.arm(undefined);
    const tokens = await obtainTokens(server, client);
    let answeredToB: { status: number; body: { refresh_token?: string } } | undefined;
    let interrupted = false;
    const setIfAbsent = faults.store.setIfAbsent;
    faults.store.setIfAbsent = async (namespace, key, value, options) => {
      const created = await base.setIfAbsent(namespace, key, value, options);
      // Only A's write is interrupted: B's (and anything after) goes through.
      if (namespace !== 'refresh-successor' || interrupted) return created;
      interrupted = true;
      const b = await refresh(tokens.refresh_token);
      answeredToB = { status: b.status, body: (await b.json()) as { refresh_token?: string } };
      throw new StoreUnavailableError('injected: the reply was lost');
    };
    try {
      const a = await refresh(tokens.refresh_token);
      const aBody = (await a.json()) as { refresh_token?: string };
      assert.equal(answeredToB?.status, 200);
      assert.equal(a.status, 200, 'A read its write back: the rotation finished');
      assert.equal(aBody.refresh_token, answeredToB?.body.refresh_token, 'one chain: both were answered with the same successor');
      assert.equal((await refresh(aBody.refresh_token ?? '')).status, 200, 'and it works');
      clock.advance(30_000);
      assert.notEqual((await refresh(tokens.refresh_token)).status, 200, 'the rotated token is spent past the grace window');
    } finally {
      faults.store.setIfAbsent = setIfAbsent;
    }
  });
});
