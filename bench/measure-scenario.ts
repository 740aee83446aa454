import { attributeTail, startDaemonSampler, type DaemonStretch, type KernelDaemon, type RequestTiming } from './kernel-stalls.ts';
import { runLoad } from './load.ts';
import { runPacedLoad } from './paced-load.ts';
import { cpuMicros } from './process-stats.ts';
import type { Scenario } from './scenarios.ts';
import type { BenchSettings } from './settings.ts';
import { spread, type Spread } from './stats.ts';
import type { Target } from './targets/target.ts';

/**
 * One scenario against every target, in the same run. Throughput: 16 connections as fast as possible, CPU time of
 * the target's processes over the run divided by the requests it served. Latency: requests evenly spaced at a fixed
 * moderate rate over at most 4 keep-alive connections (`paced-load.ts`), "added" = the target's percentile minus
 * direct's in the same repetition; while they run, the stretches in which the machine's memory daemon ran are
 * recorded, and each p99 is also given for the requests clear of them (`kernel-stalls.ts`). Every repetition visits
 * the targets in a rotated order, so the machine's drift is spread over all of them.
 */
export interface TargetFigures {
  target: string;
  requestsPerSecond: Spread;
  /** Target CPU per request, µs (n/a for direct). */
  cpuMicrosPerRequest: Spread;
  p50Ms: Spread;
  p99Ms: Spread;
  addedP50Ms: Spread;
  addedP99Ms: Spread;
  /** The p99 of the requests clear of the machine's memory daemon's stretches, and that minus direct's (NaN without one). */
  p99ClearMs: Spread;
  addedP99ClearMs: Spread;
  /** Over the repetitions: the target's slowest 1 % of requests, how many of them a daemon stretch overlapped… */
  slowest: number;
  slowestDuringDaemon: number;
  /** …and the share of all its requests that one overlapped, to read that against. */
  shareDuringDaemon: number;
  failures: number;
}

export interface ScenarioFigures {
  scenario: Scenario;
  targets: TargetFigures[];
  /** The memory daemon's stretches during this scenario's latency runs; undefined where none was recorded. */
  daemonStretches: { count: number; ranMs: number } | undefined;
}

/** Where each target receives this scenario's requests (legacy: its session's message URL). */
export type Endpoints = Map<Target, { url: string; headers: Record<string, string> }>;

const rotate = <T>(items: T[], by: number): T[] => items.map((_, index) => items[(index + by) % items.length]!);

/**
 * Seconds of load each proxy gets before a scenario is measured. A production gateway runs warm: V8 has optimised
 * its request path and sized its young generation. A freshly started Node proxy is not there yet: Gatehouse's CPU per
 * request falls from ≈ 750 µs in its first second of full load to ≈ 290 µs after ≈ 8 s, the Node floor's from
 * ≈ 400 to ≈ 150 µs after ≈ 6 s, nginx's not at all (`node bench/warmup.ts`; docs/performance.md, "Warm-up").
 * Measured colder, every Node target's figures were mostly its warm-up. So the first scenario warms each Node proxy
 * for `warmupSeconds`, the later ones, whose request path is mostly the same code, for a fifth of it. Direct and
 * nginx need at most 1 s: neither has code to warm (every proxy's warm-up load also reaches the backend), and the
 * bench's whole run stays within about 5 minutes.
 */
export function warmupSeconds(settings: BenchSettings, scenarioIndex: number, target: Target): number {
  const seconds = scenarioIndex === 0 ? settings.warmupSeconds : laterWarmupSeconds(settings);
  return target.name === 'direct' || target.name === 'nginx' ? Math.min(seconds, 1) : seconds;
}

/** The warm-up of a part whose code paths are mostly warm already, or short: a fifth of the first one's. */
export function laterWarmupSeconds(settings: BenchSettings): number {
  return Math.max(0.5, settings.warmupSeconds / 5);
}

