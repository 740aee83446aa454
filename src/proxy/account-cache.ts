import type { Clock } from '../runtime/clock.ts';
import { StoreUnavailableError, type Store } from '../store/store.ts';
import { accountRecord, type AccountRecord } from '../records/account.ts';
import { readRecord } from '../store/record-access.ts';
export type { AccountRecord };

/**
 * The `account` records the authorization server writes at each sign-in (src/records/account.ts). The proxy needs
 * them for identity assertions and group-based tool policies; they change only at sign-in, so a short in-memory
 * cache keeps the store off the hot path.
 */

export interface AccountCache {
  get(subject: string): Promise<AccountRecord | undefined>;
}

export interface AccountCacheOptions {
  store: Store;
  clock: Clock;
  ttlMs?: number;
  /**
   * How long past its TTL a cached account may still be served while the store is unavailable (default 5 min):
   * a user who was just verified keeps working through a short outage, but group changes are never ignored for
   * longer than this.
   */
  staleIfUnavailableMs?: number;
  maxEntries?: number;
}

export function createAccountCache(options: AccountCacheOptions): AccountCache {
  const { store, clock, ttlMs = 30_000, staleIfUnavailableMs = 300_000, maxEntries = 10_000 } = options;
  const cache = new Map<string, { account: AccountRecord | undefined; until: number }>();
  return {
    async get(subject) {
      const now = clock.now();
      const hit = cache.get(subject);
      if (hit && hit.until > now) return hit.account;
      let account: AccountRecord | undefined;
      try {
        // An invalid record is an error (GH_RECORD_INVALID), not "no account": policies read its groups.
        account = await readRecord(store, accountRecord, subject);
      } catch (error) {
        // RFC 5861's stale-if-error, bounded; without a usable copy the caller gets the 503 the error maps to.
        if (error instanceof StoreUnavailableError && hit && hit.until + staleIfUnavailableMs > now) return hit.account;
        throw error;
      }
      cache.delete(subject);
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
      cache.set(subject, { account, until: now + ttlMs });
      return account;
    },
  };
}
