import { openFilesLimit } from './process-stats.ts';

/**
 * The bench's knobs, from the environment:
 * - BENCH_SECONDS: length of each measured run (default 1.5, which keeps the whole run within about 5 minutes; quick 1);
 * - BENCH_REPS: repetitions of every measurement (default 3; quick 1);
 * - BENCH_WARMUP: seconds of full load each proxy gets before the first scenario is measured (default 8; quick 1);
 *   later scenarios, whose code is mostly warm by then, give each a fifth of it (at least 0.5 s), and direct (whose
 *   backend every proxy's warm-up load also reaches) gets at most 1 s;
 * - BENCH_STREAMS: idle SSE streams per target (default 10,000, lowered to what the open-files limit allows, since a
 *   proxy holds two descriptors per stream; quick 500);
 * - BENCH_QUICK=1: the quick values above, for a smoke run;
 * - BENCH_LATENCY_RATE: the fixed request rate of the latency runs (default 400 req/s, evenly spaced, over at most 4
 *   connections; bench/paced-load.ts);
 * - BENCH_PARTS: which parts run, comma-separated among `streams,scenarios,oauth,micro` (default all);
 * - BENCH_SCENARIOS: which scenarios run, comma-separated keys (`canned,json,sse,legacy`; default all);
 * - BENCH_TARGETS: which targets are measured besides direct, comma-separated names (`nginx,express peer,node floor,
 *   gatehouse`; default all).
 * - BENCH_TRACING=1: Gatehouse runs with OpenTelemetry tracing on (all requests sampled, exported to a sink); compare
 *   its figures with a run without.
 * A run narrowed by any of the last four is a partial run: it prints its figures but leaves the docs alone.
 */
export interface BenchSettings {
  seconds: number;
  reps: number;
  /** Warm-up of each target before the first scenario; later scenarios get a fifth of it. */
  warmupSeconds: number;
  streams: number;
  /** Why `streams` is below what was asked, if it is. */
  streamsNote: string | undefined;
  latencyRate: number;
  quick: boolean;
  parts: ReadonlySet<BenchPart>;
  /** Scenario keys to run; undefined = all. */
  scenarios: ReadonlySet<string> | undefined;
  /** Target names to measure besides direct; undefined = all. */
  targets: ReadonlySet<string> | undefined;
  /** True when a knob narrowed the run: the docs block is then not rewritten. */
  partial: boolean;
}

export const BENCH_PARTS = ['streams', 'scenarios', 'oauth', 'micro'] as const;
export type BenchPart = (typeof BENCH_PARTS)[number];

function list(value: string | undefined): Set<string> | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  return new Set(value.split(',').map((item) => item.trim()).filter(Boolean));
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
  const parts = list(env.BENCH_PARTS);
  const unknown = [...(parts ?? [])].filter((part) => !(BENCH_PARTS as readonly string[]).includes(part));
  if (unknown.length > 0) throw new Error(`BENCH_PARTS: unknown part(s) ${unknown.join(', ')} (known: ${BENCH_PARTS.join(', ')})`);
  const scenarios = list(env.BENCH_SCENARIOS);
  const targets = list(env.BENCH_TARGETS);
  return {
    seconds: number('BENCH_SECONDS', quick ? 1 : 1.5),
    reps: Math.floor(number('BENCH_REPS', quick ? 1 : 3)),
    warmupSeconds: number('BENCH_WARMUP', quick ? 1 : 8),
    streams: Math.min(asked, allowed),
    streamsNote: asked > allowed ? `${asked} asked, lowered to ${allowed}: the open-files limit (${openFilesLimit()}) allows a proxy two descriptors per stream` : undefined,
    latencyRate: number('BENCH_LATENCY_RATE', 400),
    quick,
    parts: (parts as Set<BenchPart> | undefined) ?? new Set(BENCH_PARTS),
    scenarios,
    targets,
    partial: parts !== undefined || scenarios !== undefined || targets !== undefined || env.BENCH_TRACING === '1',
  };
}
