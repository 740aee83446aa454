import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

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

type FullCollection = () => void;

/**
 * V8's `last-resort` collection, the one that also shrinks the heap's spaces. V8 offers it through `gc()`
 * (`--expose-gc`), which a context created after the flag is set carries; the process's own global scope does not
 * gain it, nor do contexts and workers created after the flag is unset again. Undefined on a runtime without it.
 */
function fullCollection(): FullCollection | undefined {
  setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('gc');
  setFlagsFromString('--no-expose-gc');
  if (typeof gc !== 'function') return undefined;
  return () => (gc as (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void)({ type: 'major', execution: 'sync', flavor: 'last-resort' });
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
  fullCollection()?.();
}

/**
 * The memory reducer still collects garbage when the process goes quiet, but without shrinking the heap: the young
 * generation and the pooled pages stay as the load sized them (V8's `--no-memory-reducer-favors-memory`, read each
 * time the reducer starts a collection, so setting it at run time takes effect). `returnHeapWhenQuiet` gives the
 * memory back once traffic has stopped for minutes rather than seconds.
 */
export function keepHeapAcrossIdleGaps(): void {
  setFlagsFromString('--no-memory-reducer-favors-memory');
}

export interface QuietOptions {
  /** How long the event loop must stay (nearly) idle before the heap is returned (default 5 minutes). */
  quietMs?: number;
  /** How often the event loop's utilization is sampled (default 30 s). */
  checkEveryMs?: number;
  /** The utilization below which a sample counts as quiet (default 1 %: timers and health checks, no traffic). */
  quietBelow?: number;
}

/**
 * Decides, from one utilization sample per period, when a quiet stretch is long enough to return the heap: once
 * per stretch, re-armed by the first busy sample.
 */
export class QuietWatch {
  readonly #samplesNeeded: number;
  readonly #quietBelow: number;
  #quietSamples = 0;
  #released = false;

  constructor(options: Required<QuietOptions>) {
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

/**
 * Returns the heap to the system (one last-resort collection) once the event loop has been idle for `quietMs`, and
 * again after each later quiet stretch. The timer does not keep the process alive. Returns the function that stops it.
 */
export function returnHeapWhenQuiet(options: QuietOptions = {}): () => void {
  const settings = { quietMs: 5 * 60_000, checkEveryMs: 30_000, quietBelow: 0.01, ...options };
  const collect = fullCollection();
  if (!collect) return () => {};
  const watch = new QuietWatch(settings);
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const sample = performance.eventLoopUtilization(now, last);
    last = now;
    if (watch.observe(sample.utilization)) collect();
  }, settings.checkEveryMs);
  timer.unref();
  return () => clearInterval(timer);
}
