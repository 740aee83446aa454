import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attributeTail, inFlightDuringRuns, startDaemonSampler, type RequestTiming } from '../../bench/kernel-stalls.ts';

/**
 * The latency runs say which of their slow requests were in flight while the machine's memory daemon ran. The
 * overlap and the p99 without those requests are checked on made-up timings; the sampler against a thread whose run
 * time is known to grow (this test's own, kept busy).
 */
describe('bench latency: requests in flight during a kernel daemon run', () => {
  it('counts a request as in flight when its span meets the window in which a run lay', () => {
    // Idle at the poll of 95 ms, seen running until the poll of 100 ms.
    const runs = [{ startMs: 95, endMs: 100, ranMs: 4 }];
    const requests: RequestTiming[] = [
      [90, 4.9], // ended at 94.9, before the window
      [90, 5], // ended at 95, the window's first moment
      [97, 0.5], // inside it
      [100, 3], // sent at its last moment
      [100.1, 3], // sent after it
    ];
    assert.deepEqual(inFlightDuringRuns(requests, runs), [false, true, true, true, false]);
    assert.deepEqual(inFlightDuringRuns(requests, []), [false, false, false, false, false]);
  });

  it('finds the overlap whatever order the runs come in', () => {
    const runs = [
      { startMs: 497, endMs: 500, ranMs: 2 },
      { startMs: 7, endMs: 10, ranMs: 2 },
    ];
    assert.deepEqual(inFlightDuringRuns([[8, 1], [300, 1], [498, 1]], runs), [true, false, true]);
  });

  it('gives the p99 without the overlapped requests, and how many of the slowest 1 % they were', () => {
    // 200 requests of 0.5 ms, one every 2.5 ms; the daemon ran twice, and the requests in flight then took 12 ms.
    const runs = [
      { startMs: 97, endMs: 101, ranMs: 3 },
      { startMs: 297, endMs: 301, ranMs: 3 },
    ];
    const requests: RequestTiming[] = [];
    for (let i = 0; i < 200; i++) {
      const start = i * 2.5;
      const overlapped = (start >= 95 && start <= 101) || (start >= 295 && start <= 301);
      requests.push([start, overlapped ? 12 : 0.5]);
    }
    // One slow request that no run explains.
    requests.push([450, 9]);
    const tail = attributeTail(requests, runs);
    assert.equal(tail.p99OutsideMs, 0.5);
    // The p99 of the 201 is a 12 ms request; the six at or above it were all in flight during a run.
    assert.equal(tail.slowest, 6);
    assert.equal(tail.slowestDuringRuns, tail.slowest);
    // Without any run recorded, every slow request counts as outside.
    const none = attributeTail(requests, []);
    assert.equal(none.p99OutsideMs, 12);
    assert.equal(none.slowestDuringRuns, 0);
  });

  it('records the runs of the threads it samples, on the clock the load generator uses', async () => {
    // This process's main thread stands in for the daemon: busy for 40 ms between the sampler's start and stop.
    const sampler = await startDaemonSampler([{ pid: process.pid, name: 'this test', settings: undefined }]);
    const before = Number(process.hrtime.bigint()) / 1e6;
    while (Number(process.hrtime.bigint()) / 1e6 - before < 40) {
      // spin
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    const runs = await sampler.stop();
    const after = Number(process.hrtime.bigint()) / 1e6;
    assert.ok(runs.length > 0, 'the busy thread was seen running');
    for (const run of runs) {
      assert.ok(run.startMs < run.endMs && run.ranMs > 0);
      assert.ok(run.endMs <= after, 'runs are on CLOCK_MONOTONIC, before the stop returned');
    }
    // The 40 busy milliseconds: seen as one stretch, or a few where the thread was descheduled between polls.
    const covering = runs.filter((run) => run.endMs >= before && run.startMs <= before + 40);
    assert.ok(covering.length > 0, 'the busy stretch was seen');
  });
});
