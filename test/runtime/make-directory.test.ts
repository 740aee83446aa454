import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeDirectory } from '../../src/runtime/make-directory.ts';
import { createSqliteStore } from '../../src/store/sqlite-store.ts';
import { StoreUnavailableError } from '../../src/store/store.ts';
import { systemClock } from '../../src/runtime/clock.ts';

describe('makeDirectory (mkdir -p)', () => {
  it('creates every missing level, and accepts one that exists', async () => {
    const root = await mkdtemp(join(tmpdir(), 'gatehouse-mkdir-'));
    try {
      makeDirectory(join(root, 'a', 'b', 'c'));
      assert.ok(existsSync(join(root, 'a', 'b', 'c')));
      makeDirectory(join(root, 'a', 'b', 'c'));
      await writeFile(join(root, 'file'), 'x');
      assert.throws(() => makeDirectory(join(root, 'file', 'below')), { code: 'ENOTDIR' });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  // Node's recursive mkdirSync spun for ever here; the store open (and with it `start` and `doctor`) hung.
  it('fails where a directory refuses new entries although its parent exists (/proc), and the store says so', { skip: !existsSync('/proc/self') }, async () => {
    assert.throws(() => makeDirectory('/proc/gatehouse-nope/db'), { code: 'ENOENT' });
    await assert.rejects(createSqliteStore({ path: '/proc/gatehouse-nope/x.db', clock: systemClock, purgeIntervalMs: 0 }), StoreUnavailableError);
  });
});
