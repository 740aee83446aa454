import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../runtime/clock.ts';
import { upstreamRefreshFailureRecord, upstreamRefreshLock } from '../records/broker.ts';
import { deleteRecord, lockName, readRecord, writeRecord } from '../store/record-access.ts';
import { StoreUnavailableError, type Store } from '../store/store.ts';
import type { UpstreamClient, UpstreamTokens } from '../upstream/types.ts';
import { UnusableTokenAnswer } from '../upstream/errors.ts';
import { countingUpstreamFailure, type BrokerMetrics } from './broker-metrics.ts';
import { singleFlight } from './single-flight.ts';
import { reauthorizationError, rememberedFailureError, rememberFailure, upstreamFailure } from './upstream-errors.ts';
import { UpstreamTimeoutError, withTimeout } from './with-timeout.ts';
import { isFreshToken } from './token-freshness.ts';

/** The user's sealed upstream tokens (src/upstream/token-vault.ts), as the broker needs them. */
export interface UpstreamTokenVault {
  load(subject: string): Promise<UpstreamTokens | undefined>;
  save(subject: string, tokens: UpstreamTokens): Promise<void>;
  delete(subject: string): Promise<void>;
}

export interface UpstreamSessionOptions {
  store: Store;
  clock: Clock;
  logger: Logger;
  upstream: UpstreamClient;
  vault: UpstreamTokenVault;
  sleep: (ms: number) => Promise<void>;
  skewMs: number;
  upstreamTimeoutMs: number;
  lockTtlMs: number;
  waitBudgetMs: number;
  retryAfterSeconds: number;
  metrics?: BrokerMetrics | undefined;
  /**
   * Run after the user's tokens were written: throws (and undoes the write) when the user has no grant left, whose
   * tokens a person deleted while this call was under way (token-broker.ts).
   */
  afterSave?: (subject: string) => Promise<void>;
}

/** How long tokens the store refused are offered to it again: a store outage longer than this signs the user out. */
const RESAVE_FOR_MS = 15 * 60_000;


/**
 * A usable upstream access token for a user: the stored one while it is fresh, otherwise refreshed exactly once
 * across all replicas. The refresh lock is per user (not per downstream API), because two downstream exchanges for the
 * same user racing to refresh would present the same rotating refresh token twice, and the IdP revokes on reuse.
 * @see RFC 6749 §6, RFC 9700 §4.14.2 (refresh token rotation)
 */
