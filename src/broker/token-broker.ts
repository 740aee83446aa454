import type { Logger } from 'pino';
import type { DownstreamConfig, GatehouseConfig } from '../config/schema.ts';
import type { Keyring } from '../keys/keyring.ts';
import { hashToken } from '../keys/hashing.ts';
import type { Clock } from '../runtime/clock.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import type { Store } from '../store/store.ts';
import { downstreamTokenLock } from '../records/broker.ts';
import { lockName } from '../store/record-access.ts';
import type { UpstreamClient, UpstreamIdentity } from '../upstream/types.ts';
import {
  clearCachedFailure,
  downstreamCacheKey,
  readCachedFailure,
  type CachedFailure,
  readCachedToken,
  writeCachedFailure,
  writeCachedToken,
} from './downstream-cache.ts';
import type { BrokerMetrics } from './broker-metrics.ts';
import { singleFlight } from './single-flight.ts';
import type { DownstreamToken, TokenBroker } from './types.ts';
import {
  describeUpstreamError,
  downstreamTokensUnavailable,
  exchangeGrantRefusal,
  misconfiguredExchange,
  reauthorizationError,
  rememberedFailureError,
  rememberFailure,
  stepUpOf,
  upstreamFailure,
} from './upstream-errors.ts';
import { forgetEndedSession, rememberStepUp } from '../records/step-up.ts';
import { createUpstreamSession, type UpstreamTokenVault } from './upstream-session.ts';
import { withTimeout } from './with-timeout.ts';
import { isFreshToken } from './token-freshness.ts';
import { upstreamErrorLabel } from '../upstream/error-label.ts';
import { atMostEvery } from '../runtime/log-throttle.ts';
import { deleteUpstreamTokens, loadUpstreamTokens, saveUpstreamTokens, type TokenVaultDeps } from '../upstream/token-vault.ts';
import { forgetDownstreamTokens } from '../records/downstream-tokens.ts';


export interface TokenBrokerOptions {
  config: Pick<GatehouseConfig, 'broker' | 'upstream'>;
  store: Store;
  keyring: Keyring;
  clock: Clock;
  logger: Logger;
  upstream: UpstreamClient;
  /** Where the user's sealed upstream tokens live; defaults to src/upstream/token-vault.ts over `store`. */
  vault?: UpstreamTokenVault;
  /** Where the broker reports (src/observability/metrics.ts implements it), when the process keeps metrics. */
  metrics?: BrokerMetrics;
  /** Injected so tests can make waiting instant; defaults to setTimeout. */
  sleep?: (ms: number) => Promise<void>;
  /** How long a failed exchange is remembered so queued calls and other replicas do not retry it at once. */
  failureCacheSeconds?: number;
  /**
   * Whether the user still has a grant (src/grants/user-grants.ts), asked after each write of their tokens. When a
   * person ends a user's last grant, their tokens are deleted (src/admin/grants.ts); a call already under way for
   * them wrote them back — a fresh refresh token for 90 days, for a user with no client. Checked after the write, the
   * question cannot miss that end: the grant is gone before the tokens are deleted. Omitted: no check (unit tests).
   */
  userHasGrant?: (subject: string) => Promise<boolean>;
}

/** How far an exchange got, for what its failure means: the session's refresh, or the exchange itself. */
interface ExchangeProgress {
  phase: 'session' | 'exchange';
  /** The IdP renewed the user's session after refusing the exchange without saying why: it lives. */
  renewed: boolean;
  /** The refused upstream token was obtained moments ago (RENEWAL_MIN_AGE_MS): renewing would bring the same back. */
  tooRecentToRenew: boolean;
  /** The upstream access token the last exchange presented: a refusal of it is remembered for it alone. */
  presented?: string;
}

/**
 * An upstream token this young is not renewed when an exchange refuses it without saying why: it was just signed in
 * for or refreshed (by this call, or another moments before), so a renewal would bring the same kind of token back —
 * and a stale stored token refreshed by this call was renewed a second time, presenting two rotations for one call.
 */
const RENEWAL_MIN_AGE_MS = 60_000;

/**
 * How long an exchange refusal that is a configuration error (exchangeFailed's `misconfigured`: refused for the
 * gateway's configuration, again after a renewal, for a user with no refresh token, or of an upstream token obtained
 * moments ago) is remembered per user and downstream API, as long as the log line says it once
 * (logMisconfiguredExchange): remembered for the 5 s of an outage, every call after it renewed the session again — a
 * refresh, a rotation and two exchanges each.
 */
const REFUSED_EXCHANGE_MEMORY_SECONDS = 60;

