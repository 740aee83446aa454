import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { createMetrics } from '../../src/observability/metrics.ts';
import { ManualClock } from '../../src/runtime/clock.ts';

/**
 * docs/operations.md's metrics table names every metric `/metrics` serves, and only those: an operator builds
 * dashboards and alerts from it. Two of the broker's counters were served and documented nowhere.
 */
describe('the metrics table of docs/operations.md', () => {
  it('lists exactly the metrics the registry serves, with their type', async () => {
    const metrics = createMetrics({ clock: new ManualClock() });
    const served = new Map((await metrics.registry.getMetricsAsJSON()).map((metric) => [metric.name, String(metric.type)]));
    const doc = await readFile(resolve(import.meta.dirname, '..', '..', 'docs', 'operations.md'), 'utf8');
    const documented = new Map([...doc.matchAll(/^\| `(gatehouse_[a-z_]+)` \| (counter|gauge|histogram) \|/gm)].map((match) => [match[1]!, match[2]!]));
    assert.deepEqual([...documented.keys()].sort(), [...served.keys()].sort());
    for (const [name, type] of served) assert.equal(documented.get(name), type, name);
  });
});
