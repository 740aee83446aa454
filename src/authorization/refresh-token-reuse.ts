import type { Adapter, AdapterPayload } from 'oidc-provider';
import { hashToken } from '../keys/hashing.ts';
import { refreshRotatedRecord } from '../records/authorization.ts';
import type { Clock } from '../runtime/clock.ts';
import { createRecord, readRecord } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';

/**
 * Refresh token reuse detection, RFC 9700 §4.14.2. Every refresh rotates the token (token-policy.ts); presenting a
 * rotated token again means it leaked, so the grant ends everywhere. Three places make that whole:
 *
 * 1. oidc-provider itself: a consumed refresh token presented again → `revoke(grant)`, which the adapter hooks turn
 *    into `endGrant(…, 'refresh_reuse')` (adapter-hooks.ts);
 * 2. the store's atomic consume: two refreshes with one token at the same moment → the loser ends the grant
 *    (adapter-hooks.ts, GrantAlreadyConsumedError);
 * 3. this file: a client that retries a refresh (lost response, two tabs racing) within `graceSeconds` is not a
 *    thief. Its retry is tolerated here, and refresh-retry.ts hands it the *same* successor the first refresh got, so
 *    a retry never forks a second live chain.
 */
export function toleratedRefreshRetries(
  inner: Adapter,
  options: { store: Store; clock: Clock; graceSeconds: number },
): Pick<Adapter, 'consume' | 'find'> {
  const { store, clock, graceSeconds } = options;
  const withinGrace = async (id: string): Promise<boolean> => {
    // Invalid reads as absent: no tolerated retry, so the reuse is handled as a replay (fail closed).
    const rotated = await readRecord(store, refreshRotatedRecord, hashToken(id), { invalid: 'absent' });
    return rotated !== undefined && clock.now() - rotated.at <= graceSeconds * 1000;
  };
  return {
    async consume(id) {
      // The atomic step: of two parallel refreshes with the same token exactly one records the rotation and consumes
      // the token; the other finds the record and, inside the window, is a tolerated retry (consuming again would
      // count as a replay and revoke the grant).
      const first = await createRecord(store, refreshRotatedRecord, hashToken(id), { at: clock.now() }, { ttlSeconds: graceSeconds });
      if (!first && (await withinGrace(id))) return;
      await inner.consume(id);
    },
    async find(id) {
      const payload = await inner.find(id);
      if (!payload || payload.consumed === undefined || !(await withinGrace(id))) return payload;
      const { consumed: _consumed, ...retried } = payload;
      return retried as AdapterPayload;
    },
  };
}
