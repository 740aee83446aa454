import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../src/runtime/clock.ts';
import { atMostEvery } from '../../src/runtime/log-throttle.ts';

describe('atMostEvery', () => {
  it('reports the first, holds back the rest of the interval, and says how many it held back', () => {
    const clock = new ManualClock(1_000_000);
    const reports: Array<[string, number]> = [];
    const report = atMostEvery<string>(60_000, clock, (value, heldBack) => reports.push([value, heldBack]));
    report('a');
    for (let i = 0; i < 9; i++) {
      clock.advance(100);
      report(`b${i}`);
    }
    assert.deepEqual(reports, [['a', 0]]);
    clock.advance(60_000);
    report('c');
    report('d');
    assert.deepEqual(reports, [['a', 0], ['c', 9]]);
  });
});
