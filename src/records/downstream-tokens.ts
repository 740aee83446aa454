import type { Store } from '../store/store.ts';

/**
 * The broker's downstream token cache, per user + audience + scopes (namespace `downstream-token`, sealed, see
 * src/broker/downstream-cache.ts) and its short-lived failure records (namespace `downstream-failure`), both indexed
 * by `subject`. Declared here because the authorization server clears a user's records at sign-in: a failure
 * remembered before it (`consent_required`) must not answer the next tool call.
 */
export const downstreamTokenNamespace = 'downstream-token';
export const downstreamFailureNamespace = 'downstream-failure';

/**
 * Drops every cached downstream token and remembered failure of a user. Call it when the user signs in again (a fresh
 * consent must not be answered with the `interaction_required` remembered a moment ago), signs out or is revoked.
 */
export async function forgetDownstreamTokens(store: Store, subject: string): Promise<number> {
  const [tokens, failures] = await Promise.all([
    store.deleteByIndex(downstreamTokenNamespace, 'subject', subject),
    store.deleteByIndex(downstreamFailureNamespace, 'subject', subject),
  ]);
  return tokens + failures;
}
