import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../runtime/clock.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { upstreamRefreshFailureRecord, upstreamRefreshLock } from '../records/broker.ts';
import { deleteRecord, lockName, readRecord, writeRecord } from '../store/record-access.ts';
import type { Store } from '../store/store.ts';
import type { UpstreamClient, UpstreamTokens } from '../upstream/types.ts';
import { countingUpstreamFailure, type BrokerMetrics } from './broker-metrics.ts';
import { singleFlight } from './single-flight.ts';
import { reauthorizationError, upstreamFailure } from './upstream-errors.ts';
import { withTimeout } from './with-timeout.ts';

/** The user's sealed upstream tokens (src/upstream/token-vault.ts), as the broker needs them. */
export interface UpstreamTokenVault {
  load(subject: string): Promise<UpstreamTokens | undefined>;
  save(subject: string, tokens: UpstreamTokens): Promise<void>;
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
}


/**
 * A usable upstream access token for a user: the stored one while it is fresh, otherwise refreshed exactly once
 * across all replicas. The refresh lock is per user (not per downstream API), because two downstream exchanges for the
 * same user racing to refresh would present the same rotating refresh token twice, and the IdP revokes on reuse.
 * @see RFC 6749 §6, RFC 9700 §4.14.2 (refresh token rotation)
 */
export function createUpstreamSession(options: UpstreamSessionOptions) {
  const { store, clock, logger, upstream, vault, skewMs, upstreamTimeoutMs, retryAfterSeconds, metrics } = options;
  const isFresh = (tokens: UpstreamTokens): boolean => tokens.expiresAt - skewMs > clock.now();

  async function load(subject: string): Promise<UpstreamTokens> {
    const tokens = await vault.load(subject);
    if (!tokens) throw reauthorizationError('no_upstream_session');
    return tokens;
  }

  async function refresh(subject: string, key: string, stale: UpstreamTokens): Promise<UpstreamTokens> {
    if (!stale.refreshToken) throw reauthorizationError('refresh_token_invalid');
    try {
      const fresh = await countingUpstreamFailure(
        metrics,
        'refresh',
        withTimeout(upstream.refresh(stale.refreshToken), upstreamTimeoutMs, 'upstream token refresh'),
      );
      // Providers that do not rotate omit the refresh token (and often the ID token) from the refresh response.
      const merged: UpstreamTokens = {
        ...fresh,
        refreshToken: fresh.refreshToken ?? stale.refreshToken,
        idToken: fresh.idToken ?? stale.idToken,
      };
      await vault.save(subject, merged);
      await deleteRecord(store, upstreamRefreshFailureRecord, key);
      metrics?.upstreamRefresh('refreshed');
      logger.info({ expiresAt: merged.expiresAt }, 'upstream tokens refreshed');
      return merged;
    } catch (error) {
      const failure = upstreamFailure(error, retryAfterSeconds);
      metrics?.upstreamRefresh('failed');
      const record = { code: failure.code, description: failure.message };
      await writeRecord(store, upstreamRefreshFailureRecord, key, record, { ttlSeconds: retryAfterSeconds }).catch(() => undefined);
      throw failure;
    }
  }

  return {
    async currentTokens(subject: string): Promise<UpstreamTokens> {
      const tokens = await load(subject);
      if (isFresh(tokens)) return tokens;
      const key = createHash('sha256').update(subject).digest('base64url');
      return singleFlight({
        ...options,
        lockName: lockName(upstreamRefreshLock, key),
        poll: async () => {
          const current = await load(subject);
          if (isFresh(current)) return current;
          // A hint for waiters: an invalid record reads as none, and the wait goes on to its own attempt.
          const failed = await readRecord(store, upstreamRefreshFailureRecord, key, { invalid: 'absent' });
          if (failed) throw new ProtocolError(failed.code, failed.description);
          return undefined;
        },
        work: async () => refresh(subject, key, await load(subject)),
      });
    },
  };
}
