import type { Clock } from '../runtime/clock.ts';
import type { Store } from '../store/store.ts';

/**
 * The `account` records the authorization server writes at each sign-in (namespace `account`, key = subject).
 * The proxy needs them for identity assertions and group-based tool policies; they change only at sign-in, so a
 * short in-memory cache keeps the store off the hot path.
 */
export interface AccountRecord {
  subject: string;
  issuer: string;
  name?: string;
  email?: string;
  tenantId?: string;
  groups: string[];
  firstSeenAt: number;
  lastSeenAt: number;
}

export const ACCOUNT_NAMESPACE = 'account';

export interface AccountCache {
  get(subject: string): Promise<AccountRecord | undefined>;
}

export function createAccountCache(options: { store: Store; clock: Clock; ttlMs?: number; maxEntries?: number }): AccountCache {
  const { store, clock, ttlMs = 30_000, maxEntries = 10_000 } = options;
  const cache = new Map<string, { account: AccountRecord | undefined; until: number }>();
  return {
    async get(subject) {
      const now = clock.now();
      const hit = cache.get(subject);
      if (hit && hit.until > now) return hit.account;
      const account = await store.get<AccountRecord>(ACCOUNT_NAMESPACE, subject);
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
      cache.set(subject, { account, until: now + ttlMs });
      return account;
    },
  };
}
