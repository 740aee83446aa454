import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { benchSettings } from '../../bench/settings.ts';
import { startTraceSink } from '../../bench/targets/trace-sink.ts';

/** The bench's tracing knob: a run with tracing on is compared by hand, so it never rewrites docs/performance.md. */
describe('BENCH_TRACING', () => {
  it('makes the run partial, and the sink accepts and counts OTLP exports', async () => {
    assert.equal(benchSettings({ BENCH_TRACING: '1' }).partial, true);
    assert.equal(benchSettings({}).partial, false);
    const sink = await startTraceSink();
    try {
      const response = await fetch(`${sink.url}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: new Uint8Array([1, 2, 3]) });
      assert.equal(response.status, 200);
      assert.equal(sink.exports(), 1);
    } finally {
      await sink.close();
    }
  });
});
