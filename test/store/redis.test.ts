import { checkStore } from '../../src/admin/doctor.ts';
import { configSchema } from '../../src/config/schema.ts';
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { systemClock } from '../../src/runtime/clock.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { runStoreContract } from './contract.ts';
import { captureLogs } from '../support/server-context.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Makes `ms` pass for the keys under `prefix`: each TTL Redis keeps is cut by `ms`, and a key whose TTL runs out is
 * deleted, as Redis would expire it. So the contract's TTLs can be long enough that no pause of the machine expires
 * a record it is about to read back (see StoreUnderTest.advance).
 */
async function shortenTtls(redis: Redis, prefix: string, ms: number): Promise<void> {
  for (const key of await redis.keys(`${prefix}*`)) {
    const left = await redis.pttl(key);
    if (left < 0) continue; // no TTL (-1), or gone meanwhile (-2)
    if (left > ms) await redis.pexpire(key, left - ms);
    else await redis.del(key);
  }
}

/** A TCP hop in front of Redis that, while `dropping`, discards what the client sends, the connection left open. */
async function startDroppingHop(redisPort: number) {
  const sockets = new Set<Socket>();
  const hop = {
    dropping: false,
    url: '',
    breakConnections: () => {
      for (const socket of sockets) socket.destroy();
    },
    close: async () => {
      hop.breakConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = createServer((client) => {
    const upstream = connect(redisPort, '127.0.0.1');
    sockets.add(client);
    client.on('data', (chunk) => {
      if (!hop.dropping) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hop.url = `redis://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return hop;
}

describe('Redis store', () => {
  let server: RedisServer;
  let admin: Redis;
  let run = 0;

  before(async () => {
    server = await startRedisServer();
    admin = new Redis(server.url);
  });
  after(async () => {
    admin.disconnect();
    await server.stop();
  });

  // Each test gets its own key prefix, so no flush is needed and leftovers cannot leak between tests.
  runStoreContract('redis', async () => {
    const keyPrefix = `test${++run}:`;
    const store = await createRedisStore({ url: server.url, keyPrefix, clock: systemClock, purgeIntervalMs: 0 });
    return { store, advance: (ms) => shortenTtls(admin, keyPrefix, ms), dispose: () => store.close() };
  });

  it('refuses a URL whose password has a stray % with a one-line store error, not the client library\'s URIError', async () => {
    const port = new URL(server.url).port;
    await assert.rejects(createRedisStore({ url: `redis://:50%off@127.0.0.1:${port}`, keyPrefix: 'bad:', clock: systemClock }), (error: unknown) => {
      assert.ok(error instanceof StoreUnavailableError, String(error));
      assert.match(error.message, /percent-encode any % in its user name or password/);
      assert.doesNotMatch(error.message, /50%off/);
      return true;
    });
  });

  it('names a Redis that keeps nothing across a restart as a risk, and none with RDB snapshots', async () => {
    const store = await createRedisStore({ url: server.url, keyPrefix: 'persistence:', clock: systemClock, purgeIntervalMs: 0 });
    try {
      // The test server runs with --save '' --appendonly no: what an operator who copied a cache's settings has.
      const risks = (await store.configurationRisks?.()) ?? [];
      assert.equal(risks.length, 1);
      assert.match(risks[0] ?? '', /keeps nothing across a restart .* set appendonly yes/);
      await admin.config('SET', 'save', '3600 1');
      assert.deepEqual(await store.configurationRisks?.(), []);
    } finally {
      await admin.config('SET', 'save', '');
      await store.close();
    }
  });

  it('names an evicting memory policy as a risk (doctor warns, start logs it), and none under noeviction', async () => {
    const store = await createRedisStore({ url: server.url, keyPrefix: 'policy:', clock: systemClock, purgeIntervalMs: 0 });
    const doctorConfig = configSchema.parse({ store: { type: 'redis', redisUrl: server.url } });
    // Snapshots on: the persistence risk is the test above's.
    await admin.config('SET', 'save', '3600 1');
    try {
      await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
      const risks = (await store.configurationRisks?.()) ?? [];
      assert.equal(risks.length, 1);
      assert.match(risks[0] ?? '', /maxmemory-policy allkeys-lru/);
      const warned = await checkStore(async () => store, doctorConfig);
      assert.equal(warned.check.status, 'warn');
      assert.match(warned.check.detail, /allkeys-lru/);
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      assert.deepEqual(await store.configurationRisks?.(), []);
      assert.equal((await checkStore(async () => store, doctorConfig)).check.status, 'ok');
    } finally {
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'save', '');
      await store.close();
    }
  });

  it('keeps data across a client reconnect', async () => {
    const store = await createRedisStore({ url: server.url, keyPrefix: 'reconnect:', clock: systemClock });
    try {
      await store.set('grant', 'g1', { user: 'u1' }, { indexes: { userId: 'u1' } });
      const killed = await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      assert.ok(Number(killed) >= 1, 'the store connection was dropped by the server');
      let value: unknown;
      // The killed connection is re-established by the client; until then calls fail fast.
      while (value === undefined) {
        value = await store.get('grant', 'g1').catch(() => undefined);
        if (value === undefined) await sleep(20);
      }
      assert.deepEqual(value, { user: 'u1' });
      assert.deepEqual((await store.findByIndex('grant', 'userId', 'u1')).map((e) => e.key), ['g1']);
    } finally {
      await store.close();
    }
  });

  it('shares records, single-use consumes, locks and messages between two replicas', async () => {
    const a = await createRedisStore({ url: server.url, keyPrefix: 'replicas:', clock: systemClock });
    const b = await createRedisStore({ url: server.url, keyPrefix: 'replicas:', clock: systemClock });
    try {
      await a.set('grant', 'g1', { from: 'a' }, { indexes: { userId: 'u1' } });
      assert.deepEqual(await b.get('grant', 'g1'), { from: 'a' });
      assert.deepEqual((await b.findByIndex('grant', 'userId', 'u1')).map((e) => e.key), ['g1']);

      await a.set('code', 'c1', { code: 1 });
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).consume('code', 'c1')),
      );
      assert.equal(results.filter((r) => r !== undefined).length, 1);

      const lock = await a.acquireLock('refresh:u1', 10_000);
      assert.ok(lock);
      assert.equal(await b.acquireLock('refresh:u1', 10_000), undefined);
      await lock();

      const received: string[] = [];
      await b.subscribe('grant-revoked', (m) => received.push(m));
      await a.publish('grant-revoked', 'g1');
      while (received.length === 0) await sleep(5);
      assert.deepEqual(received, ['g1']);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('setMany sends the batch in one MULTI and reloads its script after Redis lost the script cache', async () => {
    const store = await createRedisStore({ url: server.url, keyPrefix: 'batch:', clock: systemClock, purgeIntervalMs: 0 });
    try {
      await admin.script('FLUSH');
      await admin.config('RESETSTAT');
      const writes = Array.from({ length: 50 }, (_, i) => ({ namespace: 'audit', key: `k${String(i).padStart(2, '0')}`, value: { i } }));
      await store.setMany(writes);
      assert.equal((await store.list('audit')).length, 50);
      const stats = await admin.info('commandstats');
      assert.match(stats, /cmdstat_exec:calls=2\b/, 'one MULTI/EXEC, and one more after NOSCRIPT');
    } finally {
      await store.close();
    }
  });

  it('writes only prefixed keys, with values as JSON envelopes and native TTLs', async () => {
    const store = await createRedisStore({ url: server.url, keyPrefix: 'shape:', clock: systemClock });
    try {
      await store.set('code', 'k1', { a: 1 }, { ttlSeconds: 60, indexes: { grantId: 'g' } });
      const keys = (await admin.keys('shape:*')).sort();
      assert.deepEqual(keys, ['shape:i:code#grantId=g', 'shape:l:code', 'shape:r:code#k1']);
      const ttl = await admin.pttl('shape:r:code#k1');
      assert.ok(ttl > 0 && ttl <= 60_000);
      assert.deepEqual(JSON.parse((await admin.get('shape:r:code#k1')) ?? 'null').v, { a: 1 });
    } finally {
      await store.close();
    }
  });
});

