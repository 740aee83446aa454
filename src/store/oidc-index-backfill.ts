import type { Logger } from 'pino';
import { oidcIndexesOf } from './oidc-adapter.ts';
import { oidcRecords } from './oidc-records.ts';
import { addRecordIndexes, forEachRecordPage } from './record-access.ts';
import type { Store } from './store.ts';

/** Grants read per page: one listing call, then one `addIndexes` per grant of the page, concurrently. */
const PAGE_SIZE = 500;

/**
 * Gives the grants written before their `accountId` and `clientId` indexes existed (oidc-records.ts) those indexes,
 * so a user's grants and a client's are found by index, not by reading every grant. Without this, an upgraded
 * gateway would not list those grants on the user's connected-apps page, and revoking their client would miss them.
 *
 * It runs at every start, not once behind a marker: during a rolling upgrade a replica of the previous version still
 * writes grants without the indexes, and the next start of any replica picks them up. A grant that has its indexes
 * costs one read (SQLite) or one GET (Redis); only a missing index is written, without touching the grant itself.
 * Returns how many grants were read (a record that is no object is not one).
 */
export async function indexGrantsWrittenBefore(store: Store, logger?: Logger): Promise<number> {
  const grants = oidcRecords.Grant;
  const started = performance.now();
  // oidc-provider owns the shape: a record that is no object has no fields to index, and is skipped (not counted).
  const seen = await forEachRecordPage(store, grants, PAGE_SIZE, async (page) => {
    await Promise.all(
      page.map(async ({ key, value }) => {
        const indexes = oidcIndexesOf('Grant', value);
        if (Object.keys(indexes).length > 0) await addRecordIndexes(store, grants, key, indexes);
      }),
    );
  });
  logger?.debug({ grants: seen, durationMs: Math.round(performance.now() - started) }, 'grant indexes checked');
  return seen;
}

