import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/runtime/clock.ts';
import { openStore } from '../../src/store/open-store.ts';
import { StoreUnavailableError } from '../../src/store/store.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';

describe('openStore', () => {
  let dir: string;
  let redis: RedisServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-open-store-'));
    redis = await startRedisServer();
  });
  after(async () => {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const base = { keyPrefix: 'open:', purgeIntervalMs: 60_000 };

  it('opens SQLite at the configured path, creating its directory', async () => {
    const sqlitePath = join(dir, 'state', 'gatehouse.db');
    const store = await openStore({ ...base, type: 'sqlite', sqlitePath }, { clock: new ManualClock() });
    try {
      assert.equal(store.kind, 'sqlite');
      await store.set('client', 'c1', 1);
      assert.ok((await stat(sqlitePath)).isFile());
    } finally {
      await store.close();
    }
  });

  it('opens Redis at the configured URL', async () => {
    const store = await openStore(
      { ...base, type: 'redis', sqlitePath: 'unused', redisUrl: redis.url },
      { clock: new ManualClock() },
    );
    try {
      assert.equal(store.kind, 'redis');
      await store.ping();
    } finally {
      await store.close();
    }
  });

  it('names the missing setting when redis has no URL', async () => {
    await assert.rejects(
      openStore({ ...base, type: 'redis', sqlitePath: 'unused' }, { clock: new ManualClock() }),
      (error: unknown) => error instanceof StoreUnavailableError && /store\.redisUrl is required/.test(error.message),
    );
  });

  it('explains a SQLite path that cannot be opened', async () => {
    const blocked = join(dir, 'file-not-dir');
    const first = await openStore({ ...base, type: 'sqlite', sqlitePath: blocked }, { clock: new ManualClock() });
    await first.close();
    await assert.rejects(
      openStore({ ...base, type: 'sqlite', sqlitePath: join(blocked, 'db') }, { clock: new ManualClock() }),
      (error: unknown) =>
        error instanceof StoreUnavailableError && error.message.startsWith('cannot open the SQLite store at'),
    );
  });
});
