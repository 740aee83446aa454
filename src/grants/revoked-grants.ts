import { systemClock, type Clock } from '../runtime/clock.ts';
import type { Store, Unsubscribe } from '../store/store.ts';
import { GRANT_END_REASONS, type GrantEndReason } from './grant-end-reason.ts';
import { grantRevokedChannel, revokedGrantRecord } from '../records/grants.ts';
import { createRecord, listRecordKeys, publishMessage, readRecord, RecordInvalidError, subscribeChannel, writeRecord } from '../store/record-access.ts';

/**
 * Grant revocation on the hot path. Every bearer check asks "is this grant revoked?" and must not touch the store to
 * answer, yet a revocation must be visible on every replica within a second. So a revocation is written to the store
 * (the durable truth, namespace `revoked-grant`) and published on `grant-revoked`; each replica keeps an in-memory set
 * fed by the subscription, and re-reads the namespace on a short period to cover pub/sub's at-most-once delivery
 * (a message lost during a Redis reconnect is picked up by the next re-sync).
 *
 * @see RFC 7009 §2.2 — revoking a token invalidates the grant's other tokens where the server supports it.
 */
/** The namespace, for tests that read the store directly (declared in src/records/grants.ts). */
export const REVOKED_GRANT_NAMESPACE = revokedGrantRecord.namespace;
export const GRANT_REVOKED_CHANNEL = grantRevokedChannel.name;

export interface RevokedGrantRecord {
  grantId: string;
  /** Epoch ms. */
  revokedAt: number;
  /** Why the grant ended (see end-grant.ts); absent on records written before reasons were recorded. */
  reason?: GrantEndReason;
}

/**
 * Marks a grant revoked on every replica. `ttlSeconds` must be at least the longest access-token lifetime: after
 * that, no token of the grant can still pass the expiry check, so the record is no longer needed.
 *
 * This is one step of ending a grant; everything that ends a grant calls `endGrant` (end-grant.ts), which calls this.
 * Resolves to whether this call made the record (the grant was not already revoked).
 */
export async function revokeGrant(
  store: Store,
  grantId: string,
  options: { ttlSeconds: number; clock?: Clock; reason?: GrantEndReason },
): Promise<boolean> {
  const record: RevokedGrantRecord = {
    grantId,
    revokedAt: (options.clock ?? systemClock).now(),
    ...(options.reason === undefined ? {} : { reason: options.reason }),
  };
  // The first ending's record stands: a second (a replay detected after an admin's revocation, two replicas) must not
  // rewrite why the grant ended. But it lives on from now: a second ending may follow a first that failed part-way
  // (the grant and its refresh tokens left in the store), and a token refreshed in between must be refused for its
  // whole life, past the first record's expiry. It is announced again too: a replica may have missed the first message.
  const created = await createRecord(store, revokedGrantRecord, grantId, record, { ttlSeconds: options.ttlSeconds });
  if (!created) {
    const first = await readRecord(store, revokedGrantRecord, grantId, { invalid: 'absent' });
    await writeRecord(store, revokedGrantRecord, grantId, first ?? record, { ttlSeconds: options.ttlSeconds });
  }
  await publishMessage(store, grantRevokedChannel, grantId);
  return created;
}

/**
 * Whether the store holds `grantId` as revoked: the durable truth, read when a single answer must be exact (token
 * introspection) rather than from a replica's in-memory set, which learns of a revocation within a second.
 */
export async function isGrantRevoked(store: Store, grantId: string): Promise<boolean> {
  return (await grantRevocation(store, grantId)) !== undefined;
}

/** The store's revocation of `grantId` (its first reason, when the record has one), or undefined if it has none. */
export async function grantRevocation(store: Store, grantId: string): Promise<{ reason?: GrantEndReason } | undefined> {
  try {
    const record = await readRecord(store, revokedGrantRecord, grantId);
    if (record === undefined) return undefined;
    const reason = GRANT_END_REASONS.find((known) => known === record.reason);
    return reason === undefined ? {} : { reason };
  } catch (error) {
    // The key is the fact (as for the replicas' set): a record whose value does not parse still says revoked.
    if (error instanceof RecordInvalidError) return {};
    throw error;
  }
}

/**
 * Cuts a revocation record's life to `ttlSeconds` once the grant's records are gone (end-grant.ts): until then it
 * lives as long as the grant could, so a grant whose ending failed part-way stays refused.
 */
export async function settleRevocation(store: Store, grantId: string, ttlSeconds: number): Promise<void> {
  const record = await readRecord(store, revokedGrantRecord, grantId, { invalid: 'absent' });
  if (record !== undefined) await writeRecord(store, revokedGrantRecord, grantId, record, { ttlSeconds });
}

