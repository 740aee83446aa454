/**
 * "Did you mean …?" for configuration keys, enum values, environment overrides and command names. A typo such as
 * `servr` must be an error that points at `server`, never a silently ignored setting.
 */

/**
 * Edit distance (insert, delete, substitute, swap two neighbours — the optimal string alignment variant, because
 * swapped letters are the most common typo), case-insensitive.
 */
export function editDistance(a: string, b: string): number {
  const left = a.toLowerCase();
  const right = b.toLowerCase();
  let beforePrevious: number[] = [];
  let previous = Array.from({ length: right.length + 1 }, (_, index) => index);
  for (let i = 1; i <= left.length; i++) {
    const current = [i];
    for (let j = 1; j <= right.length; j++) {
      const cost = left[i - 1] === right[j - 1] ? 0 : 1;
      let best = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && left[i - 1] === right[j - 2] && left[i - 2] === right[j - 1]) {
        best = Math.min(best, (beforePrevious[j - 2] ?? 0) + 1);
      }
      current.push(best);
    }
    beforePrevious = previous;
    previous = current;
  }
  return previous[right.length] ?? 0;
}

/**
 * The candidate closest to `input`, if it is close enough to be a plausible typo: at most a third of the longer
 * word's letters differ (minimum 1, maximum 3). Ties go to the first candidate listed.
 */
export function nearest(input: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(input, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best === undefined) return undefined;
  const allowed = Math.min(3, Math.max(1, Math.floor(Math.max(input.length, best.length) / 3)));
  if (bestDistance <= allowed) return best;
  // An abbreviation such as `prod` for `production`: only when exactly one candidate starts with it.
  const lowered = input.toLowerCase();
  const prefixed = candidates.filter((candidate) => lowered.length >= 3 && candidate.toLowerCase().startsWith(lowered));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}
