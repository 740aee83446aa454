import { randomBytes } from 'node:crypto';
import type { Adapter, AdapterPayload, KoaContextWithOIDC } from 'oidc-provider';
import Provider from 'oidc-provider';
import { hashToken } from '../keys/hashing.ts';
import { codeExchangedRecord } from '../records/authorization.ts';
import type { Clock } from '../runtime/clock.ts';
import type { EndGrant } from '../grants/end-grant.ts';
import { GrantAlreadyConsumedError } from '../store/oidc-adapter.ts';
import { createRecord, readRecord, RecordInvalidError } from '../store/record-access.ts';
import { StoreUnavailableError, whenStoreAnswers, type Store } from '../store/store.ts';
import { answerInvalidGrant, answerTemporarilyUnavailable } from './token-endpoint-answers.ts';

/**
 * A code exchange the store fails part-way through: oidc-provider consumes the code, then saves the tokens; a write
 * failing after the consume answers the client 503 and hands out nothing. The client's retry with the same code was a
 * "replay" (RFC 6749 §4.1.2): the grant ended and the user, who had just approved it, had to start over — the
 * same fault as a rotation the store interrupted (refresh-token-reuse.ts), for the first token of every grant.
 *
 * An exchange is *finished* when its token response is ready and recorded (`code-exchanged`, written with
 * `setIfAbsent` before the response leaves). A consumed code whose exchange never finished has given no tokens to
 * anyone, so presenting it again, within its lifetime, is that exchange finishing:
 * - the adapter reads it as unconsumed and lets it be consumed again (toleratedCodeRetries);
 * - of several exchanges that get that far, exactly one records the finish; every other one is a party redeeming a
 *   code someone else redeemed at the same moment, so the code leaked and the grant ends (installCodeExchangeFinish),
 *   as it did before when the second consume lost.
 * A code whose exchange finished is a replay as before: oidc-provider ends the grant. PKCE still binds every attempt
 * to the verifier, so the tolerance gives nothing to a party holding the code alone.
 */
export function toleratedCodeRetries(inner: Adapter, options: { store: Store }): Pick<Adapter, 'consume' | 'find'> {
  const { store } = options;
  return {
    async find(id) {
      const payload = await inner.find(id);
      if (!payload || payload.consumed === undefined || (await exchangeFinished(store, id))) return payload;
      const { consumed: _consumed, ...unfinished } = payload;
      return unfinished as AdapterPayload;
    },
    async consume(id) {
      try {
        await inner.consume(id);
      } catch (error) {
        // Consumed by an exchange that never finished: this is its retry, or a party racing it; the finish decides.
        if (error instanceof GrantAlreadyConsumedError && !(await exchangeFinished(store, id))) {
          const ctx = Provider.ctx as object | undefined;
          if (ctx !== undefined && error.grantId !== undefined) toleratedGrants.set(ctx, error.grantId);
          return;
        }
        throw error;
      }
    },
  };
}

/**
 * The requests whose consume of a code was tolerated (by request context), with the code's grant: such a request
 * that then fails for any reason but the store (a reused DPoP proof, a wrong resource) was a second redemption that
 * got no tokens, and ends the grant as the atomic consume used to; only its success, or another outage, does not.
 */
const toleratedGrants = new WeakMap<object, string>();

/** Whether an exchange of this code answered with tokens. */
async function exchangeFinished(store: Store, codeId: string): Promise<boolean> {
  try {
    return (await readRecord(store, codeExchangedRecord, hashToken(codeId))) !== undefined;
  } catch (error) {
    // A record that does not read is still a finish: fail closed, the code is a replay.
    if (error instanceof RecordInvalidError) return true;
    throw error;
  }
}

interface CodeEntity {
  jti: string;
  grantId: string;
  iat?: number;
  exp?: number;
}

interface DestroyableEntity {
  destroy(): Promise<void>;
}

export interface CodeExchangeFinishOptions {
  store: Store;
  clock: Clock;
  endGrant: EndGrant;
  /** Counts the loser of an exchange race as a replay (provider-metrics.ts). */
  onReplayDetected?: (model: 'AuthorizationCode') => void;
}

