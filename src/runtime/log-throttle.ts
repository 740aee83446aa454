import type { Clock } from './clock.ts';

/**
 * A report made at most once per `intervalMs`, with how many were held back since the last one. For failures that
 * repeat on a timer while a dependency is down: the rate-limit flush fails ten times a second during a store outage,
 * and a warning (with its stack) each time buried everything else in the log.
 */
export function atMostEvery<T>(intervalMs: number, clock: Clock, report: (value: T, heldBack: number) => void): (value: T) => void {
  let lastAt = Number.NEGATIVE_INFINITY;
  let heldBack = 0;
  return (value) => {
    const now = clock.now();
    if (now - lastAt < intervalMs) {
      heldBack++;
      return;
    }
    lastAt = now;
    report(value, heldBack);
    heldBack = 0;
  };
}