describe('Redis store when the connection breaks under a write', () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    await server.stop();
  });

  it('does not send the write again after reconnecting: the caller was told it failed', async () => {
    // A TCP hop that can hold what the store sends, as a frozen network does.
    const hop = await startDroppingHop(server.port);
    const store = await createRedisStore({ url: hop.url, keyPrefix: 'resend:', clock: systemClock });
    const direct = new Redis(server.url);
    try {
      await store.set('code', 'before', { ok: true });
      hop.dropping = true;
      const write = store.set('code', 'lost', { ok: true });
      // The connection breaks with the write unanswered.
      await new Promise((resolve) => setTimeout(resolve, 50));
      hop.breakConnections();
      await assert.rejects(write, StoreUnavailableError);
      hop.dropping = false;
      // Once a new command goes through, anything resent on reconnect would already have run before it.
      while (!(await store.ping().then(() => true, () => false))) await sleep(50);
      await store.get('code', 'before');
      assert.equal(await direct.exists('resend:r:code#lost'), 0, 'the failed write was not sent again');
    } finally {
      direct.disconnect();
      await store.close();
      await hop.close();
    }
  });
});

describe('Redis store behind a hop that loses bytes', () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    await server.stop();
  });

  it('answers each command with its own reply after a command timed out: the connection is made again', async () => {
    // A middlebox that drops what it is sent, the connection left open: the command times out (commandTimeout), and
    // stayed in the client's queue of commands awaiting a reply. Every later reply went to the command before it:
    // timeouts, or another command's answer, until the process restarted.
    const hop = await startDroppingHop(server.port);
    const store = await createRedisStore({ url: hop.url, keyPrefix: 'desync:', clock: systemClock, purgeIntervalMs: 0 });
    try {
      await store.set('client', 'a', { name: 'a' });
      await store.set('client', 'b', { name: 'b' });
      hop.dropping = true;
      await assert.rejects(store.get('client', 'a'), StoreUnavailableError);
      hop.dropping = false;
      let answered: unknown;
      for (let attempt = 0; attempt < 100 && answered === undefined; attempt++) {
        answered = await store.get('client', 'b').catch(() => undefined);
        if (answered === undefined) await sleep(100);
      }
      assert.deepEqual(answered, { name: 'b' });
      assert.deepEqual(await store.get('client', 'a'), { name: 'a' });
      assert.deepEqual(await store.get('client', 'b'), { name: 'b' });
    } finally {
      await store.close();
      await hop.close();
    }
  });
});

