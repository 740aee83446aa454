import { openFilesLimit } from './process-stats.ts';

/**
 * The bench's knobs, from the environment:
 * - BENCH_SECONDS: length of each measured run (default 2; quick 1);
 * - BENCH_REPS: repetitions of every measurement (default 3; quick 1);
 * - BENCH_STREAMS: idle SSE streams per target (default 10,000, lowered to what the open-files limit allows, since a
 *   proxy holds two descriptors per stream; quick 500);
 * - BENCH_QUICK=1: the quick values above, for a smoke run;
 * - BENCH_LATENCY_RATE: the fixed request rate of the latency runs (default 400 req/s, all connections together).
 */
export interface BenchSettings {
  seconds: number;
  reps: number;
  streams: number;
  /** Why `streams` is below what was asked, if it is. */
  streamsNote: string | undefined;
  latencyRate: number;
  quick: boolean;
}

export function benchSettings(env: Record<string, string | undefined> = process.env): BenchSettings {
  const quick = env.BENCH_QUICK === '1';
  const number = (name: string, fallback: number) => {
    const value = Number(env[name] ?? fallback);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number (got "${env[name]}")`);
    return value;
  };
  const asked = Math.floor(number('BENCH_STREAMS', quick ? 500 : 10_000));
  const allowed = Math.floor((openFilesLimit() - 200) / 2);
  return {
    seconds: number('BENCH_SECONDS', quick ? 1 : 2),
    reps: Math.floor(number('BENCH_REPS', quick ? 1 : 3)),
    streams: Math.min(asked, allowed),
    streamsNote: asked > allowed ? `${asked} asked, lowered to ${allowed}: the open-files limit (${openFilesLimit()}) allows a proxy two descriptors per stream` : undefined,
    latencyRate: number('BENCH_LATENCY_RATE', 400),
    quick,
  };
}
