import Provider, { type Adapter, type AdapterConstructor, type AdapterFactory } from 'oidc-provider';
import { createEndGrant, type EndGrant } from '../grants/end-grant.ts';
import { grantRevocation } from '../grants/revoked-grants.ts';
import type { GrantEndReason } from '../grants/grant-end-reason.ts';
import { hashClientSecret, hashGeneratedSecret, isHashedClientSecret, looksGenerated } from '../keys/hashing.ts';
import type { Clock } from '../runtime/clock.ts';
import { GrantAlreadyConsumedError } from '../store/oidc-adapter.ts';
import type { Store } from '../store/store.ts';
import { toleratedRefreshRetries } from './refresh-token-reuse.ts';
import { toleratedCodeRetries } from './code-exchange-retry.ts';
import { clientGrantedRecord } from '../records/authorization.ts';
import { writeRecord } from '../store/record-access.ts';

/** How long past a grant's longest life its client counts as granted (records/authorization.ts `client-granted`). */
const CLIENT_GRANTED_MARGIN_SECONDS = 24 * 3600;
/** How often one process writes a client's `client-granted` again, and for how many clients it remembers doing so. */
const CLIENT_GRANTED_REWRITE_MS = 3_600_000;
const MAX_CLIENTS_REMEMBERED = 10_000;

/**
 * Wraps the store's oidc-provider adapter with the behaviour the authorization server adds around persistence:
 *
 * 1. Grant revocation reaches the MCP proxy. Access tokens are self-contained JWTs, so deleting them from the store
 *    does nothing by itself; whenever oidc-provider ends a grant (code replay, refresh-token reuse, RFC 7009
 *    revocation of a refresh token, logout) it calls `AccessToken.revokeByGrantId` and/or `Grant.destroy`, and both
 *    become one `endGrant` (src/grants/end-grant.ts), the function every grant-ending path goes through. So does a
 *    code or refresh token redeemed twice at the same moment, which the store's atomic consume catches.
 * 2. A grace window for a rotated refresh token: a client that retries a refresh (lost response, two tabs racing)
 *    with the token it just rotated is not treated as a thief for `graceSeconds`; after that, reuse revokes the grant.
 * 3. Dynamically registered client secrets are stored only as a hash: SHA-256 for the 512-bit secrets oidc-provider
 *    generates, scrypt for anything shorter (see client-overrides.ts and hashing.ts).
 * 4. A code or refresh token redeemed twice at the same moment (caught by the store adapter's atomic consume, which
 *    revokes the grant) is reported through `onReplayDetected`, for metrics.
 * 5. A code whose exchange the store interrupted (consumed, no token handed out) may be exchanged again instead of
 *    counting as a replay (code-exchange-retry.ts).
 * 6. A revoked grant is not found, whatever of it is still in the store (an ending the store interrupted part-way).
 */
export interface AdapterHookOptions {
  store: Store;
  clock: Clock;
  /** Longest access-token lifetime, seconds: how long a revoked-grant record must live. */
  accessTokenTtlSeconds: number;
  /** The longest a grant lives (`refreshTokenAbsoluteSeconds`), for the default `endGrant` (end-grant.ts). */
  grantLifetimeSeconds: number;
  refreshReuseGraceSeconds: number;
  /** Told when a concurrent second redemption of a code or refresh token was refused (see provider-metrics.ts). */
  onReplayDetected?: (model: 'AuthorizationCode' | 'RefreshToken') => void;
  /** The grant-ending function (the app passes the one that logs); by default one built from the options above. */
  endGrant?: EndGrant;
  /** The algorithms the keyring signs with, current first (provider-configuration.ts, keyringAlgorithms). */
  signingAlgorithms?: () => readonly string[];
  /** A route's resource in its canonical spelling, or undefined for anything that names no route (protected-resources.ts). */
  canonicalRoute?: (resource: string) => string | undefined;
}

/**
 * A code, refresh token or grant stored under another spelling of a route's resource (`…/mcp/`, an upper-case host)
 * read with the canonical one. Such records were written before requests were canonicalized (provider-mount.ts);
 * oidc-provider compares indicators as strings, so the canonical `resource` the request now carries refused them
 * with `invalid_target`, and a client's refresh tokens from before stopped working.
 */
