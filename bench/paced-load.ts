import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { monotonicMs, type RequestTiming } from './kernel-stalls.ts';
import type { LoadResult } from './load.ts';
import { percentile } from './stats.ts';

/**
 * The latency runs' load: requests sent one at a time at evenly spaced moments (an open loop: each goes at its time
 * whether or not the earlier ones have returned), over a pool of a few keep-alive connections.
 *
 * Why not autocannon's `overallRate`: it resets each connection's quota once a second and sends the quota back to
 * back, so "400 req/s over 4 connections" is 4 connections at full speed for the first ≈ 150 ms of every second and
 * nothing after (autocannon's `lib/httpClient.js`; measured in docs/performance.md, "Latency at a moderate rate"). Its
 * percentiles were those of a saturated target with 4 requests queued, not of a moderate load.
 */
export interface PacedLoadOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Requests per second, all connections together. */
  rate: number;
  durationSeconds: number;
  /** Most connections open at once (a request waits for one only when every one is busy). */
  connections: number;
}

export interface PacedLoadResult extends LoadResult {
  /** Moments the generator reached too late (more than one interval behind) and dropped instead of sending in a burst. */
  skipped: number;
  /** Every timed request that succeeded: when it was sent (CLOCK_MONOTONIC ms) and how long its answer took. */
  timings: RequestTiming[];
}

export interface PaceStep {
  /** Send one request now. */
  send: boolean;
  /** The slot the next call waits for. */
  slot: number;
  /** Slots missed by more than an interval, dropped rather than sent together. */
  skipped: number;
  /** Milliseconds until that slot is due. */
  waitMs: number;
}

/**
 * One step of the pacing, pure so a test can drive it with a made-up clock: slot `k` is due at `start + k·interval`.
 * At most one request per step, so a generator that wakes late never catches up with a burst: the slots it missed
 * are dropped and counted.
 */
export function paceStep(nowMs: number, startMs: number, intervalMs: number, slot: number): PaceStep {
  const due = startMs + slot * intervalMs;
  if (nowMs < due) return { send: false, slot, skipped: 0, waitMs: due - nowMs };
  const current = Math.max(slot, Math.floor((nowMs - startMs) / intervalMs));
  const next = current + 1;
  return { send: true, slot: next, skipped: current - slot, waitMs: startMs + next * intervalMs - nowMs };
}

export async function runPacedLoad(options: PacedLoadOptions): Promise<PacedLoadResult> {
  const url = new URL(options.url);
  const pool = new Pool(url.origin, { connections: options.connections, pipelining: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const path = `${url.pathname}${url.search}`;
  const timings: RequestTiming[] = [];
  // performance.now() times the requests; the offset puts their send times on the clock other processes share.
  const toMonotonic = monotonicMs() - performance.now();
  let failures = 0;
  const send = async (timed: boolean): Promise<void> => {
    const sentAt = performance.now();
    try {
      const response = await pool.request({ path, method: 'POST', headers: options.headers, body: options.body });
      await response.body.dump({ limit: Number.POSITIVE_INFINITY });
      const ok = response.statusCode >= 200 && response.statusCode < 300;
      if (!timed) return;
      if (!ok) {
        failures++;
        return;
      }
      timings.push([sentAt + toMonotonic, performance.now() - sentAt]);
    } catch {
      if (timed) failures++;
    }
  };
  try {
    // Open the connections first, so no timed request pays for a TCP handshake.
    await Promise.all(Array.from({ length: options.connections }, () => send(false)));
    const intervalMs = 1000 / options.rate;
    const start = performance.now();
    const end = start + options.durationSeconds * 1000;
    const inFlight = new Set<Promise<void>>();
    let slot = 0;
    let skipped = 0;
    while (performance.now() < end) {
      const step = paceStep(performance.now(), start, intervalMs, slot);
      if (step.send) {
        const request = send(true).finally(() => inFlight.delete(request));
        inFlight.add(request);
        skipped += step.skipped;
      }
      slot = step.slot;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, step.waitMs)));
    }
    await Promise.all(inFlight);
    const times = timings.map(([, duration]) => duration).sort((a, b) => a - b);
    return { requestsPerSecond: times.length / options.durationSeconds, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), total: times.length, failures, skipped, timings };
  } finally {
    await pool.close();
  }
}