export async function measureScenario(
  scenario: Scenario,
  targets: Target[],
  endpoints: Endpoints,
  settings: BenchSettings,
  scenarioIndex: number,
  daemons: KernelDaemon[] = [],
): Promise<ScenarioFigures> {
  const log = (text: string) => process.stderr.write(`${scenario.key}: ${text}\n`);
  const request = (target: Target) => {
    const endpoint = endpoints.get(target)!;
    return { url: endpoint.url, headers: { ...scenario.headers, ...endpoint.headers }, body: scenario.body };
  };
  const load = (target: Target, durationSeconds: number, connections: number) => runLoad({ ...request(target), connections, durationSeconds });
  const byTarget = new Map(
    targets.map((target) => [target, { rps: [] as number[], cpu: [] as number[], p50: [] as number[], p99: [] as number[], timings: [] as RequestTiming[][], failures: 0 }]),
  );

  log('warming up');
  for (const target of targets) await load(target, warmupSeconds(settings, scenarioIndex, target), 16);
  for (let rep = 0; rep < settings.reps; rep++) {
    log(`throughput, repetition ${rep + 1} of ${settings.reps}`);
    for (const target of rotate(targets, rep)) {
      const before = cpuMicros(target.pids());
      const result = await load(target, settings.seconds, 16);
      const used = cpuMicros(target.pids()) - before;
      const figures = byTarget.get(target)!;
      figures.rps.push(result.requestsPerSecond);
      figures.cpu.push(target.pids().length > 0 ? used / Math.max(1, result.total + result.failures) : Number.NaN);
      figures.failures += result.failures;
    }
  }
  const sampler = daemons.length > 0 ? await startDaemonSampler(daemons) : undefined;
  let stretches: DaemonStretch[] | undefined;
  try {
    for (let rep = 0; rep < settings.reps; rep++) {
      log(`latency at ${settings.latencyRate} req/s, repetition ${rep + 1} of ${settings.reps}`);
      for (const target of rotate(targets, rep)) {
        const result = await runPacedLoad({ ...request(target), connections: 4, durationSeconds: settings.seconds, rate: settings.latencyRate });
        // A few late wake-ups are normal on a shared machine; more than 1 % would make the rate less than asked.
        if (result.skipped > result.total / 100) log(`${target.name}: the generator woke too late for ${result.skipped} of its moments (dropped, not sent in a burst)`);
        const figures = byTarget.get(target)!;
        figures.p50.push(result.p50Ms);
        figures.p99.push(result.p99Ms);
        figures.timings.push(result.timings);
        figures.failures += result.failures;
      }
    }
  } finally {
    stretches = await sampler?.stop();
  }
  const tails = new Map(
    [...byTarget].map(([target, figures]) => [target, stretches ? figures.timings.map((timings) => attributeTail(timings, stretches)) : []]),
  );
  const directTarget = targets.find((target) => target.name === 'direct')!;
  const direct = byTarget.get(directTarget)!;
  const directTails = tails.get(directTarget)!;
  const added = (values: number[], reference: number[]) => spread(values.map((value, rep) => value - (reference[rep] ?? Number.NaN)));
  return {
    scenario,
    daemonStretches: stretches ? { count: stretches.length, ranMs: stretches.reduce((sum, stretch) => sum + stretch.ranMs, 0) } : undefined,
    targets: targets.map((target) => {
      const figures = byTarget.get(target)!;
      const tail = tails.get(target)!;
      return {
        target: target.name,
        requestsPerSecond: spread(figures.rps),
        cpuMicrosPerRequest: spread(figures.cpu),
        p50Ms: spread(figures.p50),
        p99Ms: spread(figures.p99),
        addedP50Ms: added(figures.p50, direct.p50),
        addedP99Ms: added(figures.p99, direct.p99),
        p99ClearMs: spread(tail.map((rep) => rep.p99ClearMs)),
        addedP99ClearMs: added(
          tail.map((rep) => rep.p99ClearMs),
          directTails.map((rep) => rep.p99ClearMs),
        ),
        slowest: tail.reduce((sum, rep) => sum + rep.slowest, 0),
        slowestDuringDaemon: tail.reduce((sum, rep) => sum + rep.slowestDuringStretches, 0),
        shareDuringDaemon: spread(tail.map((rep) => rep.shareDuringStretches)).median,
        failures: figures.failures,
      };
    }),
  };
}
