import autocannon from 'autocannon';
import { percentile } from './stats.ts';

/**
 * One autocannon run, as fast as possible (throughput; the latency runs' paced load is `paced-load.ts`). Percentiles
 * are computed from every response's own timing (autocannon measures each with `process.hrtime`, in fractional ms);
 * its built-in histogram rounds to whole milliseconds, too coarse for "added latency ≤ 1 ms".
 */
export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  total: number;
  failures: number;
}

export interface LoadOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  durationSeconds: number;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const times: number[] = [];
  let failures = 0;
  const instance = autocannon({
    url: options.url,
    method: 'POST',
    headers: options.headers,
    body: options.body,
    connections: options.connections,
    duration: options.durationSeconds,
    // autocannon ends a run at its next sample, one per second by default: a 1.5 s run lasted 2 s. Sampling every
    // 100 ms ends it within 100 ms of its duration (the samples themselves are not used: responses are counted here).
    sampleInt: 100,
    timeout: 10,
  });
  instance.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
    if (statusCode >= 200 && statusCode < 300) times.push(responseTimeMs);
    else failures++;
  });
  const result = await instance;
  times.sort((a, b) => a - b);
  return {
    requestsPerSecond: times.length / result.duration,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
    total: times.length,
    failures: failures + result.errors + result.timeouts,
  };
}
