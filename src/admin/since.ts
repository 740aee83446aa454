import { GatehouseError } from '../errors/internal-errors.ts';
/**
 * `--since` (and the console's time filter): an ISO 8601 date or date-time (`2026-05-01`, `2026-05-01T10:00:00Z`)
 * or a relative age (`90s`, `15m`, `2h`, `7d`, `1w`). Anything else is a usage error naming both forms, because a
 * silently ignored filter would show the operator the wrong records.
 */
export class InvalidSinceError extends GatehouseError {
  constructor(value: string) {
    super('GH_USAGE', `--since ${JSON.stringify(value)} is not a time: use ISO 8601 (2026-05-01T10:00:00Z) or an age like 15m, 2h, 7d`);
    this.name = 'InvalidSinceError';
  }
}

const unitMs: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const RELATIVE = /^(\d{1,6})([smhdw])$/;
/** Date, or date-time with seconds/fraction optional and a `Z` or offset (no zone: read as UTC, said in the docs). */
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/** Epoch ms the value stands for, relative ages counted back from `now`. */
export function parseSince(value: string, now: number): number {
  const text = value.trim();
  const relative = RELATIVE.exec(text);
  if (relative) return now - Number(relative[1]) * (unitMs[relative[2] ?? 's'] ?? 0);
  if (ISO.test(text)) {
    const zoned = /T|\s/.test(text) && !/(?:Z|[+-]\d{2}:?\d{2})$/.test(text) ? `${text}Z` : text;
    const time = Date.parse(zoned.replace(' ', 'T'));
    if (Number.isFinite(time) && isRealDate(text)) return time;
  }
  throw new InvalidSinceError(value);
}

/** Date.parse rolls `2026-02-30` over to March; a calendar date that does not exist is a typo, not a time. */
function isRealDate(text: string): boolean {
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}
