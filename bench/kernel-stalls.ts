import { fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { percentile } from './stats.ts';

/**
 * The machine's own pauses, seen from the latency runs.
 *
 * The tail of every Node target's latency here (direct's too, less) came in clusters about 512 ms apart, in which
 * the requests in flight all waited. The kernel thread that keeps that rhythm is DAMON's `kdamond` (the machine runs a
 * DAMON scheme over physical memory, `paddr`, sampling every 500 ms), and most of the slowest requests were in flight
 * while it ran (docs/performance.md, "p99 on this machine"). So the latency runs record when it ran, and the report
 * gives, beside each p99, the p99 of the requests clear of its stretches and how many of a target's slowest 1 % were
 * not. The verdicts stay on the plain figures.
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
 * A poll of the sampler that saw a daemon's run time grow: at `atMs`, by `ranMs` since the poll before it, taken at
 * `previousMs` (CLOCK_MONOTONIC ms).
 */
export interface RunTimeGrowth {
  atMs: number;
  previousMs: number;
  ranMs: number;
}

/** A stretch in which a daemon ran: `ranMs` of CPU time, between `startMs` and `endMs` (CLOCK_MONOTONIC ms). */
export interface DaemonStretch {
  startMs: number;
  endMs: number;
  ranMs: number;
}

/** Milliseconds on CLOCK_MONOTONIC, the clock every process of the machine shares (`process.hrtime`). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * Growths closer than this belong to one stretch. A thread's run time (`/proc/<pid>/schedstat`) is brought up to date
 * at the scheduler's ticks (every 4 ms at this kernel's 250 Hz) and when the thread is switched out, so a thread
 * running without a break shows a growth every tick and nothing to the polls in between; 10 ms joins those, and
 * nothing else: kdamond's runs are ≈ 500 ms apart.
 */
export const JOIN_GAP_MS = 10;

/**
 * The stretches in which the daemons ran, from the sampler's growths (in any order). A growth of `ranMs` seen at
 * `atMs` was accounted at some moment after the poll before it (`previousMs`) and by `atMs`, for running that ended
 * by then; so it ran between `previousMs − ranMs` at the earliest and `atMs` at the latest.
 */
export function stretchesOf(growths: readonly RunTimeGrowth[], joinGapMs = JOIN_GAP_MS): DaemonStretch[] {
  const stretches: DaemonStretch[] = [];
  for (const growth of [...growths].sort((a, b) => a.atMs - b.atMs)) {
    const startMs = growth.previousMs - growth.ranMs;
    const last = stretches.at(-1);
    if (last && startMs - last.endMs <= joinGapMs) {
      last.startMs = Math.min(last.startMs, startMs);
      last.endMs = Math.max(last.endMs, growth.atMs);
      last.ranMs += growth.ranMs;
    } else {
      stretches.push({ startMs, endMs: growth.atMs, ranMs: growth.ranMs });
    }
  }
  return stretches;
}

const DAMON_ADMIN = '/sys/kernel/mm/damon/admin/kdamonds';

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function list(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** What each running DAMON daemon's first context and scheme are set to, by the pid sysfs gives for it. */
function damonSettingsByPid(): Map<number, string> {
  const settings = new Map<number, string>();
  for (const index of list(DAMON_ADMIN).filter((entry) => /^\d+$/.test(entry))) {
    const pid = Number(readTrimmed(`${DAMON_ADMIN}/${index}/pid`));
    const context = `${DAMON_ADMIN}/${index}/contexts/0`;
    const sampleUs = readTrimmed(`${context}/monitoring_attrs/intervals/sample_us`);
    if (!(pid > 0) || sampleUs === undefined) continue;
    const operations = readTrimmed(`${context}/operations`);
    const action = readTrimmed(`${context}/schemes/0/action`);
    settings.set(pid, `DAMON over ${operations ?? 'memory'}${action ? `, action ${action}` : ''}, sampling every ${Number(sampleUs) / 1000} ms`);
  }
  return settings;
}

/** DAMON's worker threads (`kdamond.N`), with what sysfs says they are set to do. */
export function findMemoryDaemons(): KernelDaemon[] {
  const settings = damonSettingsByPid();
  const daemons: KernelDaemon[] = [];
  for (const entry of list('/proc').filter((name) => /^\d+$/.test(name))) {
    const name = readTrimmed(`/proc/${entry}/comm`);
    if (name?.startsWith('kdamond')) daemons.push({ pid: Number(entry), name, settings: settings.get(Number(entry)) });
  }
  return daemons;
}

export interface DaemonSampler {
  /** The stretches since the start; undefined if the sampler died on the way (then said on stderr). */
  stop(): Promise<DaemonStretch[] | undefined>;
}

/**
 * Records the daemons' runs from now until `stop()`: a child process polls their `/proc/<pid>/schedstat` every
 * millisecond (≈ 4 % of one core), only while latency is measured, in its own process so the load generator's event
 * loop does not carry the polling. Resolves undefined, saying why on stderr, if the sampler cannot start: the bench
 * then goes on without those columns.
 */
export async function startDaemonSampler(daemons: KernelDaemon[], answerTimeoutMs = 10_000): Promise<DaemonSampler | undefined> {
  const warn = (text: string) => process.stderr.write(`kernel daemon sampler: ${text}\n`);
  const child = fork(new URL('./kernel-stall-sampler.ts', import.meta.url), daemons.map((daemon) => String(daemon.pid)), {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  // 'close', not 'exit': it comes only after the IPC channel has been read to its end, so after any last message.
  const closed = new Promise<'exited'>((resolve) => child.once('close', () => resolve('exited')));
  /** The child's next message, unless it exits or stays silent for `answerTimeoutMs` first. */
  const nextAnswer = async (): Promise<unknown> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        once(child, 'message').then(([message]) => message as unknown),
        closed,
        new Promise<'timed out'>((resolve) => (timer = setTimeout(() => resolve('timed out'), answerTimeoutMs))),
      ]);
    } catch {
      return 'failed';
    } finally {
      clearTimeout(timer);
    }
  };
  const started = await nextAnswer();
  if (started !== 'sampling') {
    warn(`it did not start (${String(started)}); the latency columns about the daemon stay empty`);
    child.kill();
    return undefined;
  }
  return {
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null || !child.connected) {
        warn('it ended before the latency runs did; the latency columns about the daemon stay empty');
        return undefined;
      }
      const answer = nextAnswer();
      child.send('stop');
      const growths = await answer;
      if (!Array.isArray(growths)) {
        warn(`it did not answer (${String(growths)}); the latency columns about the daemon stay empty`);
        child.kill();
        return undefined;
      }
      await closed;
      return stretchesOf(growths as RunTimeGrowth[]);
    },
  };
}

