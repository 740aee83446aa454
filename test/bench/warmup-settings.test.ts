import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { warmupSeconds } from '../../bench/measure-scenario.ts';
import { benchSettings } from '../../bench/settings.ts';
import type { Target } from '../../bench/targets/target.ts';

/** The bench's warm-up lengths (measure-scenario.ts): long before the first scenario, short after, short for direct and nginx. */
describe('bench warm-up', () => {
  const target = (name: string) => ({ name }) as Target;

  it('warms each proxy 8 s before the first scenario, a fifth of that before the later ones', () => {
    const settings = benchSettings({});
    assert.equal(settings.warmupSeconds, 8);
    assert.equal(warmupSeconds(settings, 0, target('gatehouse')), 8);
    assert.equal(warmupSeconds(settings, 1, target('node floor')), 1.6);
    assert.equal(warmupSeconds(settings, 3, target('express peer')), 1.6);
  });

  it('gives direct and nginx (no code to warm) at most 1 s, and never less than 0.5 s to anyone', () => {
    assert.equal(warmupSeconds(benchSettings({}), 0, target('direct')), 1);
    assert.equal(warmupSeconds(benchSettings({}), 0, target('nginx')), 1);
    assert.equal(warmupSeconds(benchSettings({}), 2, target('nginx')), 1);
    const short = benchSettings({ BENCH_WARMUP: '1' });
    assert.equal(warmupSeconds(short, 0, target('gatehouse')), 1);
    assert.equal(warmupSeconds(short, 2, target('gatehouse')), 0.5);
    assert.equal(warmupSeconds(short, 2, target('direct')), 0.5);
  });

  it('reads BENCH_WARMUP, 1 s in quick mode, and refuses a non-positive value', () => {
    assert.equal(benchSettings({ BENCH_WARMUP: '3' }).warmupSeconds, 3);
    assert.equal(benchSettings({ BENCH_QUICK: '1' }).warmupSeconds, 1);
    assert.throws(() => benchSettings({ BENCH_WARMUP: '0' }), /BENCH_WARMUP must be a positive number/);
  });
});
