import { createHash } from 'node:crypto';
import type { Keyring } from '../keys/keyring.ts';
import type { Store } from '../store/store.ts';
import type { ErrorCode } from '../errors/protocol-error.ts';
import type { DownstreamToken } from './types.ts';
import { downstreamFailureNamespace, downstreamTokenNamespace, forgetDownstreamTokens } from '../records/downstream-tokens.ts';

/**
 * Downstream tokens cached per user + audience + scopes (store namespace `downstream-token`). The token is sealed with
 * the keyring and the seal is bound to the cache key, so a record copied under another user's key does not open.
 * A short-lived failure record (namespace `downstream-failure`) lets every replica waiting on the same exchange learn
 * that it failed, and keeps a down IdP from being hammered by each queued tool call.
 */
export { downstreamTokenNamespace, downstreamFailureNamespace, forgetDownstreamTokens };

interface CachedRecord {
  sealed: string;
  expiresAt: number;
  scopes: string[];
}

export interface CachedFailure {
  code: ErrorCode;
  description: string;
  retryAfterSeconds?: number;
}

/** Hashed so the store key reveals neither the user nor the scope set; stable across replicas. */
export function downstreamCacheKey(subject: string, audience: string, scopes: string[]): string {
  const canonical = JSON.stringify([subject, audience, [...new Set(scopes)].sort()]);
  return createHash('sha256').update(canonical).digest('base64url');
}

const sealContext = (cacheKey: string): string => `${downstreamTokenNamespace}:${cacheKey}`;

export interface DownstreamCacheDeps {
  store: Store;
  keyring: Keyring;
}

export async function readCachedToken(deps: DownstreamCacheDeps, cacheKey: string): Promise<DownstreamToken | undefined> {
  const record = await deps.store.get<CachedRecord>(downstreamTokenNamespace, cacheKey);
  if (!record) return undefined;
  try {
    const accessToken = deps.keyring.unseal(record.sealed, sealContext(cacheKey));
    return { accessToken, expiresAt: record.expiresAt, scopes: record.scopes };
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
  const record: CachedRecord = {
    sealed: deps.keyring.seal(token.accessToken, sealContext(cacheKey)),
    expiresAt: token.expiresAt,
    scopes: token.scopes,
  };
  // Indexed by subject so signing a user out (or an admin revoking them) can drop all their downstream tokens.
  await deps.store.set(downstreamTokenNamespace, cacheKey, record, { ttlSeconds, indexes: { subject } });
}

export async function readCachedFailure(store: Store, cacheKey: string): Promise<CachedFailure | undefined> {
  return store.get<CachedFailure>(downstreamFailureNamespace, cacheKey);
}

export async function writeCachedFailure(store: Store, cacheKey: string, subject: string, failure: CachedFailure, ttlSeconds: number): Promise<void> {
  await store.set(downstreamFailureNamespace, cacheKey, failure, { ttlSeconds, indexes: { subject } });
}

export async function clearCachedFailure(store: Store, cacheKey: string): Promise<void> {
  await store.delete(downstreamFailureNamespace, cacheKey);
}

