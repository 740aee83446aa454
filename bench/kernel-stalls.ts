import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { percentile } from './load.ts';

/**
 * The machine's own pauses, seen from the latency runs.
 *
 * The tail of every Node target's latency here (direct's too, less) came in clusters about 510 ms apart, each a
 * stretch of 10–20 ms in which every request in flight waited. The kernel thread that keeps that rhythm is DAMON's
 * `kdamond` (the machine runs a DAMON scheme over physical memory, `paddr`, sampling every 500 ms): polling its run
 * time every millisecond during paced runs, 60–85 % of the requests slower than 3 ms through the Node floor and
 * Gatehouse were in flight while it ran (docs/performance.md, "p99 on this machine"). So the latency runs record
 * when it ran, and the report gives, beside each p99, the p99 of the requests that no run of it overlapped, and how
 * many of a target's slowest 1 % did overlap one. The verdicts stay on the plain figures.
 *
 * Where no such thread exists (another machine), nothing is sampled and those columns say so.
 */

/** A kernel thread whose runs the latency runs record. */
export interface KernelDaemon {
  pid: number;
  name: string;
  /** What the kernel says it is set to do, when it says (DAMON's sysfs): shown in the run's header. */
  settings: string | undefined;
}

/**
 * One stretch in which a daemon ran, `ranMs` of CPU time somewhere between `startMs` (the last poll that saw it idle)
 * and `endMs` (the poll that last saw it run), on CLOCK_MONOTONIC.
 */
export interface DaemonRun {
  startMs: number;
  endMs: number;
  ranMs: number;
}

/** Milliseconds on CLOCK_MONOTONIC, the clock every process of the machine shares (`process.hrtime`). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

const DAMON_ADMIN = '/sys/kernel/mm/damon/admin/kdamonds';

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** DAMON's worker threads (`kdamond.N`), with what their first context and scheme are set to, where sysfs says. */
export function findMemoryDaemons(): KernelDaemon[] {
  const daemons: KernelDaemon[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return daemons;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const name = readTrimmed(`/proc/${entry}/comm`);
    if (!name?.startsWith('kdamond')) continue;
    const index = /^kdamond\.(\d+)$/.exec(name)?.[1];
    const context = `${DAMON_ADMIN}/${index}/contexts/0`;
    const sampleUs = readTrimmed(`${context}/monitoring_attrs/intervals/sample_us`);
    const operations = readTrimmed(`${context}/operations`);
    const action = readTrimmed(`${context}/schemes/0/action`);
    const settings =
      index !== undefined && sampleUs !== undefined
        ? `DAMON over ${operations ?? 'memory'}${action ? `, action ${action}` : ''}, sampling every ${Number(sampleUs) / 1000} ms`
        : undefined;
    daemons.push({ pid: Number(entry), name, settings });
  }
  return daemons;
}

/**
 * Records the daemons' runs from now until `stop()`: a child process polls their `/proc/<pid>/schedstat` (run time,
 * ns) every millisecond, a few percent of one core, only while latency is measured. In its own process, so the
 * load generator's event loop does not carry the polling.
 */
export async function startDaemonSampler(daemons: KernelDaemon[]): Promise<{ stop(): Promise<DaemonRun[]> }> {
  const child: ChildProcess = fork(new URL('./kernel-stall-sampler.ts', import.meta.url), daemons.map((daemon) => String(daemon.pid)), {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const [ready] = (await once(child, 'message')) as [unknown];
  if (ready !== 'sampling') throw new Error('the kernel daemon sampler did not start');
  return {
    async stop() {
      const answer = once(child, 'message') as Promise<[DaemonRun[]]>;
      child.send('stop');
      const [runs] = await answer;
      await once(child, 'exit').catch(() => undefined);
      return runs;
    },
  };
}

/** One timed request of a paced run: sent at `startMs` (monotonic), answered `durationMs` later. */
export type RequestTiming = readonly [startMs: number, durationMs: number];

/** Which requests were in flight while a daemon ran: a request's span meets a run's `[startMs, endMs]`. */
export function inFlightDuringRuns(requests: readonly RequestTiming[], runs: readonly DaemonRun[]): boolean[] {
  const windows = runs.map((run) => [run.startMs, run.endMs] as const).sort((a, b) => a[0] - b[0]);
  return requests.map(([start, duration]) => {
    const end = start + duration;
    for (const [from, to] of windows) {
      if (from > end) break;
      if (to >= start) return true;
    }
    return false;
  });
}

export interface TailAttribution {
  /** p99 (ms) of the requests no daemon run overlapped. */
  p99OutsideMs: number;
  /** The slowest 1 % of the requests (those at or above the p99)… */
  slowest: number;
  /** …and how many of them were in flight while a daemon ran. */
  slowestDuringRuns: number;
}

/** The p99 without the requests a daemon run overlapped, and how much of the slowest 1 % such runs account for. */
export function attributeTail(requests: readonly RequestTiming[], runs: readonly DaemonRun[]): TailAttribution {
  const during = inFlightDuringRuns(requests, runs);
  const outside = requests.filter((_, index) => !during[index]).map(([, duration]) => duration).sort((a, b) => a - b);
  const p99 = percentile(requests.map(([, duration]) => duration).sort((a, b) => a - b), 99);
  let slowest = 0;
  let slowestDuringRuns = 0;
  requests.forEach(([, duration], index) => {
    if (duration < p99) return;
    slowest++;
    if (during[index]) slowestDuringRuns++;
  });
  return { p99OutsideMs: percentile(outside, 99), slowest, slowestDuringRuns };
}
