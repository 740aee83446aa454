import type { Adapter, AdapterPayload } from 'oidc-provider';
import { hashToken } from '../keys/hashing.ts';
import { refreshRotatedRecord, refreshSuccessorRecord } from '../records/authorization.ts';
import type { Clock } from '../runtime/clock.ts';
import { createRecord, readRecord, RecordInvalidError } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';
import { GrantAlreadyConsumedError } from '../store/oidc-adapter.ts';

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
/**
 * How long a rotation that never finished may still be retried, and so how long its two records are kept (the
 * rotation marker and the successor; see rotationRecordSeconds). A refresh the store failed part-way through — the
 * token consumed, its successor never recorded, the client answered 503 — left the client holding a consumed token
 * and nothing else: its retry after the outage, past the grace window, was "reuse", which ended the grant as a theft
 * and signed the user out. No successor was ever handed out, so there is no second chain to fear: the retry is the
 * rotation finishing.
 */
export const UNFINISHED_ROTATION_SECONDS = 900;

/** The TTL of the rotation marker and the successor record: the longer of the grace window and the outage window. */
export const rotationRecordSeconds = (graceSeconds: number): number => Math.max(graceSeconds, UNFINISHED_ROTATION_SECONDS);

export function toleratedRefreshRetries(
  inner: Adapter,
  options: { store: Store; clock: Clock; graceSeconds: number },
): Pick<Adapter, 'consume' | 'find'> {
  const { store, clock, graceSeconds } = options;
  const withinGrace = async (id: string): Promise<boolean> => {
    const key = hashToken(id);
    // Invalid reads as absent: no tolerated retry, so the reuse is handled as a replay (fail closed).
    const rotated = await readRecord(store, refreshRotatedRecord, key, { invalid: 'absent' });
    if (rotated === undefined) return false;
    const age = clock.now() - rotated.at;
    if (age <= graceSeconds * 1000) return true;
    return age <= UNFINISHED_ROTATION_SECONDS * 1000 && !(await rotationFinished(store, key));
  };
  return {
    async consume(id) {
      // The atomic step: of two parallel refreshes with the same token exactly one records the rotation; the other
      // finds the record and, inside the window, is a tolerated retry. Outside it, the token is consumed again, which
      // the adapter hooks take for a replay that ends the grant (adapter-hooks.ts).
      const first = await createRecord(store, refreshRotatedRecord, hashToken(id), { at: clock.now() }, { ttlSeconds: rotationRecordSeconds(graceSeconds) });
      if (!first && !(await withinGrace(id))) return inner.consume(id);
      // This rotation, or a retry of it: the token ends up consumed whichever request gets there, and one already
      // consumed by the other is no theft. A retry used to skip the consume, so when the store failed between the
      // rotation record and the consume, the rotated token was never consumed and kept refreshing — a second chain
      // for whoever held a copy.
      await inner.consume(id).catch((error: unknown) => {
        if (!(error instanceof GrantAlreadyConsumedError)) throw error;
      });
    },
    async find(id) {
      const payload = await inner.find(id);
      if (!payload || payload.consumed === undefined || !(await withinGrace(id))) return payload;
      const { consumed: _consumed, ...retried } = payload;
      return retried as AdapterPayload;
    },
  };
}

/** Whether the rotation recorded its successor (refresh-retry.ts): it finished, and a token was handed out. */
async function rotationFinished(store: Store, key: string): Promise<boolean> {
  try {
    return (await readRecord(store, refreshSuccessorRecord, key)) !== undefined;
  } catch (error) {
    // A successor record that does not read is still a successor: finished (fail closed, the reuse is a replay).
    if (error instanceof RecordInvalidError) return true;
    throw error;
  }
}
