import { createHash } from 'node:crypto';
import type { DownstreamConfig } from '../config/schema.ts';
import type { Keyring } from '../keys/keyring.ts';
import type { Store } from '../store/store.ts';
import type { DownstreamToken } from './types.ts';
import { forgetDownstreamTokens } from '../records/downstream-tokens.ts';
import { downstreamFailureRecord, downstreamTokenRecord } from '../records/broker.ts';
import { deleteRecord, readRecord, writeRecord } from '../store/record-access.ts';
import type { z } from 'zod';

/**
 * Downstream tokens cached per user + grant + audience + scopes (store namespace `downstream-token`). The token is sealed with
 * the keyring and the seal is bound to the cache key, so a record copied under another user's key does not open.
 * A short-lived failure record (namespace `downstream-failure`) lets every replica waiting on the same exchange learn
 * that it failed, and keeps a down IdP from being hammered by each queued tool call.
 */
export { forgetDownstreamTokens };

export type CachedFailure = z.infer<typeof downstreamFailureRecord.schema>;

/**
 * The cache key of a user's token for a `broker.downstream` entry: everything the identity provider is asked — the
 * grant too, as an on-behalf-of and an RFC 8693 token for one audience and scope set are different tokens (without
 * it, an entry of either grant was served the other's token). Entries asking the same share one (the name is not
 * asked). Hashed so the store key reveals neither the user nor the scope set; stable across replicas.
 */
export function downstreamCacheKey(subject: string, target: Pick<DownstreamConfig, 'grant' | 'audience' | 'scopes'>): string {
  const { grant, audience, scopes } = target;
  const canonical = JSON.stringify([subject, grant, audience, [...new Set(scopes)].sort()]);
  return createHash('sha256').update(canonical).digest('base64url');
}

const sealContext = (cacheKey: string): string => `${downstreamTokenRecord.namespace}:${cacheKey}`;

export interface DownstreamCacheDeps {
  store: Store;
  keyring: Keyring;
}

export async function readCachedToken(deps: DownstreamCacheDeps, cacheKey: string): Promise<DownstreamToken | undefined> {
  // A cache: an invalid record is a miss, and the exchange that follows replaces it.
  const record = await readRecord(deps.store, downstreamTokenRecord, cacheKey, { invalid: 'absent' });
  if (!record) return undefined;
  try {
    const accessToken = deps.keyring.unseal(record.sealed, sealContext(cacheKey));
    return { accessToken, expiresAt: record.expiresAt, scopes: record.scopes, ...(record.obtainedAt === undefined ? {} : { obtainedAt: record.obtainedAt }) };
  } catch {
    // Sealed by a key that has since been pruned, or tampered with: treat as a miss and exchange again.
    return undefined;
  }
}

export async function writeCachedToken(
  deps: DownstreamCacheDeps & { now: number },
  cacheKey: string,
  subject: string,
  token: DownstreamToken,
): Promise<void> {
  const ttlSeconds = Math.floor((token.expiresAt - deps.now) / 1000);
  if (ttlSeconds <= 0) return;
  const record = {
    sealed: deps.keyring.seal(token.accessToken, sealContext(cacheKey)),
    expiresAt: token.expiresAt,
    ...(token.obtainedAt === undefined ? {} : { obtainedAt: token.obtainedAt }),
    scopes: token.scopes,
  };
  // Indexed by subject so signing a user out (or an admin revoking them) can drop all their downstream tokens.
  await writeRecord(deps.store, downstreamTokenRecord, cacheKey, record, { ttlSeconds, indexes: { subject } });
}

export async function readCachedFailure(store: Store, cacheKey: string): Promise<CachedFailure | undefined> {
  // A hint for waiters: an invalid record reads as "no failure known", so the caller tries the exchange itself.
  return readRecord(store, downstreamFailureRecord, cacheKey, { invalid: 'absent' });
}

export async function writeCachedFailure(store: Store, cacheKey: string, subject: string, failure: CachedFailure, ttlSeconds: number): Promise<void> {
  await writeRecord(store, downstreamFailureRecord, cacheKey, failure, { ttlSeconds, indexes: { subject } });
}

export async function clearCachedFailure(store: Store, cacheKey: string): Promise<void> {
  await deleteRecord(store, downstreamFailureRecord, cacheKey);
}

