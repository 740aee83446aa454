import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC, OIDCContext } from 'oidc-provider';
import type { Logger } from 'pino';
import { hashToken } from '../keys/hashing.ts';
import type { Keyring } from '../keys/keyring.ts';
import { StoreUnavailableError, whenStoreAnswers, type Store } from '../store/store.ts';
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
      // Whether the successor was recorded is unknown: a command whose reply was lost (a connection reset) did run.
      // Recorded, it marks the rotation finished — a token handed out — so the client must get it, or its retry after
      // the grace window is judged a theft and ends the grant. So the record is read back, and decides. (Taking it
      // back instead undid a successor a concurrent retry had already been answered with, and left the rotated token
      // open to a thief past the grace window.) Without it, the client is told to retry, which finishes the rotation
      // (refresh-token-reuse.ts, UNFINISHED_ROTATION_SECONDS).
      const minted = ctx.oidc.entities.RefreshToken as RefreshTokenModel | undefined;
      const recorded = await recordedSuccessor(options, rotation.presented);
      // Ours: the write did run (its reply was lost); the answer goes out as it is.
      if (recorded.kind === 'token' && recorded.token === rotation.issued) return;
      if (recorded.kind === 'token') {
        // Another request's (a retry on another replica got there first, and was answered with it): the same one.
        await minted?.destroy().catch(() => undefined);
        rotation.body.refresh_token = recorded.token;
        return;
      }
      // None: the rotation is unfinished and the retry finishes it. Unknown (the store kept failing): the minted token
      // is kept, since it may be the recorded successor a retry is handed.
      if (recorded.kind === 'none') await minted?.destroy().catch(() => undefined);
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
 * The successor recorded for `presented`, read after a write of it whose outcome is unknown: the token, none, or
 * unknown when the store keeps failing. A few tries: a store that lost one reply usually answers the next command.
 * A record that does not open (sealed with a pruned key) is `'unknown'`: no token to hand out, yet a finished rotation.
 */
type RecordedSuccessor = { kind: 'token'; token: string } | { kind: 'none' } | { kind: 'unknown' };

async function recordedSuccessor(options: RefreshRetryOptions, presented: string): Promise<RecordedSuccessor> {
  const { store, keyring } = options;
  const key = hashToken(presented);
  const read = await whenStoreAnswers(() => readRecord(store, refreshSuccessorRecord, key, { invalid: 'absent' }));
  if (read === undefined) {
    options.logger.warn('refresh answered 503 with its successor possibly recorded: a retry after the grace window may end the grant');
    return { kind: 'unknown' };
  }
  if (read.value === undefined) return { kind: 'none' };
  try {
    return { kind: 'token', token: keyring.unseal(read.value.sealed, key) };
  } catch {
    return { kind: 'unknown' };
  }
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
