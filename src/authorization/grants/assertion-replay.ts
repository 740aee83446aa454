import { createHash } from 'node:crypto';
import { assertionJtiRecord } from '../../records/assertions.ts';
import type { Clock } from '../../runtime/clock.ts';
import { createRecord, deleteRecord } from '../../store/record-access.ts';
import type { Store } from '../../store/store.ts';

/** Clock difference tolerated on an assertion's `exp`/`iat`; the replay record outlives `exp` by as much. */
export const ASSERTION_CLOCK_SKEW_SECONDS = 60;

/**
 * The furthest ahead an assertion's `exp` may be (RFC 7523 §3 item 4 lets the server limit it): a day, the longest a
 * platform token lives (Entra managed identities; ID-JAGs and GitHub's live minutes). The replay record lives until
 * `exp`, so without a bound one assertion would hold a record for years, or overflow the store's TTL.
 */
export const MAX_ASSERTION_LIFETIME_SECONDS = 24 * 60 * 60;

/**
 * Which time of an assertion is out of bounds, if any — JWT grants and client assertions (`private_key_jwt`) alike:
 * `iat` ahead of the clock by more than the skew, or `exp` beyond the longest lifetime accepted. Expiry itself is the
 * JWT library's check.
 */
export function assertionTimeProblem(claims: { exp?: unknown; iat?: unknown }, nowSeconds: number): 'iat' | 'exp' | undefined {
  if (typeof claims.iat === 'number' && claims.iat - nowSeconds > ASSERTION_CLOCK_SKEW_SECONDS) return 'iat';
  if (typeof claims.exp === 'number' && claims.exp - nowSeconds > MAX_ASSERTION_LIFETIME_SECONDS + ASSERTION_CLOCK_SKEW_SECONDS) return 'exp';
  return undefined;
}

/**
 * Records a JWT grant's `jti` until the assertion expires; false when it was already used, on any replica sharing the
 * store (one atomic set-if-absent, so two concurrent requests cannot both win).
 * @see RFC 7523 §3 item 7, draft-ietf-oauth-identity-assertion-authz-grant §4.4.1
 */
export async function firstUseOfAssertion(
  deps: { store: Store; clock: Clock },
  assertion: { iss: string; jti: string; exp: number },
): Promise<boolean> {
  const key = assertionKey(assertion);
  const now = deps.clock.now();
  const ttlSeconds = Math.max(1, Math.ceil(assertion.exp - now / 1000) + ASSERTION_CLOCK_SKEW_SECONDS);
  return createRecord(deps.store, assertionJtiRecord, key, { at: now }, { ttlSeconds });
}

/**
 * Forgets an assertion's use: the store failed after its `jti` was recorded and before a token was issued for it, so
 * the client — told 503, retry — can present the same assertion again instead of being refused as a replay for an
 * outage. Best effort: with the store still down the record stays, and the client asks its IdP for a new assertion.
 */
export async function forgetAssertionUse(deps: { store: Store }, assertion: { iss: string; jti: string }): Promise<void> {
  await deleteRecord(deps.store, assertionJtiRecord, assertionKey(assertion)).catch(() => undefined);
}

const assertionKey = (assertion: { iss: string; jti: string }): string => createHash('sha256').update(`${assertion.iss}\u0000${assertion.jti}`).digest('hex');