function withCanonicalResources(payload: OidcPayloadLike | undefined, canonicalRoute: (resource: string) => string | undefined): OidcPayloadLike | undefined {
  if (payload === undefined) return undefined;
  const canonical = (resource: string) => canonicalRoute(resource) ?? resource;
  let out: OidcPayloadLike | undefined;
  const resource = payload.resource;
  if (typeof resource === 'string' && canonical(resource) !== resource) out = { ...payload, resource: canonical(resource) };
  else if (Array.isArray(resource) && resource.some((entry) => typeof entry === 'string' && canonical(entry) !== entry)) {
    out = { ...payload, resource: [...new Set(resource.map((entry) => (typeof entry === 'string' ? canonical(entry) : entry)))] };
  }
  const resources = payload.resources;
  if (typeof resources === 'object' && resources !== null && Object.keys(resources).some((key) => canonical(key) !== key)) {
    const merged: Record<string, string> = {};
    for (const [key, scopes] of Object.entries(resources as Record<string, unknown>)) {
      if (typeof scopes !== 'string') continue;
      const target = canonical(key);
      merged[target] = [...new Set([...(merged[target] ?? '').split(' '), ...scopes.split(' ')].filter(Boolean))].join(' ');
    }
    out = { ...(out ?? payload), resources: merged };
  }
  return out ?? payload;
}

type OidcPayloadLike = Awaited<ReturnType<Adapter['find']>> & Record<string, unknown>;

/**
 * Why oidc-provider is ending a grant, from the request it is serving (`Provider.ctx`, its async-local context): on
 * the token endpoint only a replayed code or a reused refresh token ends a grant; elsewhere (the revocation
 * endpoint) the client revoked a token. RP-initiated logout is not enabled, so it cannot end one here.
 */
/** The provider route being served (`Provider.ctx`, its async-local context), if any. */
function providerRoute(): unknown {
  return (Provider.ctx as { oidc?: { route?: unknown } } | undefined)?.oidc?.route;
}

