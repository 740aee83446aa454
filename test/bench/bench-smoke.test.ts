import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runLoad } from '../../bench/load.ts';
import { SCENARIOS } from '../../bench/scenarios.ts';
import { startAllTargets, type BenchTargets } from '../../bench/targets/start-all.ts';

/**
 * The bench's instrument works: every target it compares (direct, nginx when installed, the Express peer, the Node
 * floor, Gatehouse started by its CLI in production mode) proxies the canned scenario's requests with status 200
 * and no failure. No timing is asserted.
 */
describe('npm run bench: every target proxies the canned scenario', () => {
  let dir: string;
  let bench: BenchTargets;
  const canned = SCENARIOS.find((scenario) => scenario.key === 'canned')!;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-bench-test-'));
    bench = await startAllTargets(dir, 100);
  });
  after(async () => {
    await bench?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts Gatehouse and the anchors (nginx only where it is installed)', () => {
    const names = bench.targets.map((target) => target.name);
    for (const name of ['direct', 'express peer', 'node floor', 'gatehouse']) assert.ok(names.includes(name), name);
    assert.equal(names.includes('nginx') || bench.skipped.some((reason) => reason.startsWith('nginx')), true);
  });

  it('answers 200 through each target and loses no request under a short load', async () => {
    for (const target of bench.targets) {
      const headers = { ...canned.headers, ...target.headers('canned') };
      const single = await fetch(target.url('canned'), { method: 'POST', headers, body: canned.body });
      const text = await single.text();
      assert.equal(single.status, 200, `${target.name}: ${text}`);
      assert.match(text, /"result"/, target.name);
      const load = await runLoad({ url: target.url('canned'), headers, body: canned.body, connections: 4, durationSeconds: 1 });
      assert.ok(load.total > 0, `${target.name} served no request`);
      assert.equal(load.failures, 0, `${target.name} failed requests`);
    }
  });

  it('refuses a request without a token where the target checks one', async () => {
    for (const target of bench.targets.filter((candidate) => ['express peer', 'gatehouse'].includes(candidate.name))) {
      const response = await fetch(target.url('canned'), { method: 'POST', headers: canned.headers, body: canned.body });
      await response.body?.cancel();
      assert.equal(response.status, 401, target.name);
    }
  });
});
