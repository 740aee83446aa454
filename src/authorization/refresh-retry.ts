import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC, OIDCContext } from 'oidc-provider';
import type { Logger } from 'pino';
import { hashToken } from '../keys/hashing.ts';
import type { Keyring } from '../keys/keyring.ts';
import { StoreUnavailableError, type Store } from '../store/store.ts';
import { refreshSuccessorRecord } from '../records/authorization.ts';
import { createRecord, deleteRecord, readRecord } from '../store/record-access.ts';
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
      // The client is told to retry, and the retry finishes the rotation (refresh-token-reuse.ts,
      // UNFINISHED_ROTATION_SECONDS). Whether the successor was recorded is unknown: a command whose reply was lost
      // (a connection reset) did run. Recorded, it would mark the rotation finished — a token handed out — and the
      // client's retry after the grace window would be judged a theft and end the grant. So the record is taken back
      // if it is this request's; and if that fails too, the minted token is kept, since it may be the recorded
      // successor a retry is handed.
      const minted = ctx.oidc.entities.RefreshToken as RefreshTokenModel | undefined;
      if (await forgetUnansweredSuccessor(options, rotation.presented, rotation.issued)) await minted?.destroy().catch(() => undefined);
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
 * Takes back the successor record of a rotation whose answer was a 503, if it holds `issued` (another request's
 * successor, already answered, stays). A few tries: the store that lost one reply usually answers the next command.
 * True when no record of `issued` is left.
 */
async function forgetUnansweredSuccessor(options: RefreshRetryOptions, presented: string, issued: string): Promise<boolean> {
  const { store, keyring } = options;
  const key = hashToken(presented);
  for (let attempt = 0; attempt < 3; attempt += 1) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 200));
    try {
      const existing = await readRecord(store, refreshSuccessorRecord, key, { invalid: 'absent' });
      if (existing === undefined) return true;
      let recorded: string | undefined;
      try {
        recorded = keyring.unseal(existing.sealed, key);
      } catch {
        recorded = undefined;
      }
      if (recorded !== issued) return true;
      await deleteRecord(store, refreshSuccessorRecord, key);
      return true;
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
    }
  }
  options.logger.warn('refresh answered 503 with its successor possibly recorded: a retry after the grace window may end the grant');
  return false;
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
