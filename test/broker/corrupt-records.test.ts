import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createTokenBroker, storeVault } from '../../src/broker/token-broker.ts';
import { downstreamTokenRecord } from '../../src/records/broker.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { findRecords, listRecords, readRecord, RecordInvalidError } from '../../src/store/record-access.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError, type Store } from '../../src/store/store.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';
import { brokerConfig, capturingLogger, scriptedUpstream, testKeyring } from './support/fixtures.ts';
import type { DownstreamTokenRequest } from '../../src/upstream/types.ts';

/**
 * A record whose stored text is not JSON (a write cut off: `{"v":{"sealed":1}`, a hand edit) on either store. The
 * store threw a SyntaxError at every read of it, which the broker answered as its store being down: a lasting 503
 * "Downstream tokens are unavailable" for that user until the record expired. A cache reads it as a miss now, and the
 * exchange that follows overwrites it; a record that must not be guessed at is GH_RECORD_INVALID, never an outage.
 */
interface Backend {
  name: string;
  open(clock: ManualClock): Promise<Store>;
  /** Replaces the stored text of every record of `namespace` with its first `keep` characters. */
  truncate(namespace: string, keep: number): Promise<number>;
  close(): Promise<void>;
}

async function sqliteBackend(): Promise<Backend> {
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-corrupt-'));
  const path = join(dir, 'store.db');
  return {
    name: 'SQLite',
    open: (clock) => createSqliteStore({ path, clock, purgeIntervalMs: 0 }),
    async truncate(namespace, keep) {
      const db = new DatabaseSync(path);
      try {
        return Number(db.prepare('UPDATE records SET value = substr(value, 1, ?) WHERE namespace = ?').run(keep, namespace).changes);
      } finally {
        db.close();
      }
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

async function redisBackend(server: RedisServer): Promise<Backend> {
  const prefix = `corrupt${randomUUID().slice(0, 8)}:`;
  const raw = new Redis(server.url, { lazyConnect: true });
  await raw.connect();
  return {
    name: 'Redis',
    open: (clock) => createRedisStore({ url: server.url, keyPrefix: prefix, clock, purgeIntervalMs: 0 }),
    async truncate(namespace, keep) {
      const keys = await raw.keys(`${prefix}r:${namespace}#*`);
      for (const key of keys) {
        const text = await raw.get(key);
        // KEEPTTL: the record stays as long-lived as it was; only its text is cut.
        if (text !== null) await raw.set(key, text.slice(0, keep), 'KEEPTTL');
      }
      return keys.length;
    },
    close: async () => {
      raw.disconnect();
    },
  };
}

describe('a stored record that is not JSON', () => {
  let redis: RedisServer;
  const backends: Backend[] = [];
  before(async () => {
    redis = await startRedisServer();
    backends.push(await sqliteBackend(), await redisBackend(redis));
  });
  after(async () => {
    await Promise.all(backends.map((backend) => backend.close()));
    await redis.stop();
  });

  const subject = 'contoso-tenant/user-oid-corrupt';
  const hour = 3_600_000;

  async function setUp(backend: Backend) {
    const clock = new ManualClock();
    const store = await backend.open(clock);
    const keyring = testKeyring(clock.now());
    const upstream = scriptedUpstream({
      exchange: async (request: DownstreamTokenRequest) => ({ accessToken: `downstream-${randomUUID()}`, expiresAt: clock.now() + hour, scope: request.scopes.join(' ') }),
    });
    const log = capturingLogger();
    const broker = createTokenBroker({ config: brokerConfig(), store, keyring, clock, logger: log.logger, upstream, sleep: async () => undefined });
    await storeVault({ store, keyring, clock }).save(subject, { accessToken: `upstream-at-${randomUUID()}`, refreshToken: 'rt', expiresAt: clock.now() + 10 * hour });
    return { store, broker, upstream };
  }

  for (const [index, name] of ['SQLite', 'Redis'].entries()) {
    it(`is a cache miss for a cached downstream token, then overwritten (${name})`, async () => {
      const backend = backends[index]!;
      const { store, broker, upstream } = await setUp(backend);
      try {
        const first = await broker.getDownstreamToken({ user: { subject }, downstream: 'graph' });
        assert.equal(await backend.truncate('downstream-token', 18), 1, 'the cached token was cut off');
        const second = await broker.getDownstreamToken({ user: { subject }, downstream: 'graph' });
        assert.notEqual(second.accessToken, first.accessToken);
        assert.equal(upstream.calls.exchange.length, 2, 'exchanged again: a miss');
        const third = await broker.getDownstreamToken({ user: { subject }, downstream: 'graph' });
        assert.equal(third.accessToken, second.accessToken, 'the exchange replaced the cut-off record');
        assert.equal(upstream.calls.exchange.length, 2);
      } finally {
        await store.close();
      }
    });

    it(`is no upstream session for the user's sealed tokens: a sign-in, not a 503 (${name})`, async () => {
      const backend = backends[index]!;
      const { store, broker } = await setUp(backend);
      try {
        assert.equal(await backend.truncate('upstream-tokens', 10), 1);
        await assert.rejects(broker.getDownstreamToken({ user: { subject }, downstream: 'other' }), (error: unknown) => {
          assert.equal((error as { code?: unknown }).code, 'interaction_required');
          assert.equal((error as { cause?: { reason?: unknown } }).cause?.reason, 'no_upstream_session');
          return true;
        });
      } finally {
        await store.close();
      }
    });

    it(`is GH_RECORD_INVALID where invalid records are refused, skipped where listings skip (${name})`, async () => {
      const backend = backends[index]!;
      const { store, broker } = await setUp(backend);
      try {
        await broker.getDownstreamToken({ user: { subject }, downstream: 'graph' });
        const [entry] = await listRecords(store, downstreamTokenRecord);
        assert.ok(entry);
        await backend.truncate('downstream-token', 18);
        const refused = (error: unknown) => {
          assert.ok(error instanceof RecordInvalidError, String(error));
          assert.ok(!(error instanceof StoreUnavailableError));
          assert.equal(error.code, 'GH_RECORD_INVALID');
          assert.match(error.message, /not JSON/);
          return true;
        };
        await assert.rejects(readRecord(store, downstreamTokenRecord, entry.key), refused);
        await assert.rejects(findRecords(store, downstreamTokenRecord, 'subject', subject), refused);
        assert.deepEqual(await listRecords(store, downstreamTokenRecord, { invalid: 'skip' }), []);
        assert.equal(await readRecord(store, downstreamTokenRecord, entry.key, { invalid: 'absent' }), undefined);
      } finally {
        await store.close();
      }
    });
  }
});
