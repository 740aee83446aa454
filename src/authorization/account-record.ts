import type { Account } from 'oidc-provider';
import { accountRecord, type AccountRecord } from '../records/account.ts';
export { type AccountRecord };
import type { Clock } from '../runtime/clock.ts';
import type { Store } from '../store/store.ts';
import { readRecord, writeRecord } from '../store/record-access.ts';
import type { UpstreamIdentity } from '../upstream/types.ts';

/**
 * The `account` record (src/records/account.ts) written at each sign-in: the proxy builds identity assertions from
 * it (src/proxy/account-cache.ts), the admin pages list it.
 */

export async function recordSignIn(store: Store, clock: Clock, identity: UpstreamIdentity): Promise<AccountRecord> {
  const now = clock.now();
  // Invalid reads as absent: this sign-in rewrites the record whole, which is the repair.
  const previous = await readRecord(store, accountRecord, identity.subject, { invalid: 'absent' });
  const record: AccountRecord = {
    subject: identity.subject,
    issuer: identity.issuer,
    ...(identity.name === undefined ? {} : { name: identity.name }),
    ...(identity.email === undefined ? {} : { email: identity.email }),
    ...(identity.tenantId === undefined ? {} : { tenantId: identity.tenantId }),
    groups: identity.groups,
    firstSeenAt: previous?.firstSeenAt ?? now,
    lastSeenAt: now,
  };
  await writeRecord(store, accountRecord, identity.subject, record);
  return record;
}

/** oidc-provider's `findAccount`: a token is issued only for a subject that has signed in through us. */
export function accountFinder(store: Store) {
  return async (_ctx: unknown, subject: string): Promise<Account | undefined> => {
    const record = await readRecord(store, accountRecord, subject);
    if (record === undefined) return undefined;
    return {
      accountId: record.subject,
      claims: () => ({
        sub: record.subject,
        ...(record.name === undefined ? {} : { name: record.name }),
        ...(record.email === undefined ? {} : { email: record.email }),
      }),
    };
  };
}