const defaultUpstreamTimeoutMs = 10_000;
const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @see RFC 8693 (token exchange), Entra on-behalf-of (`urn:ietf:params:oauth:grant-type:jwt-bearer`,
 * `requested_token_use=on_behalf_of`) — both performed by the UpstreamClient; the broker adds the cache, the
 * cross-replica single flight and the error mapping.
 */
export function createTokenBroker(options: TokenBrokerOptions): TokenBroker {
  const { config, store, keyring, clock, logger, upstream, metrics } = options;
  const vault = options.vault ?? storeVault({ store, keyring, clock });
  const sleep = options.sleep ?? realSleep;
  const failureCacheSeconds = options.failureCacheSeconds ?? 5;
  const skewMs = config.broker.refreshSkewSeconds * 1000;
  const upstreamTimeoutMs = config.upstream?.timeoutMs ?? defaultUpstreamTimeoutMs;
  // A holder makes at most three calls to the IdP, each bounded by the upstream timeout: a refresh and an exchange, or
  // an exchange, the renewal's refresh and a second exchange (exchangeForUser: a token just refreshed is not renewed).
  // The lock outlives all three: expired under the holder, a second holder took it and exchanged again, a duplicate call
  // to the IdP (the refresh lock keeps the two from refreshing with the same refresh token).
  const lockTtlMs = 3 * upstreamTimeoutMs + 5_000;
  const waitBudgetMs = lockTtlMs;
  const retryAfterSeconds = failureCacheSeconds;
  const downstreams = new Map(config.broker.downstream.map((entry) => [entry.name, entry]));
  const { userHasGrant } = options;
  /** Undoes a write of the user's tokens when they have no grant left (see `userHasGrant`). */
  async function forgetUnlessGranted(subject: string): Promise<void> {
    if (userHasGrant === undefined || (await userHasGrant(subject))) return;
    await vault.delete(subject);
    await forgetDownstreamTokens(store, subject);
    throw reauthorizationError('no_upstream_session');
  }
  const session = createUpstreamSession({
    store,
    clock,
    logger,
    upstream,
    vault,
    sleep,
    skewMs,
    upstreamTimeoutMs,
    lockTtlMs,
    waitBudgetMs,
    retryAfterSeconds,
    metrics,
    afterSave: forgetUnlessGranted,
  });

  const isFresh = (token: DownstreamToken): boolean => isFreshToken(token, skewMs, clock.now());

  async function cachedResult(subject: string, cacheKey: string): Promise<DownstreamToken | undefined> {
    const token = await readCachedToken({ store, keyring }, cacheKey);
    if (token && isFresh(token)) return token;
    const failure = await readCachedFailure(store, cacheKey);
    if (failure && (await stillRefused(subject, failure))) throw rememberedFailureError(failure);
    return undefined;
  }

  /**
   * A refusal remembered for the upstream token it refused answers only while that token is the user's. A new sign-in
   * clears the user's failures, but an exchange still in flight with the old token writes its refusal after the clear:
   * the user who just signed in was answered that refusal for a minute.
   */
  async function stillRefused(subject: string, failure: CachedFailure): Promise<boolean> {
    if (failure.upstreamTokenHash === undefined) return true;
    const current = await vault.load(subject);
    return current !== undefined && hashToken(current.accessToken) === failure.upstreamTokenHash;
  }

  /** The OBO / RFC 8693 call itself, counted by outcome; a refresh failing before it is not an exchange. */
  async function exchangeAtUpstream(entry: DownstreamConfig, subjectToken: string) {
    const { name: downstream, grant } = entry;
    try {
      const result = await withTimeout(
        upstream.exchangeForDownstream({ subjectToken, audience: entry.audience, scopes: entry.scopes, grant }),
        upstreamTimeoutMs,
        'downstream token exchange',
      );
      metrics?.downstreamExchange({ downstream, grant, outcome: 'success' });
      return result;
    } catch (error) {
      if (metrics !== undefined) {
        const reauthorize = exchangeGrantRefusal(error) === undefined && upstreamFailure(error, retryAfterSeconds).code === 'interaction_required';
        metrics.downstreamExchange({ downstream, grant, outcome: reauthorize ? 'interaction_required' : 'error' });
        metrics.upstreamError({ operation: 'exchange', error: upstreamErrorLabel(error) });
      }
      throw error;
    }
  }

  /**
   * The exchange, with the user's current upstream token. Refused with a bare `invalid_grant` (exchangeGrantRefusal:
   * `unconfirmed`), the IdP is asked whether the session lives by renewing it, and the exchange tried once more with
   * the new token: a session that ended fails the renewal (and the user signs in again); one that lives makes a
   * second refusal the exchange's own, never a reason to end the grant — the same token would come back from a new
   * sign-in through the gateway session, round and round. Without a refresh token there is nothing to ask with; a
   * token obtained moments ago is not renewed (RENEWAL_MIN_AGE_MS).
   */
  async function exchangeForUser(subject: string, entry: DownstreamConfig, progress: ExchangeProgress) {
    const upstreamTokens = await session.currentTokens(subject);
    progress.phase = 'exchange';
    progress.presented = upstreamTokens.accessToken;
    try {
      return await exchangeAtUpstream(entry, upstreamTokens.accessToken);
    } catch (error) {
      if (exchangeGrantRefusal(error) !== 'unconfirmed' || upstreamTokens.refreshToken === undefined) throw error;
      const { obtainedAt } = upstreamTokens;
      progress.tooRecentToRenew = obtainedAt !== undefined && clock.now() - obtainedAt < RENEWAL_MIN_AGE_MS;
      if (progress.tooRecentToRenew) throw error;
      progress.phase = 'session';
      const renewed = await session.renewedTokens(subject, upstreamTokens.accessToken);
      progress.phase = 'exchange';
      progress.renewed = true;
      progress.presented = renewed.accessToken;
      return await exchangeAtUpstream(entry, renewed.accessToken);
    }
  }

  async function exchange(subject: string, entry: DownstreamConfig, cacheKey: string): Promise<DownstreamToken> {
    let token: DownstreamToken;
    const progress: ExchangeProgress = { phase: 'session', renewed: false, tooRecentToRenew: false };
    try {
      const result = await exchangeForUser(subject, entry, progress);
      token = {
        accessToken: result.accessToken,
        expiresAt: result.expiresAt,
        obtainedAt: clock.now(),
        scopes: result.scope ? result.scope.split(' ').filter(Boolean) : entry.scopes,
      };
    } catch (error) {
      throw await exchangeFailed(subject, entry, cacheKey, error, progress);
    }
    metrics?.downstreamToken('exchanged', entry.name);
    // The user's upstream session works: an ended one remembered by a call that failed before their last sign-in (or
    // raced it) must not send their next authorization to the IdP, nor let a backend end their grant.
    await forgetEndedSession(store, subject).catch(() => undefined);
    logger.info({ downstream: entry.name, grant: entry.grant, expiresAt: token.expiresAt }, 'downstream token obtained');
    try {
      await writeCachedToken({ store, keyring, now: clock.now() }, cacheKey, subject, token);
      await clearCachedFailure(store, cacheKey);
    } catch (error) {
      // The cache is what failed, not the exchange: this call has its token; the next one exchanges again.
      logger.warn({ downstream: entry.name, reason: error instanceof Error ? error.name : typeof error }, 'downstream token not cached');
      return token;
    }
    await forgetUnlessGranted(subject);
    return token;
  }

  /**
   * A configuration error, said once a minute per downstream API (every user of the route meets it): the IdP's codes
   * and why it is not the users' sessions, never a token or the IdP's description.
   */
  const logMisconfigured = new Map<string, (detail: Record<string, unknown>) => void>();
  function logMisconfiguredExchange(entry: DownstreamConfig, error: unknown, progress: ExchangeProgress): void {
    let log = logMisconfigured.get(entry.name);
    if (log === undefined) {
      log = atMostEvery<Record<string, unknown>>(60_000, clock, (detail, heldBack) =>
        logger.error({ ...detail, ...(heldBack > 0 ? { heldBack } : {}) }, 'downstream token exchange refused: gateway configuration error'),
      );
      logMisconfigured.set(entry.name, log);
    }
    const { error: oauthError, aadsts } = describeUpstreamError(error);
    const why =
      exchangeGrantRefusal(error) === 'configuration'
        ? 'the error code names the configuration'
        : progress.renewed
          ? 'refused again after the upstream session was renewed'
          : progress.tooRecentToRenew
            ? 'refused an upstream token obtained moments ago'
            : 'refused, and the user has no refresh token to check the upstream session with';
    log({ downstream: entry.name, grant: entry.grant, oauthError, aadsts, why });
  }

  /** The broker's answer to a failed exchange (or refresh before it), remembered for the callers queued behind. */
  async function exchangeFailed(subject: string, entry: DownstreamConfig, cacheKey: string, error: unknown, progress: ExchangeProgress): Promise<ProtocolError> {
    // An `invalid_grant` of the exchange itself that is not the user's session (exchangeForUser asked the IdP when no
    // code said): a 502 that ends no grant, remembered without a reason so the callers queued behind end none either.
    const misconfigured = progress.phase === 'exchange' && exchangeGrantRefusal(error) !== undefined;
    const failure = misconfigured ? misconfiguredExchange(error) : upstreamFailure(error, retryAfterSeconds);
    metrics?.downstreamToken('failed', entry.name);
    if (misconfigured) logMisconfiguredExchange(entry, error, progress);
    else logger.warn({ downstream: entry.name, errorCode: failure.code, reason: reasonOf(failure), upstreamError: safeCause(error) }, 'downstream token exchange failed');
    // Remembered briefly: the callers queued behind this one (on every replica) get the same answer instead of
    // each retrying a down IdP; a user who re-consents is back well after it expires. A refusal that is not the
    // user's session is remembered for longer, or each call renews the session again (a new sign-in clears it).
    // That longer memory is of the token refused (stillRefused): a new sign-in during the exchange is not answered it.
    const rememberSeconds = misconfigured ? REFUSED_EXCHANGE_MEMORY_SECONDS : failureCacheSeconds;
    const refused = misconfigured && progress.presented !== undefined ? { upstreamTokenHash: hashToken(progress.presented) } : {};
    await writeCachedFailure(store, cacheKey, subject, { ...rememberFailure(failure), ...refused }, rememberSeconds).catch(() => undefined);
    // The user's next sign-in must go to the IdP with what it asked for (Entra's `claims` challenge), or it would
    // mint the same upstream token and this exchange would fail again. An ended session is only ever the session's
    // (its refresh refused, or no tokens at all): the exchange's own `invalid_grant` is a 502 above.
    const stepUp = stepUpOf(failure);
    if (stepUp) {
      await rememberStepUp(store, subject, { ...stepUp, createdAt: clock.now() }).catch((storeError: unknown) => {
        logger.warn({ reason: storeError instanceof Error ? storeError.name : typeof storeError }, 'step-up not remembered; the next sign-in goes without claims');
      });
    }
    return failure;
  }

  async function getDownstreamToken({ user, downstream }: Parameters<TokenBroker['getDownstreamToken']>[0]): Promise<DownstreamToken> {
    const subject = user?.subject;
    if (typeof subject !== 'string' || subject === '') {
      // An app-only caller (client credentials, no signed-in user) has no upstream session to act for.
      throw new ProtocolError('access_denied', 'This downstream API is called on behalf of a signed-in user; an app-only caller has no user.');
    }
    const entry = downstreams.get(downstream);
    if (!entry) throw new ProtocolError('invalid_target', `No downstream API named "${downstream}" is configured.`);
    const cacheKey = downstreamCacheKey(subject, entry);

    const hit = await cachedResult(subject, cacheKey);
    if (hit) {
      metrics?.downstreamToken('cache_hit', entry.name);
      return hit;
    }
    return singleFlight({
      store,
      lockName: lockName(downstreamTokenLock, cacheKey),
      lockTtlMs,
      waitBudgetMs,
      sleep,
      poll: () => cachedResult(subject, cacheKey),
      work: () => exchange(subject, entry, cacheKey),
      onWait: () => {
        metrics?.downstreamToken('waited', entry.name);
      },
    });
  }

  return {
    async getDownstreamToken(input) {
      try {
        return await getDownstreamToken(input);
      } catch (error) {
        if (error instanceof ProtocolError) throw error;
        // The store (or anything else) failed: the caller can only retry; the detail stays in the log.
        logger.error({ reason: error instanceof Error ? error.name : typeof error, downstream: input.downstream }, 'downstream token unavailable');
        throw downstreamTokensUnavailable(error, retryAfterSeconds);
      }
    },
  };
}

