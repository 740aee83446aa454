import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { paceStep, runPacedLoad } from '../../bench/paced-load.ts';

/**
 * The latency runs' load generator sends its requests evenly spaced, never in bursts: the pacing is checked with a
 * made-up clock (no timing is asserted), the generator itself against a real server.
 */
describe('bench latency load: evenly spaced requests', () => {
  it('sends at each slot and waits for the next one', () => {
    assert.deepEqual(paceStep(1000, 1000, 2.5, 0), { send: true, slot: 1, skipped: 0, waitMs: 2.5 });
    assert.deepEqual(paceStep(1001, 1000, 2.5, 1), { send: false, slot: 1, skipped: 0, waitMs: 1.5 });
    assert.deepEqual(paceStep(1002.5, 1000, 2.5, 1), { send: true, slot: 2, skipped: 0, waitMs: 2.5 });
  });

  it('drops the slots a late wake-up missed instead of sending them together', () => {
    // Woken 10.2 intervals after slot 1 was due: one request now (slot 11), slots 1–10 dropped and counted.
    const step = paceStep(1000 + 11.2 * 2.5, 1000, 2.5, 1);
    assert.equal(step.send, true);
    assert.equal(step.skipped, 10);
    assert.equal(step.slot, 12);
    assert.ok(Math.abs(step.waitMs - 0.8 * 2.5) < 1e-9);
  });

  it('accounts for every slot of a run whose wake-ups are late by a seeded jitter', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const start = 0;
    const interval = 2.5;
    let now = start;
    let slot = 0;
    let sent = 0;
    let skipped = 0;
    while (now < 10_000) {
      const step = paceStep(now, start, interval, slot);
      if (step.send) sent++;
      skipped += step.skipped;
      slot = step.slot;
      // A timer fires at or after its time, sometimes much later (a busy event loop).
      now += step.waitMs + (random() < 0.02 ? random() * 20 : random() * 1);
    }
    // Every elapsed slot was either sent once or dropped; none was sent twice.
    assert.equal(sent + skipped, slot);
    assert.ok(sent > 0 && skipped > 0);
  });

  it('measures a real server: every request answered, non-2xx answers counted as failures', async () => {
    let served = 0;
    const server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        served++;
        response.statusCode = request.headers['x-fail'] === '1' ? 503 : 200;
        response.end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
      const ok = await runPacedLoad({ url, headers: { 'content-type': 'application/json' }, body: '{}', rate: 100, durationSeconds: 0.3, connections: 2 });
      assert.ok(ok.total > 0);
      assert.equal(ok.failures, 0);
      assert.ok(ok.p50Ms > 0 && ok.p99Ms >= ok.p50Ms);
      // The connections are opened with untimed requests first: the server saw those too.
      assert.equal(served, ok.total + 2);
      const failing = await runPacedLoad({ url, headers: { 'x-fail': '1' }, body: '{}', rate: 100, durationSeconds: 0.2, connections: 1 });
      assert.equal(failing.total, 0);
      assert.ok(failing.failures > 0);
    } finally {
      server.close();
    }
  });
});
