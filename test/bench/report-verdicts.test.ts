import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ScenarioFigures, TargetFigures } from '../../bench/measure-scenario.ts';
import { verdicts, type BenchResults } from '../../bench/report.ts';
import { SCENARIOS } from '../../bench/scenarios.ts';
import type { Spread } from '../../bench/stats.ts';

/**
 * The bench's verdicts (bench/report.ts): each target of the hot-path issue stated met or not met, and beside it the
 * same figure for the floor that checks nothing, so a run shows by itself which misses no Node gateway could avoid.
 */
const at = (median: number): Spread => ({ min: median, median, max: median });

function row(target: string, figures: { rps: number; cpu?: number; p50?: number; p99?: number }): TargetFigures {
  return {
    target,
    requestsPerSecond: at(figures.rps),
    cpuMicrosPerRequest: at(figures.cpu ?? Number.NaN),
    p50Ms: at(0),
    p99Ms: at(0),
    addedP50Ms: at(figures.p50 ?? Number.NaN),
    addedP99Ms: at(figures.p99 ?? Number.NaN),
    p99ClearMs: at(Number.NaN),
    addedP99ClearMs: at(Number.NaN),
    slowest: 0,
    slowestDuringDaemon: 0,
    shareDuringDaemon: 0,
    failures: 0,
  };
}

function canned(gatehouse: { rps: number; cpu: number; p50: number; p99: number }): ScenarioFigures {
  return {
    scenario: SCENARIOS.find((scenario) => scenario.key === 'canned')!,
    daemonStretches: undefined,
    targets: [
      row('direct', { rps: 20_000 }),
      row('nginx', { rps: 15_000, cpu: 30 }),
      row('express peer', { rps: 1_000, cpu: 900, p50: 1.3, p99: 8 }),
      row('node floor', { rps: 6_000, cpu: 150, p50: 0.15, p99: 3 }),
      row('gatehouse', gatehouse),
    ],
  };
}

const results = (scenario: ScenarioFigures): BenchResults => ({ scenarios: [scenario], streams: [], oauth: undefined, micro: [], skipped: [] });
const line = (lines: string[], label: string) => lines.find((entry) => entry.startsWith(`- ${label}:`));

describe('bench verdicts', () => {
  it('states each target met or not, with the Node floor’s own figure beside it', () => {
    const lines = verdicts(results(canned({ rps: 3_000, cpu: 300, p50: 0.4, p99: 5 })));
    assert.equal(line(lines, 'canned: Gatehouse CPU/request vs Node floor'), '- canned: Gatehouse CPU/request vs Node floor: 2.00× (target ≤ 1.5×): **not met**');
    // The floor's 150 µs is 5× nginx's 30: no Node proxy meets ≤ 4× nginx in this run.
    assert.equal(line(lines, 'canned: Gatehouse CPU/request vs nginx'), '- canned: Gatehouse CPU/request vs nginx: 10.00× (target ≤ 4×): **not met**; the Node floor: 5.00×, misses it too (Gatehouse 2.00× the floor\'s)');
    assert.equal(line(lines, 'canned: Gatehouse throughput vs Express peer'), '- canned: Gatehouse throughput vs Express peer: 3.00× (target ≥ 2×): **met**; the Node floor: 6.00×, meets it');
    // The floor adds 0.15 ms at the median: that target is Gatehouse's own to close.
    assert.equal(line(lines, 'canned: Gatehouse added latency p50'), '- canned: Gatehouse added latency p50: 0.40 ms (target ≤ 0.2 ms): **not met**; the Node floor: 0.15 ms, meets it');
    assert.equal(line(lines, 'canned: Gatehouse added latency p99'), '- canned: Gatehouse added latency p99: 5.00 ms (target ≤ 1 ms): **not met**; the Node floor: 3.00 ms, misses it too (Gatehouse 2.00 ms over the floor\'s)');
    assert.equal(lines.at(-1), 'Not met in this run: 4. Of them, the floor beside them (which checks nothing) meets 2, and misses 2 too: no Node gateway meets those on this machine in this run, and what Gatehouse adds there is its distance from the floor, on each line.');
  });

  it('counts a target the floor misses and Gatehouse meets as met, not as out of reach', () => {
    const lines = verdicts(results(canned({ rps: 3_000, cpu: 200, p50: 0.1, p99: 0.9 })));
    assert.equal(line(lines, 'canned: Gatehouse added latency p99'), '- canned: Gatehouse added latency p99: 0.90 ms (target ≤ 1 ms): **met**; the Node floor: 3.00 ms, misses it too (Gatehouse 2.10 ms under the floor\'s)');
    assert.equal(lines.at(-1), 'Not met in this run: 1. Of them, the floor beside them (which checks nothing) meets 0, and misses 1 too: no Node gateway meets those on this machine in this run, and what Gatehouse adds there is its distance from the floor, on each line.');
  });

  it('says when a miss had no floor figure to stand beside (a run without the floor)', () => {
    const scenario = canned({ rps: 3_000, cpu: 300, p50: 0.4, p99: 5 });
    scenario.targets = scenario.targets.filter((row) => row.target !== 'node floor');
    const lines = verdicts(results(scenario));
    assert.equal(line(lines, 'canned: Gatehouse added latency p50'), '- canned: Gatehouse added latency p50: 0.40 ms (target ≤ 0.2 ms): **not met**');
    assert.match(lines.at(-1)!, /; 3 had no floor figure in this run\.$/);
  });

  it('names the oidc-provider floor beside the OAuth endpoints, and says when every target was met', () => {
    const rates = (registrations: number, refreshes: number) => ({
      registrationsPerSecond: at(registrations),
      registrationCpuMicros: at(300),
      refreshesPerSecond: at(refreshes),
      refreshCpuMicros: at(300),
    });
    const lines = verdicts({ scenarios: [], streams: [], micro: [], skipped: [], oauth: { ...rates(3_100, 3_200), floor: rates(5_000, 2_000), failures: 0 } });
    assert.equal(line(lines, 'refresh-token grants/s'), '- refresh-token grants/s: 3200.00/s (target ≥ 3000/s): **met**; the oidc-provider floor: 2000.00/s, misses it too (Gatehouse 1.60× the floor\'s)');
    assert.equal(lines.at(-1), 'Every target measured was met in this run.');
  });
});
