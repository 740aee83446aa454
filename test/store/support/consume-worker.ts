import { systemClock } from '../../../src/runtime/clock.ts';
import { createSqliteStore } from '../../../src/store/sqlite-store.ts';

/**
 * A second process for the SQLite cross-process test: opens the file given as argv[2], waits until the epoch-ms
 * start time argv[4] so all workers race together, consumes keys `k0…k(n-1)` (n = argv[3]) as fast as it can, and
 * prints the keys it won as JSON.
 */
const [path, count, startAt] = process.argv.slice(2);
if (path === undefined || count === undefined) throw new Error('usage: consume-worker.ts FILE COUNT [START_AT_MS]');
const store = await createSqliteStore({ path, clock: systemClock, purgeIntervalMs: 0 });
const waitMs = Number(startAt ?? 0) - Date.now();
if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
const won: string[] = [];
for (let i = 0; i < Number(count); i++) {
  if ((await store.consume('code', `k${i}`)) !== undefined) won.push(`k${i}`);
}
await store.close();
process.stdout.write(JSON.stringify(won));
