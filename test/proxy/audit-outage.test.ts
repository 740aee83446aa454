import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createMetrics } from '../../src/observability/metrics.ts';
import { AUDIT_NAMESPACE, createAuditLog, type AuditRecord } from '../../src/proxy/audit.ts';
import { systemClock } from '../../src/runtime/clock.ts';
import { cryptoRandom } from '../../src/runtime/random.ts';
import { createLogger } from '../../src/server/logger.ts';
import { createRedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/store.ts';
import { captureLogs } from '../support/server-context.ts';
import { startRedisServer, type RedisServer } from '../support/redis-server.ts';

/**
 * Audit records while Redis is down: buffered in memory (bounded) and written when Redis is back, in batches of one
 * MULTI each; what overflows the buffer is counted in gatehouse_audit_records_dropped_total and logged once.
 */
let redis: RedisServer;
let admin: Redis;
let store: Store;

const entry = (i: number): AuditRecord => ({
  time: 1_700_000_000_000 + i,
  user: `tenant/u${i % 7}`,
  route: '/mcp',
  method: 'tools/call',
  tool: 'echo',
  outcome: 'allowed',
  status: 200,
  durationMs: 1,
  bytesIn: 10,
  bytesOut: 20,
});

async function stored(): Promise<number> {
  return (await store.list(AUDIT_NAMESPACE)).length;
}

async function until(condition: () => Promise<boolean>, attempts = 400): Promise<void> {
  for (let i = 0; i < attempts && !(await condition()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
}

before(async () => {
  redis = await startRedisServer();
  admin = new Redis(redis.url);
  // The admin connection sees the outages too; it reconnects by itself.
  admin.on('error', () => {});
  store = await createRedisStore({ url: redis.url, keyPrefix: 'audit-outage:', clock: systemClock, purgeIntervalMs: 0 });
});
after(async () => {
  admin.disconnect();
  await store.close();
  await redis.stop();
});

describe('audit records during a store outage', () => {
  it('loses nothing the buffer covers: records made while Redis was stopped are stored once it is back', async () => {
    const { logger, logs } = captureLogs();
    const log = createAuditLog({ store, random: cryptoRandom, logger, output: 'store', retentionDays: 1 });
    for (let outage = 0; outage < 2; outage++) {
      await redis.stop();
      for (let i = 0; i < 1_500; i++) log.record(entry(i + outage * 1_500));
      await log.flush();
      await redis.restart(); // no persistence: each restart starts empty, so only records written after it count
      await until(async () => (await stored().catch(() => 0)) === 1_500);
      assert.equal(await stored(), 1_500, `outage ${outage + 1}: every record made during the outage was stored`);
    }
    assert.match(logs.text(), /audit records buffered while the store is unavailable/);
    await log.close();
  });

  it('batches: one MULTI per batch, not one write per record', async () => {
    await until(async () => admin.status === 'ready');
    await until(() => store.ping().then(() => true, () => false));
    await admin.flushall();
    await admin.config('RESETSTAT');
    const log = createAuditLog({ store, random: cryptoRandom, logger: createLogger({ level: 'silent' }), output: 'store', retentionDays: 1, maxBatch: 10_000 });
    for (let i = 0; i < 800; i++) log.record(entry(i));
    await log.close();
    assert.equal(await stored(), 800);
    const stats = await admin.info('commandstats');
    const transactions = Number(/cmdstat_multi:calls=(\d+)/.exec(stats)?.[1] ?? 0);
    assert.ok(transactions >= 1 && transactions <= 3, `800 records in a few MULTI batches (got ${transactions})`);
  });

  it('counts and logs, once, the records an outage longer than the buffer loses', async () => {
    const { logger, logs } = captureLogs();
    const metrics = createMetrics({ clock: systemClock });
    const log = createAuditLog({
      store,
      random: cryptoRandom,
      logger,
      output: 'store',
      retentionDays: 1,
      maxBuffered: 100,
      onDropped: (count) => metrics.auditRecordsDropped(count),
    });
    await redis.stop();
    for (let i = 0; i < 250; i++) {
      log.record(entry(i));
      if (i % 50 === 49) await log.flush();
    }
    await log.flush();
    const dropped = (await metrics.registry.getSingleMetric('gatehouse_audit_records_dropped_total')?.get())?.values[0]?.value;
    assert.equal(dropped, 150);
    const lossLines = logs.lines().filter((line) => /audit records dropped/.test(String(line.msg)));
    assert.equal(lossLines.length, 1, 'one log line per interval, not one per record or per batch');
    assert.match(String(lossLines[0]?.msg), /unavailable longer than the audit buffer covers/);
    await redis.restart();
    await until(async () => (await stored().catch(() => 0)) === 100);
    assert.equal(await stored(), 100, 'the buffered records were kept');
    await log.close();
  });

  it('says the store refused records it drops for that reason, not that an outage outlasted the buffer', async () => {
    const { logger, logs } = captureLogs();
    const refusing = Object.create(store) as Store;
    refusing.setMany = async () => {
      throw new TypeError('a record the store cannot take');
    };
    const log = createAuditLog({ store: refusing, random: cryptoRandom, logger, output: 'store', retentionDays: 1 });
    log.record(entry(1));
    await log.flush();
    const lossLines = logs.lines().filter((line) => /audit records dropped/.test(String(line.msg)));
    assert.deepEqual(lossLines.map((line) => line.msg), ['audit records dropped: the store refused them']);
    await log.close();
  });
});
