import type { Adapter, AdapterConstructor, AdapterFactory, AdapterPayload } from 'oidc-provider';
import { hashClientSecret, hashToken } from '../keys/hashing.ts';
import { revokeGrant } from '../proxy/revoked-grants.ts';
import type { Clock } from '../runtime/clock.ts';
import { GrantAlreadyConsumedError } from '../store/oidc-adapter.ts';
import type { Store } from '../store/store.ts';

/**
 * Wraps the store's oidc-provider adapter with the behaviour the authorization server adds around persistence:
 *
 * 1. Grant revocation reaches the MCP proxy. Access tokens are self-contained JWTs, so deleting them from the store
 *    does nothing by itself; whenever oidc-provider ends a grant (code replay, refresh-token reuse, RFC 7009
 *    revocation of a refresh token, user/admin revocation) it calls `AccessToken.revokeByGrantId` and/or
 *    `Grant.destroy`, and we turn that into a `revoked-grant` record + `grant-revoked` message the proxy checks.
 * 2. A grace window for a rotated refresh token: a client that retries a refresh (lost response, two tabs racing)
 *    with the token it just rotated is not treated as a thief for `graceSeconds`; after that, reuse revokes the grant.
 * 3. Dynamically registered client secrets are stored only as a scrypt hash (see client-overrides.ts).
 * 4. A code or refresh token redeemed twice at the same moment (caught by the store adapter's atomic consume, which
 *    revokes the grant) is reported through `onReplayDetected`, for metrics.
 */
export interface AdapterHookOptions {
  store: Store;
  clock: Clock;
  /** Longest access-token lifetime, seconds: how long a revoked-grant record must live. */
  accessTokenTtlSeconds: number;
  refreshReuseGraceSeconds: number;
  /** Told when a concurrent second redemption of a code or refresh token was refused (see provider-metrics.ts). */
  onReplayDetected?: (model: 'AuthorizationCode' | 'RefreshToken') => void;
}

/** Namespace of "this refresh token was rotated at" records, keyed by the token's hash. */
export const ROTATED_REFRESH_NAMESPACE = 'refresh-rotated';

interface RotatedRecord {
  at: number;
}

const HASHED_SECRET_PREFIX = '$scrypt$';

export function isHashedClientSecret(value: string): boolean {
  return value.startsWith(HASHED_SECRET_PREFIX);
}

function instantiate(base: AdapterFactory | AdapterConstructor, name: string): Adapter {
  try {
    return new (base as AdapterConstructor)(name);
  } catch (error) {
    if (error instanceof TypeError) return (base as AdapterFactory)(name);
    throw error;
  }
}

export function withAuthorizationHooks(base: AdapterFactory | AdapterConstructor, options: AdapterHookOptions): AdapterFactory {
  const { store, clock, accessTokenTtlSeconds, refreshReuseGraceSeconds, onReplayDetected } = options;
  // Skew: a token minted a moment before revocation must still be caught until it expires.
  const revocationTtl = accessTokenTtlSeconds + 60;
  const markRevoked = (grantId: string) => revokeGrant(store, grantId, { ttlSeconds: revocationTtl, clock });

  return (name: string): Adapter => {
    const inner = instantiate(base, name);
    const adapter: Adapter = {
      upsert: (id, payload, expiresIn) => inner.upsert(id, payload, expiresIn),
      find: (id) => inner.find(id),
      findByUid: (uid) => inner.findByUid(uid),
      findByUserCode: (code) => inner.findByUserCode(code),
      consume: (id) => inner.consume(id),
      destroy: (id) => inner.destroy(id),
      revokeByGrantId: (grantId) => inner.revokeByGrantId(grantId),
    };

    if (name === 'AccessToken') {
      adapter.revokeByGrantId = async (grantId) => {
        await inner.revokeByGrantId(grantId);
        await markRevoked(grantId);
      };
    }

    if (name === 'Grant') {
      adapter.destroy = async (id) => {
        await inner.destroy(id);
        await markRevoked(id);
      };
    }

    if (name === 'RefreshToken' && refreshReuseGraceSeconds > 0) {
      const withinGrace = async (id: string): Promise<boolean> => {
        const rotated = await store.get<RotatedRecord>(ROTATED_REFRESH_NAMESPACE, hashToken(id));
        return rotated !== undefined && clock.now() - rotated.at <= refreshReuseGraceSeconds * 1000;
      };
      adapter.consume = async (id) => {
        // setIfAbsent is the atomic step: of two parallel refreshes with the same token exactly one records the
        // rotation and consumes the token; the other finds the record and, inside the window, is a tolerated retry
        // (consuming again would count as a replay and revoke the grant).
        const first = await store.setIfAbsent<RotatedRecord>(ROTATED_REFRESH_NAMESPACE, hashToken(id), { at: clock.now() }, {
          ttlSeconds: refreshReuseGraceSeconds,
        });
        if (!first && (await withinGrace(id))) return;
        await inner.consume(id);
      };
      adapter.find = async (id) => {
        const payload = await inner.find(id);
        if (!payload || payload.consumed === undefined || !(await withinGrace(id))) return payload;
        const { consumed: _consumed, ...retried } = payload;
        return retried as AdapterPayload;
      };
    }

    if (onReplayDetected !== undefined && (name === 'AuthorizationCode' || name === 'RefreshToken')) {
      const consume = adapter.consume;
      adapter.consume = async (id) => {
        try {
          await consume(id);
        } catch (error) {
          if (error instanceof GrantAlreadyConsumedError) onReplayDetected(name);
          throw error;
        }
      };
    }

    if (name === 'Client') {
      adapter.upsert = async (id, payload, expiresIn) => {
        const secret = payload.client_secret;
        const stored =
          typeof secret === 'string' && !isHashedClientSecret(secret)
            ? { ...payload, client_secret: await hashClientSecret(secret) }
            : payload;
        await inner.upsert(id, stored, expiresIn);
      };
    }

    return adapter;
  };
}
