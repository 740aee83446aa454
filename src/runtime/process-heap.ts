/**
 * How a gateway that owns its process (`gatehouse start`) keeps V8's heap: sized for its load while traffic comes
 * and goes, and handed back to the system when traffic has really stopped.
 *
 * V8 is tuned for browser tabs. Its memory reducer waits about 8 s after the mutator goes quiet and then runs
 * collections that shrink the heap: the young generation back to 1 MB, the pooled pages returned to the system.
 * A gateway's traffic comes in bursts with idle gaps between them, and after each gap of 8 s or more the next burst
 * paid for that shrink: the young generation regrew through many small scavenges, the old generation through extra
 * full collections, and the returned pages were faulted in again. Measured on the production start (canned backend,
 * 0.5 s slices after a 12 s gap; `bench/idle-gap.ts`, docs/performance.md "Idle gaps"): 700–900 µs per request in the
 * first slice and 390–660 µs in the second, against ≈ 230–300 µs warm; with the settings below, 240–430 and 220–330.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcOptions = { type: 'major'; execution: 'sync'; flavor: 'last-resort' };

/**
 * Runs V8's `last-resort` collection, the one that also shrinks the heap's spaces. V8 offers it through `gc()`
 * (`--expose-gc`), which a context created after the flag is set carries; the process's own global scope does not
 * gain it, nor do contexts and workers created after the flag is unset again. The context is made for the one call
 * and dropped after it, so nothing holds it between collections. A runtime without `gc()` does nothing.
 */
function collectFully(): void {
  setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('gc');
  setFlagsFromString('--no-expose-gc');
  if (typeof gc === 'function') (gc as (options: GcOptions) => void)({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}

/**
 * One full collection once everything is loaded, before the first request: what start-up leaves behind (module
 * sources, the configuration's schemas being compiled, the authorization server's setup) is freed, and the young
 * generation, which start-up grew to its maximum because so much of what it allocated lived on, goes back to its
 * smallest size. Measured on the production start: the young generation from its maximum (2 ×
 * `--max-semi-space-size`) back to 1 MB, and the idle RSS lower by about that.
 */
export function releaseStartupMemory(): void {
  // A runtime without it starts as it did before: this only returns memory.
  collectFully();
}

/**
 * The V8 flag that keeps the heap across idle gaps: the memory reducer still collects garbage when the process goes
 * quiet, but without shrinking the heap, so the young generation and the pooled pages stay as the load sized them.
 * V8 reads it each time the reducer starts a collection, so setting it at run time takes effect (NODE_OPTIONS refuses
 * it). The bench's Node floor runs with it too.
 */
export const KEEP_HEAP_FLAG = '--no-memory-reducer-favors-memory';

/** Sets KEEP_HEAP_FLAG; `returnHeapWhenQuiet` gives the memory back once traffic has stopped for minutes, not seconds. */
export function keepHeapAcrossIdleGaps(setFlags: (flags: string) => void = setFlagsFromString): void {
  setFlags(KEEP_HEAP_FLAG);
}

export interface QuietOptions {
  /** How long the event loop must stay (nearly) idle before the heap is returned (default 5 minutes). */
  quietMs?: number;
  /** How often the event loop's utilization is sampled (default 30 s). */
  checkEveryMs?: number;
  /** The utilization below which a sample counts as quiet (default 1 %: timers and health checks, no traffic). */
  quietBelow?: number;
  /** A failed collection is reported here, never thrown from the timer (which would end the process). */
  onFailure?: (error: unknown) => void;
  /** The utilization of the event loop since the previous call, 0 to 1 (tests replace it). */
  sampleUtilization?: () => number;
  /** The collection that returns the heap (tests replace it). */
  collect?: () => void;
}

/**
 * Decides, from one utilization sample per period, when a quiet stretch is long enough to return the heap: once
 * per stretch, re-armed by the first busy sample. A process that never gets traffic counts as quiet from its start,
 * so it returns the heap once, `quietMs` after it started.
 */
export class QuietWatch {
  readonly #samplesNeeded: number;
  readonly #quietBelow: number;
  #quietSamples = 0;
  #released = false;

  constructor(options: { quietMs: number; checkEveryMs: number; quietBelow: number }) {
    this.#samplesNeeded = Math.max(1, Math.ceil(options.quietMs / options.checkEveryMs));
    this.#quietBelow = options.quietBelow;
  }

  /** True when this sample completes a quiet stretch that has not been released yet. */
  observe(utilization: number): boolean {
    if (!(utilization < this.#quietBelow)) {
      this.#quietSamples = 0;
      this.#released = false;
      return false;
    }
    this.#quietSamples++;
    if (this.#released || this.#quietSamples < this.#samplesNeeded) return false;
    this.#released = true;
    return true;
  }
}

/** The event loop's utilization between one call and the next (the first call: since the process started). */
function eventLoopSampler(): () => number {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const sample = performance.eventLoopUtilization(now, last);
    last = now;
    return sample.utilization;
  };
}

/**
 * Returns the heap to the system (one last-resort collection, a few tens of milliseconds on a quiet loop) once the
 * event loop has been idle for `quietMs`, and again after each later quiet stretch. The timer does not keep the
 * process alive. Returns the function that stops it.
 */
export function returnHeapWhenQuiet(options: QuietOptions = {}): () => void {
  const { quietMs = 5 * 60_000, checkEveryMs = 30_000, quietBelow = 0.01, onFailure = () => {} } = options;
  const collect = options.collect ?? collectFully;
  const sampleUtilization = options.sampleUtilization ?? eventLoopSampler();
  const watch = new QuietWatch({ quietMs, checkEveryMs, quietBelow });
  const timer = setInterval(() => {
    try {
      if (watch.observe(sampleUtilization())) collect();
    } catch (error) {
      onFailure(error);
    }
  }, checkEveryMs);
  timer.unref();
  return () => clearInterval(timer);
}
