import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { getHeapSpaceStatistics } from 'node:v8';
import { QuietWatch, releaseStartupMemory, returnHeapWhenQuiet } from '../../src/runtime/process-heap.ts';

const newSpaceBytes = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;

/** Grows the young generation the way start-up and a burst of requests do: many objects living across collections. */
function growYoungGeneration(): number {
  let kept: object[][] = [];
  for (let round = 0; round < 300; round++) {
    kept.push(Array.from({ length: 2000 }, (_, index) => ({ round, index, text: `x${index}` })));
    if (kept.length > 20) kept.shift();
  }
  kept = [];
  assert.equal(kept.length, 0);
  return newSpaceBytes();
}

describe('releaseStartupMemory', () => {
  it('shrinks the young generation that a start-up-like burst grew (objects living across collections)', () => {
    const grown = growYoungGeneration();
    assert.ok(grown >= 4 * 1024 * 1024, `the burst grew the young generation (${grown} bytes)`);
    releaseStartupMemory();
    const after = newSpaceBytes();
    assert.ok(after <= grown / 2, `young generation ${grown} → ${after} bytes`);
  });

  it('leaves no gc() on the global scope', () => {
    releaseStartupMemory();
    assert.equal((globalThis as { gc?: unknown }).gc, undefined);
  });
});

describe('keepHeapAcrossIdleGaps', () => {
  it('sets a flag this runtime knows (an unknown V8 flag is only complained about on stderr, and does nothing)', () => {
    const run = (call: string) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', `import * as heap from ${JSON.stringify(new URL('../../src/runtime/process-heap.ts', import.meta.url).href)}; ${call}`], { encoding: 'utf8' });
    const kept = run('heap.keepHeapAcrossIdleGaps();');
    assert.equal(kept.status, 0, kept.stderr);
    assert.equal(kept.stderr, '');
    // The check above would notice: V8 reports a flag it does not know.
    const unknown = run("(await import('node:v8')).setFlagsFromString('--no-such-heap-flag');");
    assert.match(unknown.stderr, /unrecognized flag/);
  });
});

describe('QuietWatch', () => {
  const watch = () => new QuietWatch({ quietMs: 300_000, checkEveryMs: 60_000, quietBelow: 0.01 });

  it('returns the heap once, after a whole quiet stretch', () => {
    const quiet = watch();
    assert.deepEqual([0.001, 0, 0.002, 0.005].map((sample) => quiet.observe(sample)), [false, false, false, false]);
    assert.equal(quiet.observe(0.003), true, 'the fifth quiet minute completes the stretch');
    assert.deepEqual([0, 0, 0].map((sample) => quiet.observe(sample)), [false, false, false], 'not again while it stays quiet');
  });

  it('starts counting again after a busy sample, and releases again after the next quiet stretch', () => {
    const quiet = watch();
    for (const sample of [0, 0, 0, 0]) quiet.observe(sample);
    assert.equal(quiet.observe(0.2), false, 'traffic came back before the stretch was complete');
    assert.deepEqual([0, 0, 0, 0].map((sample) => quiet.observe(sample)), [false, false, false, false]);
    assert.equal(quiet.observe(0), true);
    quiet.observe(0.5);
    assert.deepEqual([0, 0, 0, 0, 0].map((sample) => quiet.observe(sample)), [false, false, false, false, true]);
  });

  it('counts a sample at the threshold, or one that is not a number, as busy', () => {
    const quiet = new QuietWatch({ quietMs: 1, checkEveryMs: 1, quietBelow: 0.01 });
    assert.equal(quiet.observe(0.01), false);
    assert.equal(quiet.observe(Number.NaN), false);
    assert.equal(quiet.observe(0), true);
  });
});

describe('returnHeapWhenQuiet', () => {
  it('runs the shrinking collection once the event loop has been quiet long enough, and stops when asked', async () => {
    const grown = growYoungGeneration();
    assert.ok(grown >= 4 * 1024 * 1024, `the burst grew the young generation (${grown} bytes)`);
    // Every sample counts as quiet here (the test runner itself is busy), so the first period completes the stretch.
    const stop = returnHeapWhenQuiet({ quietMs: 20, checkEveryMs: 20, quietBelow: 1.01 });
    try {
      for (let waited = 0; newSpaceBytes() > grown / 2 && waited < 5000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(newSpaceBytes() <= grown / 2, `young generation ${grown} → ${newSpaceBytes()} bytes`);
    } finally {
      stop();
    }
  });
});