export function providerGrantEndReason(): GrantEndReason {
  const oidc = (Provider.ctx as { oidc?: { route?: unknown; params?: { grant_type?: unknown } } } | undefined)?.oidc;
  if (oidc?.route === 'token') return oidc.params?.grant_type === 'refresh_token' ? 'refresh_reuse' : 'code_replay';
  return 'token_revocation';
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
  const { store, clock, accessTokenTtlSeconds, grantLifetimeSeconds, refreshReuseGraceSeconds, onReplayDetected } = options;
  const endGrant = options.endGrant ?? createEndGrant({ store, clock, accessTokenTtlSeconds, grantLifetimeSeconds });
  // Clients whose `client-granted` record this process wrote, and when (see the Grant hook below).
  const grantedWritten = new Map<string, number>();

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

    if (name === 'AccessToken') adapter.revokeByGrantId = async (grantId) => void (await endGrant(grantId, providerGrantEndReason()));
    if (name === 'Grant') {
      adapter.destroy = async (id) => void (await endGrant(id, providerGrantEndReason()));
      // When a user last granted the client access, for `gatehouse clients prune` (records/authorization.ts): written
      // first, so a grant is never saved without it (a failure after it only keeps a registration longer). At most
      // once an hour per client from this process: an ID-JAG token request saves a grant each time, and the record
      // lives a grant's whole life and a day.
      const upsert = adapter.upsert;
      adapter.upsert = async (id, payload, expiresIn) => {
        const clientId = payload.clientId;
        const writtenAt = typeof clientId === 'string' ? grantedWritten.get(clientId) : undefined;
        if (typeof clientId === 'string' && clientId !== '' && (writtenAt === undefined || clock.now() - writtenAt >= CLIENT_GRANTED_REWRITE_MS)) {
          await writeRecord(store, clientGrantedRecord, clientId, { at: clock.now() }, { ttlSeconds: grantLifetimeSeconds + CLIENT_GRANTED_MARGIN_SECONDS });
          if (grantedWritten.size >= MAX_CLIENTS_REMEMBERED) grantedWritten.clear();
          grantedWritten.set(clientId, clock.now());
        }
        await upsert(id, payload, expiresIn);
      };
      // A revoked grant whose records a failed ending left behind (end-grant.ts) is not found: its refresh tokens and
      // codes are refused (`invalid_grant`), a consent does not build on it, and the ending is finished now.
      adapter.find = async (id) => {
        const revoked = await grantRevocation(store, id);
        if (revoked === undefined) return inner.find(id);
        // Finished only where something is left: a browser session still naming an ended grant costs a read, not a
        // whole ending (writes, a message) on each of its /authorize.
        if ((await inner.find(id)) !== undefined) await endGrant(id, revoked.reason ?? providerGrantEndReason());
        return undefined;
      };
    }

    if (name === 'RefreshToken' && refreshReuseGraceSeconds > 0) {
      Object.assign(adapter, toleratedRefreshRetries(inner, { store, clock, graceSeconds: refreshReuseGraceSeconds }));
    }
    // A code the store failed part-way through exchanging may be exchanged again (code-exchange-retry.ts).
    if (name === 'AuthorizationCode') Object.assign(adapter, toleratedCodeRetries(inner, { store }));

    // RFC 7009 revocation of a refresh token: oidc-provider deletes the token, then ends its grant. A store failing
    // between the two (a full Redis still deletes) left the grant's access tokens working while the client, told to
    // retry, got 200 on the retry — the token was gone, so nothing ended the grant. The grant ends first here; the
    // provider's own end that follows is the same write again.
    if (name === 'RefreshToken') {
      adapter.destroy = async (id) => {
        if (providerRoute() === 'revocation') {
          const grantId = (await inner.find(id))?.grantId;
          if (typeof grantId === 'string') await endGrant(grantId, 'token_revocation');
        }
        await inner.destroy(id);
      };
    }

    // Refresh token reuse detection (RFC 9700 §4.14.2) is oidc-provider's sequential check (a consumed token presented
    // again ends the grant) plus this one for the concurrent case; the grace window is refresh-token-reuse.ts.
    if (name === 'AuthorizationCode' || name === 'RefreshToken') {
      const consume = adapter.consume;
      adapter.consume = async (id) => {
        try {
          await consume(id);
        } catch (error) {
          // Redeemed twice at the same moment: it leaked, so the grant ends everywhere before the loser is refused.
          if (error instanceof GrantAlreadyConsumedError) {
            if (error.grantId !== undefined) await endGrant(error.grantId, name === 'RefreshToken' ? 'refresh_reuse' : 'code_replay');
            onReplayDetected?.(name);
          }
          throw error;
        }
      };
    }

    if (name === 'Client') {
      adapter.upsert = async (id, payload, expiresIn) => {
        // A public client keeps no secret (client-overrides.ts: oidc-provider generates one before defaulting to `none`).
        if (payload.token_endpoint_auth_method === 'none' && payload.client_secret !== undefined) {
          const { client_secret: _secret, client_secret_expires_at: _expires, ...publicClient } = payload;
          payload = publicClient;
        }
        const secret = payload.client_secret;
        const stored =
          typeof secret === 'string' && !isHashedClientSecret(secret)
            ? { ...payload, client_secret: looksGenerated(secret) ? hashGeneratedSecret(secret) : await hashClientSecret(secret) }
            : payload;
        await inner.upsert(id, stored, expiresIn);
      };
      const { signingAlgorithms } = options;
      if (signingAlgorithms !== undefined) {
        // A client stored with an ID-token algorithm no key signs any more (its keys pruned after a rotation to
        // another algorithm) failed oidc-provider's metadata check on every request: read with the current one.
        adapter.find = async (id) => {
          const payload = await inner.find(id);
          const alg = payload?.id_token_signed_response_alg;
          const algorithms = signingAlgorithms();
          if (payload === undefined || typeof alg !== 'string' || algorithms.includes(alg)) return payload;
          return { ...payload, id_token_signed_response_alg: algorithms[0] };
        };
      }
    }

    const { canonicalRoute } = options;
    if (canonicalRoute !== undefined && (name === 'AuthorizationCode' || name === 'RefreshToken' || name === 'Grant')) {
      const find = adapter.find;
      adapter.find = async (id) => withCanonicalResources((await find(id)) as OidcPayloadLike | undefined, canonicalRoute);
    }

    return adapter;
  };
}
