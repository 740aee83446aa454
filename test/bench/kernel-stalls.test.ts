import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { attributeTail, inFlightDuringStretches, monotonicMs, startDaemonSampler, stretchesOf, type RequestTiming, type RunTimeGrowth } from '../../bench/kernel-stalls.ts';
import { runPacedLoad } from '../../bench/paced-load.ts';

/**
 * The latency runs say which of their slow requests were in flight while the machine's memory daemon ran. The
 * stretches, the overlap and the p99 without those requests are checked on made-up timings; the sampler against a
 * thread whose run time is known to grow (this test's own, kept busy); the load generator's send times against the
 * clock the sampler uses.
 */
describe('bench latency: requests in flight while a kernel daemon runs', () => {
  it('joins the growths of one run, which a tick-driven run time shows every 4 ms, into one stretch', () => {
    // A thread that gets 2 ms of every 4 (it shares its core) from 102 to 120 ms, polled every millisecond, its run
    // time brought up to date at the ticks of 104, 108, 112, 116 ms and when it stopped at 120 ms; then again from
    // 612 to 614 ms. The polls between the ticks saw nothing: the stretch is one all the same, starting no later
    // than the run did (the poll before the first growth, less what that growth ran).
    const growths: RunTimeGrowth[] = [104, 108, 112, 116, 120].map((atMs) => ({ atMs, previousMs: atMs - 1, ranMs: 2 }));
    growths.push({ atMs: 614, previousMs: 613, ranMs: 2 });
    assert.deepEqual(stretchesOf(growths), [
      { startMs: 101, endMs: 120, ranMs: 10 },
      { startMs: 611, endMs: 614, ranMs: 2 },
    ]);
    // Growths farther apart than the join gap stay apart, whatever order they come in.
    assert.deepEqual(stretchesOf([growths[5]!, growths[0]!], 10), [
      { startMs: 101, endMs: 104, ranMs: 2 },
      { startMs: 611, endMs: 614, ranMs: 2 },
    ]);
    // A poll the sampler took late: the run lay somewhere between the poll before it (less what it ran) and this one.
    assert.deepEqual(stretchesOf([{ atMs: 50, previousMs: 35, ranMs: 1 }]), [{ startMs: 34, endMs: 50, ranMs: 1 }]);
  });

  it('counts a request as in flight when its span meets a stretch', () => {
    const stretches = [{ startMs: 95, endMs: 100, ranMs: 4 }];
    const requests: RequestTiming[] = [
      [90, 4.9], // ended at 94.9, before the stretch
      [90, 5], // ended at 95, its first moment
      [97, 0.5], // inside it
      [100, 3], // sent at its last moment
      [100.1, 3], // sent after it
    ];
    assert.deepEqual(inFlightDuringStretches(requests, stretches), [false, true, true, true, false]);
    assert.deepEqual(inFlightDuringStretches(requests, []), [false, false, false, false, false]);
    // Stretches in any order, one inside another's span.
    const unordered = [
      { startMs: 497, endMs: 500, ranMs: 2 },
      { startMs: 7, endMs: 30, ranMs: 2 },
      { startMs: 10, endMs: 12, ranMs: 1 },
    ];
    assert.deepEqual(inFlightDuringStretches([[8, 1], [20, 1], [300, 1], [498, 1]], unordered), [true, true, false, true]);
  });

  it('gives the p99 of the requests clear of the stretches, and how many of the slowest 1 % they were', () => {
    // 200 requests of 0.5 ms, one every 2.5 ms; the daemon ran twice, and the requests in flight then took 12 ms.
    const stretches = [
      { startMs: 97, endMs: 101, ranMs: 3 },
      { startMs: 297, endMs: 301, ranMs: 3 },
    ];
    const requests: RequestTiming[] = [];
    for (let i = 0; i < 200; i++) {
      const start = i * 2.5;
      const overlapped = (start >= 95 && start <= 101) || (start >= 295 && start <= 301);
      requests.push([start, overlapped ? 12 : 0.5]);
    }
    // One slow request that no stretch explains.
    requests.push([450, 9]);
    const tail = attributeTail(requests, stretches);
    assert.equal(tail.p99ClearMs, 0.5);
    // The p99 of the 201 is a 12 ms request; the six at or above it were all in flight during a stretch.
    assert.equal(tail.slowest, 6);
    assert.equal(tail.slowestDuringStretches, 6);
    assert.equal(tail.shareDuringStretches, 6 / 201);
    // Without any stretch recorded, every slow request is clear of them.
    const none = attributeTail(requests, []);
    assert.equal(none.p99ClearMs, 12);
    assert.equal(none.slowestDuringStretches, 0);
    assert.equal(none.shareDuringStretches, 0);
  });

  it('records the run time of the threads it samples, on the clock the load generator uses', async () => {
    // This process's main thread stands in for the daemon: busy for 40 ms between the sampler's start and stop.
    const sampler = await startDaemonSampler([{ pid: process.pid, name: 'this test', settings: undefined }]);
    assert.ok(sampler, 'the sampler started');
    const before = monotonicMs();
    while (monotonicMs() - before < 40) {
      // busy: the thread's run time grows at every tick and every switch
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    const stretches = await sampler.stop();
    const after = monotonicMs();
    assert.ok(stretches && stretches.length > 0, 'the busy thread was seen running');
    for (const stretch of stretches) {
      assert.ok(stretch.startMs < stretch.endMs && stretch.ranMs > 0);
      assert.ok(stretch.endMs <= after, 'stretches are on CLOCK_MONOTONIC, before the stop returned');
    }
    assert.ok(
      stretches.some((stretch) => stretch.startMs <= before + 40 && stretch.endMs >= before),
      'a stretch covers the busy 40 ms',
    );
  });

  it('answers undefined, not a hang, when the sampler cannot start', async () => {
    // A start timeout of 0 ms: the child cannot have said it samples by then.
    assert.equal(await startDaemonSampler([{ pid: process.pid, name: 'this test', settings: undefined }], 0), undefined);
  });

  it('sends every paced request at a time on that clock', async () => {
    const server = createServer((_request, response) => response.end('{}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const before = monotonicMs();
      const result = await runPacedLoad({ url, headers: { 'content-type': 'application/json' }, body: '{}', rate: 100, durationSeconds: 0.3, connections: 2 });
      const after = monotonicMs();
      assert.equal(result.timings.length, result.total);
      for (const [start, duration] of result.timings) {
        assert.ok(start >= before && start + duration <= after, 'sent and answered inside the run, on CLOCK_MONOTONIC');
      }
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
