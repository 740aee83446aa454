import { oidcRecords } from '../store/oidc-records.ts';
import { findRecords, forEachRecordPage } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';

/**
 * Whether a user still has a grant (any client). A user without one has no client Gatehouse acts for: what is kept
 * to act for them (sealed upstream tokens, cached downstream tokens) goes when a person ends their last grant
 * (src/admin/grants.ts), and the broker does not write it back afterwards (src/broker/token-broker.ts).
 *
 * By the grants' `accountId` index; when it finds none, by reading the grants, since "none" deletes what the user
 * has: a grant written by a replica of a version without the index (during a rolling upgrade) is not in it until the
 * next backfill (src/store/oidc-index-backfill.ts). Users without a grant are few, and asked about rarely (when a
 * person ends a grant, after the broker writes a user's tokens).
 */
export async function userHasGrant(store: Store, subject: string): Promise<boolean> {
  if ((await findRecords(store, oidcRecords.Grant, 'accountId', subject, { invalid: 'skip' })).length > 0) return true;
  let found = false;
  await forEachRecordPage(store, oidcRecords.Grant, 500, async (page) => {
    found = page.some(({ value }) => value.accountId === subject);
    return found ? 'stop' : undefined;
  });
  return found;
}
