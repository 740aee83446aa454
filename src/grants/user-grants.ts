import { oidcRecords } from '../store/oidc-records.ts';
import { findRecords } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';

/**
 * Whether a user still has a grant (any client), by the grants' `accountId` index. A user without one has no client
 * Gatehouse acts for: what is kept to act for them (sealed upstream tokens, cached downstream tokens) goes when a
 * person ends their last grant (src/admin/grants.ts), and the broker does not write it back afterwards.
 */
export async function userHasGrant(store: Store, subject: string): Promise<boolean> {
  return (await findRecords(store, oidcRecords.Grant, 'accountId', subject, { invalid: 'skip' })).length > 0;
}