/** Records every successful code exchange as finished before its tokens leave; see toleratedCodeRetries. */
export function installCodeExchangeFinish(provider: Provider, options: CodeExchangeFinishOptions): void {
  const { store, clock, endGrant, onReplayDetected } = options;
  provider.use(async (ctx, next) => {
    await next();
    const tolerated = toleratedGrants.get(ctx);
    if (tolerated !== undefined && ctx.status !== 200 && ctx.status !== 503) {
      await endGrantAnswering(ctx, () => endGrant(tolerated, 'code_replay'));
      onReplayDetected?.('AuthorizationCode');
      return;
    }
    const code = exchangedCode(ctx);
    if (code === undefined) return;
    // As long as the code's consumed marker: past the code's lifetime it is refused as expired anyway.
    const lifetime = typeof code.exp === 'number' && typeof code.iat === 'number' ? code.exp - code.iat : 60;
    let first: boolean;
    const finish = { at: clock.now(), by: randomBytes(12).toString('base64url') };
    try {
      first = await createRecord(store, codeExchangedRecord, hashToken(code.jti), finish, { ttlSeconds: Math.max(lifetime, 1) + 1 });
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      // Whether the finish was recorded is unknown: a command whose reply was lost (a connection reset) did run.
      // Recorded, the exchange finished — the retry would be a replay that ends the grant the user just approved —
      // so the record is read back and decides: ours, the tokens go out; another exchange's, this one lost a race.
      const recorded = await recordedFinish(store, code.jti);
      if (recorded === finish.by) return;
      if (recorded === undefined) {
        // Unfinished: the client is told to retry, and the refresh token this attempt saved never leaves the server
        // (best effort: the store is failing). Its access token is a JWT nobody received.
        await (ctx.oidc.entities.RefreshToken as DestroyableEntity | undefined)?.destroy().catch(() => undefined);
        answerTemporarilyUnavailable(ctx, error);
        return;
      }
      first = false;
    }
    if (first) return;
    // Another exchange of this code finished first: two parties redeemed it at once. The grant ends everywhere, this
    // attempt's tokens with it.
    answerInvalidGrant(ctx);
    await endGrantAnswering(ctx, () => endGrant(code.grantId, 'code_replay'));
    onReplayDetected?.('AuthorizationCode');
  });
}

/**
 * Who recorded the finish of a code exchange (`by`), read after a write of it whose outcome is unknown; undefined
 * when none is recorded, or the store kept failing (a few tries: a store that lost one reply usually answers the
 * next command; failing that, the retry meets what was recorded, if anything). A record without `by` (written before
 * it was kept) is another exchange's.
 */
async function recordedFinish(store: Store, codeId: string): Promise<string | undefined> {
  const read = await whenStoreAnswers(() => readRecord(store, codeExchangedRecord, hashToken(codeId), { invalid: 'absent' }));
  if (read?.value === undefined) return undefined;
  return read.value.by ?? '';
}

/**
 * Ends a grant from after the provider's error handling, where a throw became Koa's plain-text 500: the store
 * failing here is a 503 to retry (the retry meets the same replay and ends the grant then).
 */
async function endGrantAnswering(ctx: KoaContextWithOIDC, end: () => Promise<unknown>): Promise<void> {
  try {
    await end();
  } catch (error) {
    if (!(error instanceof StoreUnavailableError)) throw error;
    answerTemporarilyUnavailable(ctx, error);
  }
}

/** The code of a successful authorization_code grant; undefined for every other request. */
function exchangedCode(ctx: KoaContextWithOIDC): CodeEntity | undefined {
  const oidc = ctx.oidc as KoaContextWithOIDC['oidc'] | undefined;
  if (oidc?.route !== 'token' || ctx.status !== 200 || oidc.params?.grant_type !== 'authorization_code') return undefined;
  const code = oidc.entities.AuthorizationCode as CodeEntity | undefined;
  return typeof code?.jti === 'string' && typeof code.grantId === 'string' ? code : undefined;
}