export interface RevokedGrantsCache {
  /** Answers from memory only: safe to call on every request. */
  isRevoked(grantId: string): boolean;
  /**
   * Whether the list is recent enough to answer `isRevoked` (re-read within `maxStalenessMs`). A replica cut off from
   * the store misses every revocation made meanwhile — pub/sub and re-sync both go through the store — and kept
   * accepting a revoked grant's tokens for as long as they lived.
   */
  isCurrent(): boolean;
  /** Subscribes and loads the current set; call before serving traffic. */
  start(): Promise<void>;
  /** Re-reads the namespace now (also run periodically). */
  resync(): Promise<void>;
  /**
   * Calls `listener` with each grant id this replica newly learns is revoked (by pub/sub, or by a re-sync that found a
   * message lost), so what outlives a request check — an open stream — can end with the grant. Returns the unsubscribe.
   */
  onRevoked(listener: (grantId: string) => void): () => void;
  /**
   * Calls `listener` when the list stops being current (a re-sync failed past `maxStalenessMs`), once until a re-sync
   * succeeds again: what outlives the request check — an open stream — must not go on carrying a grant whose end this
   * replica cannot learn. Returns the unsubscribe.
   */
  onStale(listener: () => void): () => void;
  stop(): Promise<void>;
}

export interface RevokedGrantsCacheOptions {
  store: Store;
  clock: Clock;
  /** Period of the full re-sync that covers lost pub/sub messages. */
  resyncIntervalMs?: number;
  /** How old the last successful re-sync may be for the list to count as current; 0 (the default): always current. */
  maxStalenessMs?: number;
  onError?: (error: unknown) => void;
}

export function createRevokedGrantsCache(options: RevokedGrantsCacheOptions): RevokedGrantsCache {
  const { store, clock, resyncIntervalMs = 5_000, maxStalenessMs = 0, onError = () => {} } = options;
  let revoked = new Set<string>();
  let syncedAt = clock.now();
  let unsubscribe: Unsubscribe | undefined;
  let timer: NodeJS.Timeout | undefined;

  let staleAnnounced = false;
  const staleListeners = new Set<() => void>();
  let inFlight: Promise<void> | undefined;
  /**
   * A re-sync, and what its outcome says of the list: current again, or stale (said once). One at a time: a store
   * that hangs (no answer, no error) otherwise gathered a new listing every period.
   */
  function resync(): Promise<void> {
    inFlight ??= resyncOnce().finally(() => (inFlight = undefined));
    return inFlight;
  }
  async function resyncOnce(): Promise<void> {
    try {
      await readAll();
      staleAnnounced = false;
    } catch (error) {
      announceIfStale();
      throw error;
    }
  }
  /** Says once that the list went stale; also from the timer while a re-sync hangs (no error to catch then). */
  function announceIfStale(): void {
    if (isCurrent() || staleAnnounced) return;
    staleAnnounced = true;
    for (const listener of staleListeners) {
      try {
        listener();
      } catch (failure) {
        onError(failure);
      }
    }
  }
  const isCurrent = (): boolean => maxStalenessMs <= 0 || clock.now() - syncedAt <= maxStalenessMs;

  async function readAll(): Promise<void> {
    const fresh = new Set<string>();
    let after: string | undefined;
    for (;;) {
      // Keys only: a revoked grant's record exists, whatever its value (fail closed on a corrupt one).
      const page = await listRecordKeys(store, revokedGrantRecord, { limit: 1_000, after });
      for (const key of page) fresh.add(key);
      if (page.length < 1_000) break;
      after = page.at(-1);
    }
    // Keep ids that arrived by pub/sub while the listing ran: the set only ever loses entries that expired.
    for (const id of revoked) if (!fresh.has(id) && recentlyPublished.has(id)) fresh.add(id);
    recentlyPublished.clear();
    const known = revoked;
    revoked = fresh;
    syncedAt = clock.now();
    // A revocation whose message this replica missed (pub/sub is at most once) is learnt here.
    if (listeners.size > 0) for (const id of fresh) if (!known.has(id)) announce(id);
  }
  const recentlyPublished = new Set<string>();
  const listeners = new Set<(grantId: string) => void>();
  const announce = (grantId: string) => {
    for (const listener of listeners) {
      try {
        listener(grantId);
      } catch (error) {
        onError(error);
      }
    }
  };

  return {
    isRevoked: (grantId) => revoked.has(grantId),
    isCurrent,
    resync,
    onStale(listener) {
      staleListeners.add(listener);
      return () => void staleListeners.delete(listener);
    },
    onRevoked(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    async start() {
      unsubscribe = await subscribeChannel(store, grantRevokedChannel, (grantId) => {
        const isNew = !revoked.has(grantId);
        revoked.add(grantId);
        recentlyPublished.add(grantId);
        if (isNew) announce(grantId);
      });
      await resync();
      timer = setInterval(() => {
        // A re-sync still running (a store that hangs) is not joined, which would report its one failure again at
        // every tick: the list is looked at, and may be stale meanwhile.
        if (inFlight !== undefined) return announceIfStale();
        resync().catch(onError);
      }, resyncIntervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await unsubscribe?.();
      unsubscribe = undefined;
    },
  };
}
