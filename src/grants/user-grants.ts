import { oidcRecords } from '../store/oidc-records.ts';
import { findRecords, forEachRecordPage } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';

/**
 * Which users have no grant left (any client). A user without one has no client Gatehouse acts for: what is kept to
 * act for them (sealed upstream tokens, cached downstream tokens) goes when a person ends their last grant
 * (src/admin/grants.ts), and the broker does not write it back afterwards (src/broker/token-broker.ts).
 *
 * By the grants' `accountId` index; for the users it finds none for, by reading the grants once, since "none" deletes
 * what the user has: a grant written by a replica of a version without the index (during a rolling upgrade) is not
 * in it until the next backfill (src/store/oidc-index-backfill.ts). Users without a grant are few, and asked about
 * rarely (when a person ends grants, after the broker writes a user's tokens).
 */
export async function usersWithoutGrant(store: Store, subjects: Iterable<string>): Promise<Set<string>> {
  const candidates = new Set<string>();
  for (const subject of new Set(subjects)) {
    if ((await findRecords(store, oidcRecords.Grant, 'accountId', subject, { invalid: 'skip' })).length === 0) candidates.add(subject);
  }
  if (candidates.size === 0) return candidates;
  await forEachRecordPage(store, oidcRecords.Grant, 500, async (page) => {
    for (const { value } of page) if (typeof value.accountId === 'string') candidates.delete(value.accountId);
    return candidates.size === 0 ? 'stop' : undefined;
  });
  return candidates;
}

/** Whether one user still has a grant (see usersWithoutGrant). */
export async function userHasGrant(store: Store, subject: string): Promise<boolean> {
  return (await usersWithoutGrant(store, [subject])).size === 0;
}
