/**
 * Time is injected everywhere so tests can drive expiry (tokens, store TTLs, consent records) without sleeping.
 * `now()` is milliseconds since the epoch, like `Date.now()`.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  #now: number;
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
  set(ms: number): void {
    this.#now = ms;
  }
}

export const seconds = (ms: number): number => Math.floor(ms / 1000);