describe('Redis store whose commands all time out at once', () => {
  it('drops the connection once for all of them, not once per command', async () => {
    const server = await startRedisServer();
    const hop = await startDroppingHop(server.port);
    const { logger, logs } = captureLogs();
    const store = await createRedisStore({ url: hop.url, keyPrefix: 'frozen:', clock: systemClock, purgeIntervalMs: 0, logger });
    try {
      await store.set('client', 'a', { name: 'a' });
      hop.dropping = true;
      // Distinct keys: a read of a key already in flight may be shared.
      const reads = Array.from({ length: 20 }, (_, index) => store.get('client', `k${index}`));
      for (const read of reads) await assert.rejects(read, StoreUnavailableError);
      const drops = logs.lines().filter((line) => String(line['msg']).startsWith('Redis command timed out; reconnecting')).length;
      assert.equal(drops, 1, logs.text());
    } finally {
      hop.dropping = false;
      await store.close();
      await hop.close();
      await server.stop();
    }
  });
});

describe('Redis store when Redis goes away', () => {
  let server: RedisServer;
  let store: Store;

  before(async () => {
    server = await startRedisServer();
    store = await createRedisStore({ url: server.url, keyPrefix: 'outage:', clock: systemClock });
  });
  after(async () => {
    await store.close();
    await server.stop();
  });

  it('fails fast with a StoreUnavailableError naming host:port, then recovers when Redis returns', async () => {
    await store.set('client', 'c1', { ok: true });
    const subscribed: string[] = [];
    await store.subscribe('revocations', (m) => subscribed.push(m));
    await server.stop();

    const failure = await store.get('client', 'c1').then(
      () => assert.fail('expected the store to be unavailable'),
      (error: unknown) => error,
    );
    assert.ok(failure instanceof StoreUnavailableError);
    assert.match(failure.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${server.port} is unavailable`));
    assert.doesNotMatch(failure.message, /\n/);
    await assert.rejects(store.ping(), StoreUnavailableError);
    await assert.rejects(store.consume('client', 'c1'), StoreUnavailableError);

    await server.restart();
    let recovered = false;
    while (!recovered) {
      recovered = await store.ping().then(() => true, () => false);
      if (!recovered) await sleep(50);
    }
    await store.set('client', 'c2', { again: true });
    assert.deepEqual(await store.get('client', 'c2'), { again: true });

    // The subscriber connection re-subscribes by itself; keep publishing until one message arrives.
    while (subscribed.length === 0) {
      await store.publish('revocations', 'grant:g1');
      await sleep(50);
    }
    assert.equal(subscribed[0], 'grant:g1');
  });

  it('reports a Redis that refuses writes (out of memory under noeviction) as unavailable, not as a bug, and recovers', async () => {
    // OOM was a 500 on every endpoint (and a revocation half done); docs/operations.md promises 503.
    const admin = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await admin.connect();
    try {
      await store.set('client', 'before', { ok: true });
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      const batch = Array.from({ length: 3 }, (_, i) => ({ namespace: 'audit', key: `a-oom${i}`, value: { user: 'someone@example.com', big: 'x'.repeat(1000) } }));
      // First, before the store's health gate has seen a failure and answers without asking Redis: a batch of several
      // (the audit log's), whose MULTI Redis discards whole (EXECABORT). That was taken for a refusal of the records,
      // which were dropped instead of kept for the retry.
      for (const write of [
        () => store.setMany(batch),
        () => store.set('client', 'c-oom', { big: 'x'.repeat(1000) }),
        () => store.setIfAbsent('client', 'c-oom2', { ok: true }),
        () => store.setMany([{ namespace: 'client', key: 'c-oom3', value: { ok: true } }]),
      ]) {
        const failure = await write().then(
          () => assert.fail('expected the write to be refused'),
          (error: unknown) => error,
        );
        assert.ok(failure instanceof StoreUnavailableError, String(failure));
        assert.match(failure.message, /OOM/);
        assert.doesNotMatch(failure.message, /x{20}/, 'the value written is not in the message');
        // ioredis hangs the command on its error, arguments (the record written) included: a logged error held them.
        assert.deepEqual(Object.keys((failure.cause as { command?: object }).command ?? {}), ['name']);
        for (const queued of (failure.cause as { previousErrors?: Array<{ command?: object }> }).previousErrors ?? []) {
          assert.deepEqual(Object.keys(queued.command ?? {}), ['name'], 'nor the commands of a discarded MULTI');
        }
        assert.doesNotMatch(JSON.stringify(failure.cause, Object.getOwnPropertyNames(failure.cause)), /someone@example\.com/);
      }
      // Reads run as scripts, which Redis refuses too while over its limit: unavailable as well, never a bug.
      await assert.rejects(store.get('client', 'before'), StoreUnavailableError);
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      admin.disconnect();
    }
    // The store's health gate lets writes through again once Redis answers (store-health.ts).
    let stored = false;
    for (let attempt = 0; attempt < 100 && !stored; attempt++) {
      stored = await store.set('client', 'after', { ok: true }).then(() => true, () => false);
      if (!stored) await sleep(50);
    }
    assert.deepEqual(await store.get('client', 'after'), { ok: true });
  });

  it('refuses to start against an address where nothing answers, with a one-line error', async () => {
    const dead = await startRedisServer();
    const url = dead.url;
    await dead.stop();
    await assert.rejects(
      createRedisStore({ url, keyPrefix: 'x:', clock: systemClock }),
      (error: unknown) =>
        error instanceof StoreUnavailableError &&
        error.message.startsWith(`Redis at 127.0.0.1:${dead.port} is unreachable`) &&
        !error.message.includes('\n'),
    );
  });
});

describe('Redis store with a password', () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedisServer({ password: 's3cret-pass' });
  });
  after(async () => {
    await server.stop();
  });

  it('authenticates with the password in the URL', async () => {
    const store = await createRedisStore({ url: server.url, keyPrefix: 'auth:', clock: systemClock });
    try {
      await store.set('client', 'c1', 1);
      assert.equal(await store.get('client', 'c1'), 1);
    } finally {
      await store.close();
    }
  });

  it('rejects a wrong or missing password with a clear error that does not echo the password', async () => {
    for (const url of [server.url.replace('s3cret-pass', 'wrong-pass'), `redis://127.0.0.1:${server.port}`]) {
      const failure = await createRedisStore({ url, keyPrefix: 'auth:', clock: systemClock }).then(
        () => assert.fail('expected authentication to fail'),
        (error: unknown) => error,
      );
      assert.ok(failure instanceof StoreUnavailableError);
      assert.match(failure.message, /WRONGPASS|NOAUTH/);
      assert.match(failure.message, /check the password/);
      assert.doesNotMatch(failure.message, /wrong-pass|s3cret-pass/);
    }
  });
});

