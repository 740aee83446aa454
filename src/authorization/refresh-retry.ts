import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC, OIDCContext } from 'oidc-provider';
import type { Logger } from 'pino';
import { hashToken } from '../keys/hashing.ts';
import type { Keyring } from '../keys/keyring.ts';
import { StoreUnavailableError, type Store } from '../store/store.ts';
import { refreshSuccessorRecord } from '../records/authorization.ts';
import { createRecord, readRecord } from '../store/record-access.ts';
import { rotationRecordSeconds } from './refresh-token-reuse.ts';
import { answerInvalidGrant, answerTemporarilyUnavailable } from './token-endpoint-answers.ts';

/**
 * A refresh retried inside the grace window (adapter-hooks.ts) gets the SAME successor refresh token the first
 * refresh got, plus a fresh access token of the same grant: an idempotent retry. Without this, every retry with the
 * rotated token minted another live token, so a thief refreshing a stolen token within the window held a chain of
 * its own next to the victim's, and reuse detection never fired. Now there is one chain; whoever falls behind on it
 * presents a consumed token after the window and the whole grant ends (oidc-provider's reuse detection).
 * @see RFC 9700 §4.14.2 (refresh token rotation and reuse detection)
 *
 * The successor is kept for the window only, sealed with the keyring (AES-256-GCM) under the predecessor's hash,
 * so the store never holds a usable refresh token in clear.
 */
export interface RefreshRetryOptions {
  store: Store;
  keyring: Keyring;
  graceSeconds: number;
  logger: Logger;
}

interface RefreshTokenModel {
  destroy(): Promise<void>;
}

export function installIdempotentRefreshRetry(provider: Provider, options: RefreshRetryOptions): void {
  const { graceSeconds } = options;
  if (graceSeconds <= 0) return;
  provider.use(async (ctx, next) => {
    await next();
    const rotation = rotationOf(ctx);
    if (rotation === undefined) return;
    let successor: string | undefined;
    try {
      successor = await firstSuccessor(options, rotation.presented, rotation.issued);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      // The client is told to retry; the token this request minted never leaves the server (best effort: the store is failing), and the
      // retry finishes the rotation (refresh-token-reuse.ts, UNFINISHED_ROTATION_SECONDS).
      await (ctx.oidc.entities.RefreshToken as RefreshTokenModel | undefined)?.destroy().catch(() => undefined);
      answerTemporarilyUnavailable(ctx, error);
      return;
    }
    if (successor === rotation.issued) return;
    // A retry: the refresh token this request minted never leaves the server.
    await (ctx.oidc.entities.RefreshToken as RefreshTokenModel | undefined)?.destroy();
    if (successor !== undefined) {
      rotation.body.refresh_token = successor;
      return;
    }
    // The first successor cannot be recovered (its record expired in between, or the key that sealed it is gone):
    // refuse rather than hand out a second chain; the client signs in again.
    options.logger.warn('refresh retry refused: the successor of the rotated token is no longer available');
    answerInvalidGrant(ctx);
  });
}

interface Rotation {
  presented: string;
  issued: string;
  body: { refresh_token: string };
}

/** A successful refresh that rotated the presented token; undefined for every other request. */
function rotationOf(ctx: KoaContextWithOIDC): Rotation | undefined {
  const oidc = ctx.oidc as OIDCContext | undefined;
  if (oidc?.route !== 'token' || ctx.status !== 200 || oidc.params?.grant_type !== 'refresh_token') return undefined;
  const presented = oidc.params.refresh_token;
  const body = ctx.body as { refresh_token?: unknown } | undefined;
  if (typeof presented !== 'string' || typeof body?.refresh_token !== 'string' || body.refresh_token === presented) return undefined;
  return { presented, issued: body.refresh_token, body: body as { refresh_token: string } };
}

/**
 * The successor of `presented`: `issued` when this is the first rotation (setIfAbsent is the atomic step, so of
 * parallel refreshes exactly one wins and the others get its token), the recorded one for a retry.
 */
async function firstSuccessor(options: RefreshRetryOptions, presented: string, issued: string): Promise<string | undefined> {
  const { store, keyring, graceSeconds } = options;
  const key = hashToken(presented);
  const record = { sealed: keyring.seal(issued, key) };
  // Kept as long as the rotation marker: its presence says the rotation finished (refresh-token-reuse.ts).
  if (await createRecord(store, refreshSuccessorRecord, key, record, { ttlSeconds: rotationRecordSeconds(graceSeconds) })) return issued;
  // Invalid reads as absent: the retry is refused, as when the successor cannot be unsealed.
  const existing = await readRecord(store, refreshSuccessorRecord, key, { invalid: 'absent' });
  if (existing === undefined) return undefined;
  try {
    return keyring.unseal(existing.sealed, key);
  } catch {
    return undefined;
  }
}
