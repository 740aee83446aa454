import { z } from 'zod';
import { errorCatalogue, type ErrorCode } from '../errors/protocol-error.ts';
import { defineLock, defineRecord } from '../store/define-record.ts';

/**
 * The token broker's records (src/broker/): the downstream token cache, remembered failures, and the single-flight
 * locks that make an exchange or an upstream refresh happen once across replicas (src/broker/single-flight.ts).
 * Cache and failure records are rebuilt by the next exchange, so their readers treat an invalid one as a miss.
 */

const errorCode = z.enum(Object.keys(errorCatalogue) as [ErrorCode, ...ErrorCode[]]).describe('ErrorCode');
const CACHE_KEY = 'cache key = SHA-256 (base64url) of the JSON `[subject, grant, audience, sorted unique scopes]`';

export const downstreamTokenRecord = defineRecord({
  namespace: 'downstream-token',
  owner: 'src/broker/downstream-cache.ts',
  key: CACHE_KEY,
  // `obtainedAt`: when the exchange answered (absent in records written before it was kept), so a token shorter-lived
  // than the broker's refresh skew is still served from the cache for half its life.
  schema: z.object({ sealed: z.string(), expiresAt: z.number(), obtainedAt: z.number().optional(), scopes: z.array(z.string()) }),
  ttl: 'until the downstream token expires',
  indexes: ['subject'],
  singleUse: false,
  secrets: 'token **sealed**, context `downstream-token:<cache key>`; the `subject` index value is plain',
  description:
    'A downstream token obtained by on-behalf-of or token exchange, per user + grant + audience + scopes. A new sign-in drops the user\'s records through the `subject` index (`forgetDownstreamTokens`, src/records/downstream-tokens.ts).',
});

export const downstreamFailureRecord = defineRecord({
  namespace: 'downstream-failure',
  owner: 'src/broker/downstream-cache.ts',
  key: 'the same cache key',
  schema: z.object({
    code: errorCode,
    description: z.string(),
    /** The status the first caller was given (a 502 for the IdP's refusal); absent, the code's own. */
    status: z.number().int().min(400).max(599).optional(),
    retryAfterSeconds: z.number().optional(),
    /** Why the user must sign in again (src/broker/upstream-errors.ts), so a waiter ends its grant like the first caller. */
    reason: z.string().max(64).optional(),
    /**
     * SHA-256 (base64url) of the upstream access token the exchange presented and the IdP refused (60 s records): the
     * record answers only while the user's stored token is that one, so one written by an exchange still in flight
     * when the user signed in again does not answer the new session.
     */
    upstreamTokenHash: z.string().optional(),
  }),
  ttl: '5 s (`failureCacheSeconds`); 60 s whenever the exchange\'s refusal is a configuration error (token-broker.ts `misconfigured`): refused for the gateway\'s configuration, again after a renewal, for a user with no refresh token, or of an upstream token obtained moments ago',
  indexes: ['subject'],
  singleUse: false,
  secrets: 'none',
  description: 'A failed exchange, so replicas waiting on the same exchange learn of it and a down IdP is not hammered by each queued call.',
});

export const upstreamRefreshFailureRecord = defineRecord({
  namespace: 'upstream-refresh-failure',
  owner: 'src/broker/upstream-session.ts',
  key: 'SHA-256 (base64url) of the subject',
  schema: z.object({
    code: errorCode,
    description: z.string(),
    /** The status the holder's caller was given; absent, the code's own. */
    status: z.number().int().min(400).max(599).optional(),
    /** Why a new sign-in is needed (`refresh_token_invalid`, `interaction_required`, …): the waiters say the same. */
    reason: z.string().max(64).optional(),
    /** When to come back, for a waiter told the IdP is unavailable. */
    retryAfterSeconds: z.number().int().positive().optional(),
  }),
  ttl: "5 s (the broker's `retryAfterSeconds`)",
  singleUse: false,
  secrets: 'none',
  description: "A failed refresh of the user's upstream tokens, read by the replicas waiting on the refresh lock.",
});

export const downstreamTokenLock = defineLock({
  name: 'downstream-token',
  key: 'cache key',
  owner: 'src/broker/token-broker.ts',
  ttl: '3 × `upstream.timeoutMs` + 5 s (35 s by default): a refresh and an exchange, or an exchange, a renewal and a second exchange',
  description: 'One token exchange per user + grant + audience + scopes across replicas; waiters poll the cache and failure records.',
});

export const upstreamRefreshLock = defineLock({
  name: 'upstream-refresh',
  key: 'subject hash',
  owner: 'src/broker/upstream-session.ts',
  ttl: 'same as `downstream-token`',
  description:
    "One refresh of a user's upstream tokens across replicas: two racing refreshes would present one rotating refresh token twice, and the IdP revokes on reuse.",
});
