import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runLoad } from '../../bench/load.ts';
import { runRefreshLoad } from '../../bench/oauth/refresh-load.ts';
import { registrationBody } from '../../bench/oauth/sign-in.ts';
import { SCENARIOS } from '../../bench/scenarios.ts';
import { startOidcProviderFloor } from '../../bench/targets/oidc-provider-floor.ts';
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

  it('runs the oidc-provider floor of the OAuth part: it registers clients and rotates each chain\'s refresh token', async () => {
    const floor = await startOidcProviderFloor(bench.compiled, 2);
    try {
      assert.equal(floor.refreshTokens.length, 2);
      const registered = await runLoad({ url: `${floor.origin}/register`, headers: { 'content-type': 'application/json' }, body: registrationBody, connections: 2, durationSeconds: 0.5 });
      assert.ok(registered.total > 0);
      assert.equal(registered.failures, 0);
      const chains = floor.refreshTokens.map((refreshToken) => ({ clientId: floor.clientId, refreshToken }));
      const first = chains.map((chain) => chain.refreshToken);
      const refreshed = await runRefreshLoad(floor.origin, chains, 0.5);
      assert.ok(refreshed.total >= 2);
      assert.equal(refreshed.failures, 0);
      // Each chain moved on to a rotated token, as Gatehouse's chains do.
      for (const [index, chain] of chains.entries()) assert.notEqual(chain.refreshToken, first[index]);
    } finally {
      await floor.stop();
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
