import type { Store } from '../store/store.ts';
import { deleteRecords } from '../store/record-access.ts';
import { downstreamFailureRecord, downstreamTokenRecord } from './broker.ts';

/**
 * Drops every cached downstream token and remembered failure of a user (both indexed by `subject`, see broker.ts).
 * Here, below the parts, because the authorization server calls it at sign-in: a failure remembered before it
 * (`consent_required`) must not answer the next tool call. Call it too when the user signs out or is revoked.
 */
export async function forgetDownstreamTokens(store: Store, subject: string): Promise<number> {
  const [tokens, failures] = await Promise.all([
    deleteRecords(store, downstreamTokenRecord, 'subject', subject),
    deleteRecords(store, downstreamFailureRecord, 'subject', subject),
  ]);
  return tokens + failures;
}
