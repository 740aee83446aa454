import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getHeapSpaceStatistics } from 'node:v8';
import { releaseStartupMemory } from '../../src/runtime/startup-memory.ts';

const newSpaceBytes = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;

describe('releaseStartupMemory', () => {
  it('shrinks the young generation that a start-up-like burst grew (objects living across collections)', () => {
    let kept: object[][] = [];
    for (let round = 0; round < 300; round++) {
      kept.push(Array.from({ length: 2000 }, (_, index) => ({ round, index, text: `x${index}` })));
      if (kept.length > 20) kept.shift();
    }
    kept = [];
    const grown = newSpaceBytes();
    assert.ok(grown >= 4 * 1024 * 1024, `the burst grew the young generation (${grown} bytes)`);
    releaseStartupMemory();
    const after = newSpaceBytes();
    assert.ok(after <= grown / 2, `young generation ${grown} → ${after} bytes`);
    assert.equal(kept.length, 0);
  });

  it('leaves no gc() on the global scope', () => {
    releaseStartupMemory();
    assert.equal((globalThis as { gc?: unknown }).gc, undefined);
  });
});