/** One timed request of a paced run: sent at `startMs` (CLOCK_MONOTONIC ms), answered `durationMs` later. */
export type RequestTiming = readonly [startMs: number, durationMs: number];

/** Which requests were in flight while a daemon ran: a request's span meets a stretch's `[startMs, endMs]`. */
export function inFlightDuringStretches(requests: readonly RequestTiming[], stretches: readonly DaemonStretch[]): boolean[] {
  const windows = stretches.map((stretch) => [stretch.startMs, stretch.endMs] as const).sort((a, b) => a[0] - b[0]);
  return requests.map(([start, duration]) => {
    const end = start + duration;
    for (const [from, to] of windows) {
      // Sorted by start: no later window can meet a request that ended before this one began.
      if (from > end) break;
      if (to >= start) return true;
    }
    return false;
  });
}

export interface TailAttribution {
  /** p99 (ms) of the requests no stretch overlapped. */
  p99ClearMs: number;
  /** Share of all the requests that a stretch overlapped: what "slowestDuringStretches" is to be read against. */
  shareDuringStretches: number;
  /** The slowest 1 % of the requests (those at or above the p99)… */
  slowest: number;
  /** …and how many of them a stretch overlapped. */
  slowestDuringStretches: number;
}

/** The p99 without the requests a daemon's stretch overlapped, and how much of the slowest 1 % such stretches met. */
export function attributeTail(requests: readonly RequestTiming[], stretches: readonly DaemonStretch[]): TailAttribution {
  const during = inFlightDuringStretches(requests, stretches);
  const clear = requests.filter((_, index) => !during[index]).map(([, duration]) => duration).sort((a, b) => a - b);
  const p99 = percentile(requests.map(([, duration]) => duration).sort((a, b) => a - b), 99);
  let slowest = 0;
  let slowestDuringStretches = 0;
  requests.forEach(([, duration], index) => {
    if (duration < p99) return;
    slowest++;
    if (during[index]) slowestDuringStretches++;
  });
  const overlapped = during.filter(Boolean).length;
  return {
    p99ClearMs: percentile(clear, 99),
    shareDuringStretches: requests.length > 0 ? overlapped / requests.length : Number.NaN,
    slowest,
    slowestDuringStretches,
  };
}
