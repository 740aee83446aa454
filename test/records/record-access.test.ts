import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { defineLock, defineRecord } from '../../src/store/define-record.ts';
import {
  consumeRecord,
  findRecords,
  listRecords,
  lockName,
  readRecord,
  RecordInvalidError,
  writeRecord,
} from '../../src/store/record-access.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import type { Store } from '../../src/store/store.ts';

const session = defineRecord({
  namespace: 'test-session',
  owner: 'test/records/record-access.test.ts',
  key: 'session id',
  schema: z.object({ subject: z.string(), createdAt: z.number() }),
  ttl: 'none',
  indexes: ['subject'],
  singleUse: false,
  secrets: 'none',
  description: 'A record for the accessor tests.',
});
const secretKeyed = defineRecord({ ...session, namespace: 'test-state', secretKey: true, indexes: [] });

describe('record accessors', () => {
  let store: Store;
  before(async () => {
    store = await createSqliteStore({ path: ':memory:', clock: new ManualClock(1_000), purgeIntervalMs: 0 });
  });
  after(() => store.close());

  it('reads back what was written, validated', async () => {
    await writeRecord(store, session, 's1', { subject: 'alice', createdAt: 1 }, { indexes: { subject: 'alice' } });
    assert.deepEqual(await readRecord(store, session, 's1'), { subject: 'alice', createdAt: 1 });
    assert.deepEqual((await findRecords(store, session, 'subject', 'alice')).map((entry) => entry.key), ['s1']);
  });

  it('refuses a corrupt or foreign record with GH_RECORD_INVALID, naming fields but never the value', async () => {
    await store.set(session.namespace, 'corrupt', { subject: 'secret-value-123', createdAt: 'yesterday' });
    await assert.rejects(readRecord(store, session, 'corrupt'), (error: unknown) => {
      assert.ok(error instanceof RecordInvalidError);
      assert.equal(error.code, 'GH_RECORD_INVALID');
      assert.match(error.message, /record test-session\/corrupt .*createdAt/);
      assert.doesNotMatch(error.message, /secret-value-123|yesterday/);
      return true;
    });
    await store.set(session.namespace, 'foreign', 'a string from another program');
    await assert.rejects(readRecord(store, session, 'foreign'), RecordInvalidError);
    await assert.rejects(listRecords(store, session), RecordInvalidError);
  });

  it("reads an invalid record as absent, or skips it in a listing, only when the caller says so", async () => {
    await store.set(session.namespace, 'bad', { subject: 7 });
    assert.equal(await readRecord(store, session, 'bad', { invalid: 'absent' }), undefined);
    const keys = (await listRecords(store, session, { invalid: 'skip' })).map((entry) => entry.key);
    assert.ok(keys.includes('s1') && !keys.includes('bad'));
  });

  it('consumes a single-use record once, and still refuses an invalid one after taking it', async () => {
    await writeRecord(store, session, 'once', { subject: 'bob', createdAt: 2 });
    assert.deepEqual(await consumeRecord(store, session, 'once'), { subject: 'bob', createdAt: 2 });
    assert.equal(await consumeRecord(store, session, 'once'), undefined);
    await store.set(secretKeyed.namespace, 'state-value-xyz', { nope: true });
    await assert.rejects(consumeRecord(store, secretKeyed, 'state-value-xyz'), (error: unknown) => {
      assert.ok(error instanceof RecordInvalidError);
      assert.doesNotMatch(error.message, /state-value-xyz/, 'a credential-like key is not logged');
      return true;
    });
  });

  it('refuses a write or a lookup naming an index the declaration does not list', async () => {
    const undeclared = { indexes: { grantId: 'g1' } } as unknown as Parameters<typeof writeRecord<{ subject: string; createdAt: number }, 'subject'>>[4];
    await assert.rejects(writeRecord(store, session, 's2', { subject: 'carol', createdAt: 3 }, undeclared), TypeError);
    await assert.rejects(findRecords(store, session, 'grantId' as 'subject', 'g1'), TypeError);
  });

  it('names a per-key lock, and refuses a key for a single lock', () => {
    const perKey = defineLock({ name: 'refresh', key: 'subject hash', owner: 'test', ttl: '1 s', description: 'test' });
    const single = defineLock({ name: 'rotate', owner: 'test', ttl: '1 s', description: 'test' });
    assert.equal(lockName(perKey, 'abc'), 'refresh:abc');
    assert.equal(lockName(single), 'rotate');
    assert.throws(() => lockName(single, 'abc'), TypeError);
    assert.throws(() => lockName(perKey), TypeError);
  });
});
