import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidSinceError, parseSince } from '../../src/admin/since.ts';
import { formatTable, formatTime } from '../../src/admin/text-table.ts';
import { exactHtml, visibleName } from '../../src/web/html.ts';
import { lastMinute } from '../../src/admin/pages/overview-page.ts';
import { createMetrics, SAMPLE_BUCKET_MS } from '../../src/observability/metrics.ts';
import { ManualClock } from '../../src/runtime/clock.ts';

const now = Date.UTC(2026, 4, 1, 12, 0, 0);

describe('parseSince', () => {
  const relative: [string, number][] = [
    ['90s', 90_000],
    ['15m', 15 * 60_000],
    ['2h', 2 * 3_600_000],
    ['7d', 7 * 86_400_000],
    ['1w', 7 * 86_400_000],
    [' 15m ', 15 * 60_000],
  ];
  for (const [text, age] of relative) {
    it(`reads ${JSON.stringify(text)} as an age`, () => assert.equal(parseSince(text, now), now - age));
  }
  const absolute: [string, string][] = [
    ['2026-04-30', '2026-04-30T00:00:00.000Z'],
    ['2026-04-30T10:00:00Z', '2026-04-30T10:00:00.000Z'],
    ['2026-04-30T10:00', '2026-04-30T10:00:00.000Z'],
    ['2026-04-30T12:00:00+02:00', '2026-04-30T10:00:00.000Z'],
    ['2026-04-30 10:00:00.5Z', '2026-04-30T10:00:00.500Z'],
  ];
  for (const [text, iso] of absolute) {
    it(`reads ${JSON.stringify(text)} as ISO 8601 (zone-less = UTC)`, () => assert.equal(new Date(parseSince(text, now)).toISOString(), iso));
  }
  for (const garbage of ['', 'now', '15', 'm15', '15 m', '1y', '-1h', '2026-02-30T25:00:00Z', '2026-02-30', '2026-04-31T10:00Z', '2026/04/30', '1e3s', '15m; rm -rf /']) {
    it(`refuses ${JSON.stringify(garbage)}`, () => assert.throws(() => parseSince(garbage, now), InvalidSinceError));
  }
});

describe('CLI tables', () => {
  it('pads columns and escapes terminal control characters from stored values', () => {
    const table = formatTable(['ID', 'NAME'], [['a', 'evil\u001b[31mred'], ['bbbb', 'ok']]);
    assert.equal(table, 'ID    NAME\na     evil\\x1b[31mred\nbbbb  ok');
    assert.equal(formatTime(undefined), '-');
    assert.equal(formatTime(now), '2026-05-01T12:00:00Z');
  });

  it('shows a lone surrogate as its code point (a terminal and a page would show U+FFFD), a pair as its character', () => {
    // A backend's JSON may name a tool "x\ud800": printed as UTF-8 it read as "x�", like "x\udc00" and "x\ufffd".
    assert.equal(formatTable(['NAME'], [['x\ud800'], ['y\udc00z'], ['\u{1f600}']]), 'NAME\nx\\ud800\ny\\udc00z\n\u{1f600}');
    assert.equal(exactHtml('x\ud800'), 'x<mark class="hidden-char" title="an invisible character">\\ud800</mark>');
    assert.equal(visibleName('\ud800'), undefined, 'a name of nothing else shows nothing');
  });
});

describe('overview numbers', () => {
  it('computes requests/s and error rate over the last minute of 10-second buckets', () => {
    const clock = new ManualClock(now);
    const metrics = createMetrics({ clock });
    for (let bucket = 0; bucket < 6; bucket++) {
      for (let i = 0; i < 10; i++) metrics.observeRequest({ route: '/mcp', method: 'POST', status: i < 2 ? 500 : 200, durationSeconds: 0.01 });
      clock.advance(SAMPLE_BUCKET_MS);
    }
    // The current (empty) bucket is the last of the samples; the minute before it held the traffic.
    clock.advance(-1);
    const samples = metrics.recentRequests(6);
    assert.equal(samples.length, 6);
    assert.deepEqual(samples.map((sample) => sample.requests), [10, 10, 10, 10, 10, 10]);
    const { perSecond, errorRate } = lastMinute(samples);
    assert.equal(perSecond, 1);
    assert.equal(errorRate, 0.2);
  });
});
