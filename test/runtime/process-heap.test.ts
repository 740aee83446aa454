import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { getHeapSpaceStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { KEEP_HEAP_FLAG, QuietWatch, keepHeapAcrossIdleGaps, releaseStartupMemory, returnHeapWhenQuiet } from '../../src/runtime/process-heap.ts';

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

  it('leaves no gc() on the global scope, nor in contexts created after it', () => {
    releaseStartupMemory();
    assert.equal((globalThis as { gc?: unknown }).gc, undefined);
    assert.equal(runInNewContext('typeof gc'), 'undefined', '--expose-gc was unset again');
  });
});

describe('keepHeapAcrossIdleGaps', () => {
  it('sets the flag that keeps the heap', () => {
    const set: string[] = [];
    keepHeapAcrossIdleGaps((flags) => set.push(flags));
    assert.deepEqual(set, [KEEP_HEAP_FLAG]);
  });

  it('names a flag this runtime knows (V8 only complains on stderr about one it does not, and ignores it)', () => {
    const run = (flag: string) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', `(await import('node:v8')).setFlagsFromString(${JSON.stringify(flag)});`], { encoding: 'utf8' });
    const known = run(KEEP_HEAP_FLAG);
    assert.equal(known.status, 0, known.stderr);
    assert.equal(known.stderr, '');
    // The check above would notice: V8 reports a flag it does not know.
    assert.match(run('--no-such-heap-flag').stderr, /unrecognized flag/);
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
  const tick = () => new Promise((resolve) => setTimeout(resolve, 15));
  /** Waits until `done()` or about 5 s (a slow machine's timers run late, never early). */
  const until = async (done: () => boolean) => {
    for (let waited = 0; !done() && waited < 5000; waited += 15) await tick();
  };

  it('collects once per quiet stretch of sampled utilization, not while busy, and not after stop()', async () => {
    const samples: number[] = [0.5, 0.5, 0.001, 0.001, 0.001, 0.001, 0.3, 0.002, 0.002];
    let sampled = 0;
    const collectedAt: number[] = [];
    const stop = returnHeapWhenQuiet({
      quietMs: 20,
      checkEveryMs: 10,
      sampleUtilization: () => samples[sampled++] ?? 0.9,
      collect: () => collectedAt.push(sampled),
    });
    try {
      await until(() => sampled >= samples.length + 2);
      // Quiet stretches of two samples: samples 3–4 complete the first (5–6 stay released), 8–9 the next after the busy 7.
      assert.deepEqual(collectedAt, [4, 9]);
    } finally {
      stop();
    }
    const after = sampled;
    await tick();
    await tick();
    assert.equal(sampled, after, 'no sample after stop()');
  });

  it('reports a failed collection instead of throwing from its timer', async () => {
    const failures: unknown[] = [];
    const stop = returnHeapWhenQuiet({
      quietMs: 10,
      checkEveryMs: 10,
      sampleUtilization: () => 0,
      collect: () => {
        throw new Error('collection refused');
      },
      onFailure: (error) => failures.push(error),
    });
    try {
      await until(() => failures.length > 0);
      assert.match(String(failures[0]), /collection refused/);
    } finally {
      stop();
    }
  });

  it("runs V8's shrinking collection by default, on the event loop's own utilization", async () => {
    const grown = growYoungGeneration();
    assert.ok(grown >= 4 * 1024 * 1024, `the burst grew the young generation (${grown} bytes)`);
    // Every sample counts as quiet below 1.01 (the test runner itself is busy), so the first period completes it.
    const stop = returnHeapWhenQuiet({ quietMs: 20, checkEveryMs: 20, quietBelow: 1.01 });
    try {
      await until(() => newSpaceBytes() <= grown / 2);
      assert.ok(newSpaceBytes() <= grown / 2, `young generation ${grown} → ${newSpaceBytes()} bytes`);
    } finally {
      stop();
    }
  });
});