/** The upstream helper's sealed vault (namespace `upstream-tokens`), as the broker's UpstreamTokenVault. */
export function storeVault(deps: TokenVaultDeps): UpstreamTokenVault {
  return {
    load: (subject) => loadUpstreamTokens(deps, subject),
    save: (subject, tokens) => saveUpstreamTokens(deps, subject, tokens),
    delete: async (subject) => {
      await deleteUpstreamTokens(deps, subject);
    },
  };
}

function reasonOf(error: ProtocolError): string | undefined {
  const cause: unknown = error.cause;
  return typeof cause === 'object' && cause !== null && 'reason' in cause && typeof cause.reason === 'string' ? cause.reason : undefined;
}

/** What of an upstream error may be logged: codes and status, never bodies that might echo an assertion. */
export function safeCause(error: unknown): Record<string, unknown> | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const record = error as Record<string, unknown>;
  const pick = (key: string) => (typeof record[key] === 'string' || typeof record[key] === 'number' ? record[key] : undefined);
  // Field names avoid the logger's redaction list (`code`, `error`…) so the diagnosis survives; values hold no secrets.
  return { name: pick('name'), errno: pick('code'), oauthError: pick('error'), status: pick('status'), description: pick('error_description') };
}

export type { UpstreamTokenVault } from './upstream-session.ts';
export type { UpstreamIdentity };
