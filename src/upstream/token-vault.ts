import { z } from 'zod';
import type { Keyring } from '../keys/keyring.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Store } from '../store/store.ts';
import type { UpstreamTokens } from './types.ts';
import { upstreamTokensRecord } from '../records/upstream.ts';
import { deleteRecord, readRecord, writeRecord } from '../store/record-access.ts';

/**
 * The user's upstream tokens at rest. They are the most valuable thing Gatehouse holds (an upstream refresh token acts
 * as the user), so they are only ever stored sealed with AES-256-GCM under the keyring's current sealing key, with the
 * subject bound as additional data: a record copied under another user's key fails to open.
 *
 * Declared in src/records/upstream.ts: value `{ v: 1, sealed: <keyring.seal(JSON of UpstreamTokens,
 * 'upstream-tokens:' + subject)>, savedAt: epoch ms }`.
 */

/** Kept when the upstream says nothing about refresh-token lifetime: Entra's default inactivity window is 90 days. */
export const DEFAULT_REFRESH_TOKEN_LIFETIME_SECONDS = 90 * 24 * 3600;
/** What an IdP's `refresh_token_expires_in` is believed up to: a value of centuries is a broken answer, not a session. */
const MAX_REFRESH_TOKEN_LIFETIME_SECONDS = 365 * 24 * 3600;

export interface TokenVaultDeps {
  store: Store;
  keyring: Keyring;
  clock: Clock;
}

export interface SaveUpstreamTokensOptions {
  /** How long the refresh token lives, if the IdP says (`refresh_token_expires_in`); defaults to 90 days. */
  refreshTokenLifetimeSeconds?: number;
}

const upstreamTokensSchema = z.object({
  accessToken: z.string().min(1),
  refreshToken: z.string().min(1).optional(),
  idToken: z.string().min(1).optional(),
  expiresAt: z.number(),
  obtainedAt: z.number().optional(),
  scope: z.string().optional(),
});

const sealingContext = (subject: string): string => `upstream-tokens:${subject}`;

/**
 * Seals and stores the tokens, replacing any the user had. Without a refresh token the record lives only as long
 * as the access token: nothing could renew it afterwards.
 */
export async function saveUpstreamTokens(
  deps: TokenVaultDeps,
  subject: string,
  tokens: UpstreamTokens,
  options: SaveUpstreamTokensOptions = {},
): Promise<void> {
  const { store, keyring, clock } = deps;
  const now = clock.now();
  const plain = upstreamTokensSchema.parse(tokens);
  const ttlSeconds = plain.refreshToken
    ? Math.min(options.refreshTokenLifetimeSeconds ?? DEFAULT_REFRESH_TOKEN_LIFETIME_SECONDS, MAX_REFRESH_TOKEN_LIFETIME_SECONDS)
    : Math.max(1, Math.ceil((plain.expiresAt - now) / 1000));
  const record = { v: 1, sealed: keyring.seal(JSON.stringify(plain), sealingContext(subject)), savedAt: now } as const;
  await writeRecord(store, upstreamTokensRecord, subject, record, { ttlSeconds });
}

/**
 * The user's tokens, or undefined when there are none. A record that no longer opens (its sealing key was pruned, or
 * it was tampered with) is deleted and reported as absent: the only remedy is a new sign-in either way.
 */
export async function loadUpstreamTokens(deps: TokenVaultDeps, subject: string): Promise<UpstreamTokens | undefined> {
  const { store, keyring } = deps;
  // Invalid reads as absent, as it did before the record had a schema: the user signs in again.
  const record = await readRecord(store, upstreamTokensRecord, subject, { invalid: 'absent' });
  if (!record) return undefined;
  try {
    const parsed = upstreamTokensSchema.parse(JSON.parse(keyring.unseal(record.sealed, sealingContext(subject))));
    const tokens: UpstreamTokens = { accessToken: parsed.accessToken, expiresAt: parsed.expiresAt };
    if (parsed.refreshToken !== undefined) tokens.refreshToken = parsed.refreshToken;
    if (parsed.idToken !== undefined) tokens.idToken = parsed.idToken;
    if (parsed.scope !== undefined) tokens.scope = parsed.scope;
    // When it was obtained: a token living less than the refresh skew is used for half its life (token-freshness.ts);
    // dropped here, every call refreshed such a token (and rotated its refresh token).
    if (parsed.obtainedAt !== undefined) tokens.obtainedAt = parsed.obtainedAt;
    return tokens;
  } catch {
    await deleteRecord(store, upstreamTokensRecord, subject);
    return undefined;
  }
}

/** Forgets the user's upstream session: when a person ended the last of their grants (src/admin/grants.ts). */
export async function deleteUpstreamTokens(deps: Pick<TokenVaultDeps, 'store'>, subject: string): Promise<boolean> {
  return deleteRecord(deps.store, upstreamTokensRecord, subject);
}