export function createUpstreamSession(options: UpstreamSessionOptions) {
  const { store, clock, logger, upstream, vault, skewMs, upstreamTimeoutMs, lockTtlMs, retryAfterSeconds, metrics, afterSave } = options;
  const isFresh = (tokens: UpstreamTokens): boolean => isFreshToken(tokens, skewMs, clock.now());

  /**
   * Tokens the IdP issued by rotation that the store then refused (an outage right after the refresh), with the refresh
   * token that obtained them (`spent`). The refresh token in the store is spent: presented again, the IdP sees a reuse
   * and ends the session. So these are kept here and offered to the store again at this replica's next call for the
   * user and on a timer, until it takes them — or holds others by then (`saveRotated`).
   */
  const unsaved = new Map<string, { tokens: UpstreamTokens; spent: string }>();
  /** Settles when the user's unsaved tokens were saved (or given up): the refresh lock is held until then. */
  const resaving = new Map<string, Promise<void>>();

  async function save(subject: string, tokens: UpstreamTokens): Promise<void> {
    await vault.save(subject, tokens);
    if (unsaved.get(subject)?.tokens === tokens) unsaved.delete(subject);
    await afterSave?.(subject);
  }

  /**
   * Saves tokens a refresh with `spent` obtained, unless the store holds other tokens by now: a new sign-in's (which
   * writes without the refresh lock), or another replica's refresh once the lock had expired. Those are newer, and the
   * session they belong to is the user's current one. Resolves whether it saved. Only for tokens saved late (an answer
   * after the timeout, a retry after an outage): a timely refresh holds the lock and has just read what it replaces.
   */
  async function saveRotated(subject: string, spent: string, tokens: UpstreamTokens): Promise<boolean> {
    const current = await vault.load(subject);
    if (current?.refreshToken !== spent) {
      if (unsaved.get(subject)?.tokens === tokens) unsaved.delete(subject);
      logger.info('late upstream tokens not saved: the store holds newer ones');
      return false;
    }
    await save(subject, tokens);
    return true;
  }

  /**
   * Keeps rotated tokens the store refused and offers them to it again: every half second while this replica holds
   * the refresh lock for them (its TTL, `lockTtlMs`), then less often. Returns what settles when they are saved or
   * given up, for which the refresh lock is kept: another replica taking it as soon as the store is back would refresh
   * with the spent refresh token still in the store, and the IdP, seeing it reused, would end the user's session.
   */
  function keepUnsaved(subject: string, tokens: UpstreamTokens, spent: string): Promise<void> {
    unsaved.set(subject, { tokens, spent });
    const running = resaving.get(subject);
    if (running !== undefined) return running;
    logger.warn('rotated upstream tokens not saved: the store failed; kept in memory and saved again when it is back');
    const started = clock.now();
    const giveUpAt = started + RESAVE_FOR_MS;
    const settled = new Promise<void>((resolve) => {
      const retry = (delayMs: number): void => {
        const timer = setTimeout(() => {
          const pending = unsaved.get(subject);
          if (pending === undefined) return resolve();
          saveRotated(subject, pending.spent, pending.tokens).then(
            (saved) => {
              if (saved) logger.info('rotated upstream tokens saved after the store failure');
              resolve();
            },
            () => {
              if (clock.now() < giveUpAt) return retry(clock.now() - started < lockTtlMs ? 500 : Math.min(delayMs * 2, 10_000));
              unsaved.delete(subject);
              logger.error('rotated upstream tokens could not be saved for 15 minutes; the user must sign in again');
              resolve();
            },
          );
        }, delayMs);
        // A retry must not keep a process (a test, a stopping gateway) alive on its own.
        timer.unref();
      };
      retry(500);
    }).finally(() => resaving.delete(subject));
    resaving.set(subject, settled);
    return settled;
  }

  async function load(subject: string): Promise<UpstreamTokens> {
    const pending = unsaved.get(subject);
    // Only this replica knows the user's current refresh token: into the store before anything else uses it.
    if (pending !== undefined && (await saveRotated(subject, pending.spent, pending.tokens))) return pending.tokens;
    const tokens = await vault.load(subject);
    if (!tokens) throw reauthorizationError('no_upstream_session');
    return tokens;
  }

  async function refresh(subject: string, key: string, stale: UpstreamTokens, holdLock: (until: Promise<unknown>) => void = () => {}): Promise<UpstreamTokens> {
    if (!stale.refreshToken) throw reauthorizationError('refresh_token_invalid');
    const refreshing = upstream.refresh(stale.refreshToken);
    let fresh: UpstreamTokens;
    try {
      fresh = await countingUpstreamFailure(metrics, 'refresh', withTimeout(refreshing, upstreamTimeoutMs, 'upstream token refresh'));
    } catch (error) {
      const failure = upstreamFailure(error, retryAfterSeconds);
      metrics?.upstreamRefresh('failed');
      if (error instanceof UpstreamTimeoutError) holdLock(keepLateAnswer(subject, stale, refreshing));
      await keepRotatedRefreshToken(subject, stale, error, holdLock);
      // What the holder's caller was told, for the waiters on every replica: its status, reason and when to come back too.
      await writeRecord(store, upstreamRefreshFailureRecord, key, rememberFailure(failure), { ttlSeconds: retryAfterSeconds }).catch(() => undefined);
      throw failure;
    }
    // Providers that do not rotate omit the refresh token (and often the ID token) from the refresh response.
    const merged = mergedTokens(fresh, stale);
    metrics?.upstreamRefresh('refreshed');
    try {
      await vault.save(subject, merged);
    } catch (error) {
      // The IdP has rotated: failing this call is right (the store is down), losing the new tokens is not.
      if (merged.refreshToken !== stale.refreshToken) holdLock(keepUnsaved(subject, merged, stale.refreshToken));
      throw error;
    }
    await afterSave?.(subject);
    await deleteRecord(store, upstreamRefreshFailureRecord, key).catch(() => undefined);
    logger.info({ expiresAt: merged.expiresAt }, 'upstream tokens refreshed');
    return merged;
  }

  function mergedTokens(fresh: UpstreamTokens, stale: UpstreamTokens): UpstreamTokens {
    return {
      ...fresh,
      // When it was obtained says whether an exchange refusing it may renew it (token-broker.ts).
      obtainedAt: fresh.obtainedAt ?? clock.now(),
      refreshToken: fresh.refreshToken ?? stale.refreshToken,
      idToken: fresh.idToken ?? stale.idToken,
    };
  }

  /**
   * A refresh the broker stopped waiting for (`upstreamTimeoutMs`) goes on until the upstream client's own HTTP
   * timeout ends it, and the IdP may still answer — having rotated: the stored refresh token is then spent, and the
   * next refresh presenting it would end the user's session at an IdP that detects reuse. A late answer is saved like
   * a timely one (kept in memory while the store refuses it), and the refresh lock is held until it settles, so no
   * replica refreshes with the spent token meanwhile (the lock's TTL, three times the timeout, still bounds the wait).
   */
  function keepLateAnswer(subject: string, stale: UpstreamTokens, refreshing: Promise<UpstreamTokens>): Promise<void> {
    // The refresh token was present: refresh() refuses a user without one.
    const spent = stale.refreshToken ?? '';
    const keep = async (tokens: UpstreamTokens): Promise<void> => {
      try {
        if (await saveRotated(subject, spent, tokens)) logger.info({ expiresAt: tokens.expiresAt }, 'upstream tokens saved from an answer that came after the timeout');
      } catch (error) {
        // A user without a grant any more (afterSave) has nothing to keep; a store outage keeps rotated tokens.
        if (error instanceof StoreUnavailableError && tokens.refreshToken !== spent) await keepUnsaved(subject, tokens, spent);
      }
    };
    return refreshing.then(
      (late) => keep(mergedTokens(late, stale)),
      async (error: unknown) => {
        const rotated = rotatedRefreshToken(error, stale);
        if (rotated !== undefined) await keep({ ...stale, refreshToken: rotated });
      },
    );
  }

  /**
   * A refresh whose answer was refused (an access token not usable: UnusableTokenAnswer) may still have rotated the
   * refresh token: the stored one is spent. The new one replaces it beside the old access token (not fresh, or refused:
   * the next call refreshes with the new one); the IdP, seeing the spent one again, would end the user's session.
   */
  async function keepRotatedRefreshToken(subject: string, stale: UpstreamTokens, error: unknown, holdLock: (until: Promise<unknown>) => void): Promise<void> {
    const rotated = rotatedRefreshToken(error, stale);
    if (rotated === undefined) return;
    const kept: UpstreamTokens = { ...stale, refreshToken: rotated };
    try {
      await vault.save(subject, kept);
    } catch {
      holdLock(keepUnsaved(subject, kept, stale.refreshToken ?? ''));
      return;
    }
    await afterSave?.(subject);
  }

  /** The refresh token a refused refresh answer rotated to (UnusableTokenAnswer), when it is a new one. */
  function rotatedRefreshToken(error: unknown, stale: UpstreamTokens): string | undefined {
    const rotated = error instanceof UnusableTokenAnswer ? error.rotatedRefreshToken() : undefined;
    return rotated === stale.refreshToken ? undefined : rotated;
  }

  /** The stored tokens when `usable` takes them, otherwise refreshed once across replicas. */
  async function tokensWhere(subject: string, usable: (tokens: UpstreamTokens) => boolean): Promise<UpstreamTokens> {
    const tokens = await load(subject);
    if (usable(tokens)) return tokens;
    const key = createHash('sha256').update(subject).digest('base64url');
    return singleFlight({
      ...options,
      lockName: lockName(upstreamRefreshLock, key),
      poll: async () => {
        const current = await load(subject);
        if (usable(current)) return current;
        // A hint for waiters: an invalid record reads as none, and the wait goes on to its own attempt.
        const failed = await readRecord(store, upstreamRefreshFailureRecord, key, { invalid: 'absent' });
        if (failed) throw rememberedFailureError(failed);
        return undefined;
      },
      work: async (holdLock) => refresh(subject, key, await load(subject), holdLock),
    });
  }

  return {
    currentTokens: (subject: string): Promise<UpstreamTokens> => tokensWhere(subject, isFresh),
    /**
     * Tokens other than `refused`, an access token the IdP refused in an exchange without saying why: refreshed
     * unless another caller did so already. The refresh is the IdP's word on the user's session — refused, it has
     * ended (and the refusal is the session's); answered, it lives, and the exchange's refusal is not about it.
     */
    renewedTokens: (subject: string, refused: string): Promise<UpstreamTokens> =>
      tokensWhere(subject, (tokens) => tokens.accessToken !== refused && isFresh(tokens)),
  };
}