describe('Redis store over TLS (rediss://)', () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedisServer({ tls: true, password: 'tls-pass' });
  });
  after(async () => {
    await server.stop();
  });

  it('connects, stores and delivers pub/sub over TLS with the server certificate trusted', async () => {
    assert.match(server.url, /^rediss:\/\//);
    const store = await createRedisStore({
      url: server.url,
      keyPrefix: 'tls:',
      clock: systemClock,
      tls: { ca: server.ca },
    });
    try {
      await store.set('client', 'c1', { tls: true });
      assert.deepEqual(await store.get('client', 'c1'), { tls: true });
      const received: string[] = [];
      await store.subscribe('events', (m) => received.push(m));
      while (received.length === 0) {
        await store.publish('events', 'hello');
        await sleep(20);
      }
      assert.equal(received[0], 'hello');
    } finally {
      await store.close();
    }
  });

  it('refuses a server certificate it does not trust, with a clear error', async () => {
    await assert.rejects(
      createRedisStore({ url: server.url, keyPrefix: 'tls:', clock: systemClock }),
      (error: unknown) =>
        error instanceof StoreUnavailableError &&
        error.message.startsWith(`Redis at 127.0.0.1:${server.port} is unreachable`) &&
        !error.message.includes('tls-pass'),
    );
  });
});
