import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ProtocolError } from '../../src/errors/protocol-error.ts';
import { ManualClock, systemClock } from '../../src/runtime/clock.ts';
import { createSessionBindings, type SessionBinding } from '../../src/proxy/session-bindings.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';

/** Session bindings are cached (LRU) so the per-message path skips the store, without caching the ownership check. */
let store: Store;
let reads: string[] = [];
let counted: Store;

before(async () => {
  store = await createSqliteStore({ path: ':memory:', clock: systemClock, purgeIntervalMs: 0 });
  // The same store, recording which keys are read.
  counted = new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'get') {
        return (namespace: string, key: string) => {
          reads.push(key);
          return target.get(namespace, key);
        };
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
});
after(async () => {
  await store?.close();
});

const binding = (subject: string): SessionBinding => ({ subject, clientId: 'client-1', route: '/mcp', createdAt: 1, backendMessageUrl: 'http://backend/messages?s=1' });
const isNotFound = (error: unknown) => error instanceof ProtocolError && error.status === 404;

describe('session bindings cache', () => {
  it('answers repeated lookups without reading the store, and still refuses another user or route', async () => {
    const sessions = createSessionBindings(counted);
    await sessions.bind('legacy-sse-session', 's1', binding('tenant/alice'), 60);
    reads = [];
    for (let i = 0; i < 3; i++) {
      const found = await sessions.require('legacy-sse-session', 's1', { subject: 'tenant/alice', clientId: 'client-1' }, '/mcp');
      assert.equal(found.backendMessageUrl, 'http://backend/messages?s=1');
    }
    assert.deepEqual(reads, []);
    await assert.rejects(sessions.require('legacy-sse-session', 's1', { subject: 'tenant/mallory', clientId: 'client-1' }, '/mcp'), isNotFound);
    await assert.rejects(sessions.require('legacy-sse-session', 's1', { subject: 'tenant/alice', clientId: 'client-1' }, '/other'), isNotFound);
    // The same user through another MCP client is a stranger to the session.
    await assert.rejects(sessions.require('legacy-sse-session', 's1', { subject: 'tenant/alice', clientId: 'other-client' }, '/mcp'), isNotFound);
  });

  it('lets any client of the user use a binding written before clients were kept', async () => {
    const sessions = createSessionBindings(counted);
    const { clientId: _clientId, ...older } = binding('tenant/alice');
    await sessions.bind('legacy-sse-session', 'old', older, 60);
    const found = await sessions.require('legacy-sse-session', 'old', { subject: 'tenant/alice', clientId: 'any' }, '/mcp');
    assert.equal(found.subject, 'tenant/alice');
  });

  it('reads the store on another replica once, then caches; forgetting a session ends it everywhere it is asked', async () => {
    const first = createSessionBindings(counted);
    const second = createSessionBindings(counted);
    await first.bind('legacy-sse-session', 's2', binding('tenant/alice'), 60);
    reads = [];
    await second.require('legacy-sse-session', 's2', { subject: 'tenant/alice', clientId: 'client-1' }, '/mcp');
    await second.require('legacy-sse-session', 's2', { subject: 'tenant/alice', clientId: 'client-1' }, '/mcp');
    assert.deepEqual(reads, ['s2']);
    await first.forget('legacy-sse-session', 's2');
    await assert.rejects(first.require('legacy-sse-session', 's2', { subject: 'tenant/alice', clientId: 'client-1' }, '/mcp'), isNotFound);
  });

  it('binds an id the backend issues again to its new owner, ending the earlier owner\'s session on every replica', async () => {
    // A backend whose ids repeat (a counter after a restart) issues `1` to bob while alice's binding of `1` lives.
    const endedOnFirst: string[] = [];
    const endedOnSecond: string[] = [];
    const first = createSessionBindings(counted);
    const second = createSessionBindings(counted);
    await first.start((kind, id) => endedOnFirst.push(`${kind} ${id}`));
    await second.start((kind, id) => endedOnSecond.push(`${kind} ${id}`));
    try {
      const alice = { subject: 'tenant/alice', clientId: 'client-1' };
      const bob = { subject: 'tenant/bob', clientId: 'client-1' };
      await first.bind('mcp-session', '1', binding('tenant/alice'), 60);
      await second.require('mcp-session', '1', alice, '/mcp');
      await first.bind('mcp-session', '1', binding('tenant/bob'), 60);
      assert.equal((await first.require('mcp-session', '1', bob, '/mcp')).subject, 'tenant/bob');
      await assert.rejects(first.require('mcp-session', '1', alice, '/mcp'), isNotFound);
      for (let wait = 0; wait < 100 && endedOnSecond.length === 0; wait++) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.deepEqual(endedOnSecond, ['mcp-session 1'], "the other replica hears the earlier owner's session ended");
      await assert.rejects(second.require('mcp-session', '1', alice, '/mcp'), isNotFound, 'its cached copy of alice\'s binding is dropped');
      assert.ok(endedOnFirst.includes('mcp-session 1'));
      // Issued again to its own owner (a client that dropped the header): nothing ends.
      endedOnFirst.length = 0;
      await first.bind('mcp-session', '1', binding('tenant/bob'), 60);
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(endedOnFirst, []);
    } finally {
      await first.stop();
      await second.stop();
    }
  });

  it("keeps a session another route's backend issues the same id for, and reads a cached binding again after a minute", async () => {
    const alice = { subject: 'tenant/alice', clientId: 'client-1' };
    const clock = new ManualClock(1_700_000_000_000);
    // The message of a re-bind never reaches the second replica (pub/sub is at most once).
    const deaf = new Proxy(counted, {
      get(target, property, receiver) {
        if (property === 'subscribe') return () => Promise.resolve(() => Promise.resolve());
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const first = createSessionBindings(counted, 100, {}, clock);
    const second = createSessionBindings(deaf, 100, {}, clock);
    await first.start(() => undefined);
    await second.start(() => undefined);
    try {
      await first.bind('mcp-session', 'shared-id', binding('tenant/alice'), 60);
      // Another route's backend issues the same id to bob: alice's session on /mcp is not ended by it.
      await first.bind('mcp-session', 'shared-id', { ...binding('tenant/bob'), route: '/other' }, 60);
      assert.equal((await first.require('mcp-session', 'shared-id', alice, '/mcp')).subject, 'tenant/alice');

      await second.require('mcp-session', 'shared-id', alice, '/mcp');
      // The same route's backend issues it again, to bob; the second replica keeps its cached copy of alice's…
      await first.bind('mcp-session', 'shared-id', binding('tenant/bob'), 60);
      assert.equal((await second.require('mcp-session', 'shared-id', alice, '/mcp')).subject, 'tenant/alice');
      // …for a minute at most.
      clock.advance(60_000);
      await assert.rejects(second.require('mcp-session', 'shared-id', alice, '/mcp'), isNotFound);
      assert.equal((await second.require('mcp-session', 'shared-id', { subject: 'tenant/bob', clientId: 'client-1' }, '/mcp')).subject, 'tenant/bob');
    } finally {
      await first.stop();
      await second.stop();
    }
  });

  it('serves a cached binding through a store outage, when the minute is up and the store cannot be read', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    let storeDown = false;
    const flaky = new Proxy(counted, {
      get(target, property, receiver) {
        if (property === 'get') return (namespace: string, key: string) => (storeDown ? Promise.reject(new StoreUnavailableError('the store is unavailable')) : target.get(namespace, key));
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const sessions = createSessionBindings(flaky, 100, {}, clock);
    const alice = { subject: 'tenant/alice', clientId: 'client-1' };
    await sessions.bind('mcp-session', 'through-outage', binding('tenant/alice'), 60);
    await sessions.require('mcp-session', 'through-outage', alice, '/mcp');
    storeDown = true;
    clock.advance(120_000);
    assert.equal((await sessions.require('mcp-session', 'through-outage', alice, '/mcp')).subject, 'tenant/alice');
    // A binding this replica never read is still a 503 (the store's error), never a guess.
    await assert.rejects(sessions.require('mcp-session', 'never-read', alice, '/mcp'), StoreUnavailableError);
  });

  it('lists a user\'s sessions on a route oldest first, and forgets one only while it is still the one listed', async () => {
    const sessions = createSessionBindings(counted);
    const owner = { subject: 'tenant/lister', route: '/mcp' };
    await sessions.bind('mcp-session', 'listed-2', { ...binding('tenant/lister'), clientId: 'client-2', createdAt: 2 }, 60);
    await sessions.bind('mcp-session', 'listed-1', { ...binding('tenant/lister'), createdAt: 1 }, 60);
    await sessions.bind('mcp-session', 'elsewhere', { ...binding('tenant/lister'), route: '/other', createdAt: 0 }, 60);
    const listed = await sessions.sessionsOf(owner, 10);
    assert.deepEqual(listed, [
      { sessionId: 'listed-1', clientId: 'client-1', createdAt: 1 },
      { sessionId: 'listed-2', clientId: 'client-2', createdAt: 2 },
    ]);
    // Issued again, to bob, between the listing and the forgetting.
    await sessions.bind('mcp-session', 'listed-1', { ...binding('tenant/bob'), createdAt: 3 }, 60);
    assert.equal(await sessions.forgetOwned(listed[0]!, owner), false);
    assert.equal((await sessions.require('mcp-session', 'listed-1', { subject: 'tenant/bob', clientId: 'client-1' }, '/mcp')).subject, 'tenant/bob');
    assert.equal(await sessions.forgetOwned({ ...listed[1]!, createdAt: 99 }, owner), false, 'another createdAt: not the session listed');
    assert.equal(await sessions.forgetOwned({ ...listed[1]!, clientId: 'client-1' }, owner), false, 'another client: not the session listed');
    // Two openings listed it at once: one of them forgets it (and sends the backend its DELETE), not both.
    assert.deepEqual((await Promise.all([sessions.forgetOwned(listed[1]!, owner), sessions.forgetOwned(listed[1]!, owner)])).sort(), [false, true]);
    await assert.rejects(sessions.require('mcp-session', 'listed-2', { subject: 'tenant/lister', clientId: 'client-2' }, '/mcp'), isNotFound);

    // A store that cannot say whether it deleted: the session ends here at once, the delete retried (as forget).
    await sessions.bind('mcp-session', 'listed-3', { ...binding('tenant/lister'), createdAt: 4 }, 60);
    const refusing = new Proxy(counted, {
      get(target, property, receiver) {
        if (property === 'delete') return () => Promise.reject(new StoreUnavailableError('the store is unavailable'));
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const outage = createSessionBindings(refusing, 10, { firstDelayMs: 60_000 });
    const endedHere: string[] = [];
    await outage.start((kind, id) => endedHere.push(`${kind} ${id}`));
    // True: the caller goes on to send the backend its DELETE, which ends it there whatever the binding does meanwhile.
    assert.equal(await outage.forgetOwned({ sessionId: 'listed-3', clientId: 'client-1', createdAt: 4 }, owner), true);
    assert.ok(endedHere.includes('mcp-session listed-3'), "this replica's streams of it are cut at once");
    await outage.stop();
  });

  it('evicts the least recently used binding when full', async () => {
    const sessions = createSessionBindings(counted, 2);
    await sessions.bind('legacy-sse-session', 'a', binding('tenant/alice'), 60);
    await sessions.bind('legacy-sse-session', 'b', binding('tenant/alice'), 60);
    await sessions.require('legacy-sse-session', 'a', { subject: 'tenant/alice', clientId: 'client-1' }, '/mcp');
    await sessions.bind('legacy-sse-session', 'c', binding('tenant/alice'), 60);
    reads = [];
    await sessions.require('legacy-sse-session', 'a', { subject: 'tenant/alice', clientId: 'client-1' }, '/mcp');
    assert.deepEqual(reads, [], 'the recently used binding stayed cached');
    await sessions.require('legacy-sse-session', 'b', { subject: 'tenant/alice', clientId: 'client-1' }, '/mcp');
    assert.deepEqual(reads, ['b'], 'the least recently used binding was evicted');
  });

  it('retries the deletion of an ended session the store could not delete a bounded number of times, and stops at stop()', async () => {
    let deletes = 0;
    const down = new Proxy(store, {
      get(target, property, receiver) {
        if (property === 'delete') {
          return () => {
            deletes += 1;
            return Promise.reject(new StoreUnavailableError('the store is unavailable'));
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const sessions = createSessionBindings(down, 10, { firstDelayMs: 5, tries: 3 });
    await sessions.bind('mcp-session', 'gone', binding('tenant/alice'), 60);
    await sessions.forget('mcp-session', 'gone');
    for (let wait = 0; wait < 100 && deletes < 4; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(deletes, 4, 'the first attempt and three retries, then the TTL');

    deletes = 0;
    const stopped = createSessionBindings(down, 10, { firstDelayMs: 50, tries: 3 });
    await stopped.start(() => undefined);
    await stopped.forget('mcp-session', 'other');
    await stopped.stop();
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(deletes, 1, 'no retry after stop()');

    // A retry already waiting on the store when stop() comes schedules no other when it fails.
    let calls = 0;
    let failRunning: (() => void) | undefined;
    const slow = new Proxy(store, {
      get(target, property, receiver) {
        if (property === 'delete') {
          return () => {
            calls += 1;
            if (calls === 1) return Promise.reject(new StoreUnavailableError('the store is unavailable'));
            return new Promise((_resolve, reject) => (failRunning = () => reject(new StoreUnavailableError('the store is unavailable'))));
          };
        }
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const running = createSessionBindings(slow, 10, { firstDelayMs: 5, tries: 5 });
    await running.start(() => undefined);
    await running.forget('mcp-session', 'in-flight');
    for (let wait = 0; wait < 100 && failRunning === undefined; wait++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(failRunning, 'the retry is waiting on the store');
    await running.stop();
    failRunning();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(calls, 2, 'nothing scheduled after stop()');
  });
});
