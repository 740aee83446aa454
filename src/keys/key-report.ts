import type { KeyListing } from './rotation.ts';

/**
 * What `gatehouse keys list|rotate|prune` print. Built only from KeyListing, which holds ids, algorithms and times,
 * so no key material can reach the terminal (or a CI log that captured it).
 */

/** A key time as an ISO 8601 UTC string to the second. */
export function formatKeyTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
const iso = formatKeyTime;

function statusText(key: KeyListing, now: number): string {
  if (key.status === 'current') return 'current';
  const since = `retired since ${iso(key.retiredAt ?? 0)}`;
  if (key.prunableAt === undefined) return since;
  return key.prunableAt <= now ? `${since}, prunable now` : `${since}, prunable after ${iso(key.prunableAt)}`;
}

/** A fixed-width table: KID, USE, ALG, STATUS, CREATED. */
export function formatKeyTable(keys: KeyListing[], now: number): string {
  const rows = [
    ['KID', 'USE', 'ALG', 'STATUS', 'CREATED'],
    ...keys.map((key) => [key.kid, key.use, key.alg, statusText(key, now), iso(key.createdAt)]),
  ];
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  '))
    .join('\n');
}

/** The JSON form (`--json`): times as ISO strings, the same fields as the table plus `prunableAt`. */
export function keyListingJson(keys: KeyListing[]): Record<string, string>[] {
  return keys.map((key) => ({
    kid: key.kid,
    use: key.use,
    alg: key.alg,
    status: key.status,
    createdAt: iso(key.createdAt),
    ...(key.retiredAt === undefined ? {} : { retiredAt: iso(key.retiredAt) }),
    ...(key.prunableAt === undefined ? {} : { prunableAt: iso(key.prunableAt) }),
  }));
}

/** The earliest time a retired key becomes prunable, for "nothing to prune yet" messages. */
export function nextPrunableAt(keys: KeyListing[]): number | undefined {
  const times = keys.flatMap((key) => (key.prunableAt === undefined ? [] : [key.prunableAt]));
  return times.length === 0 ? undefined : Math.min(...times);
}
