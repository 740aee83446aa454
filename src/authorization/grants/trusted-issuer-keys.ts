import type { JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { systemClock, type Clock } from '../../runtime/clock.ts';
import { cappedFetch, PROVIDER_RESPONSE_LIMIT_BYTES } from '../../runtime/capped-fetch.ts';
import { isLoopbackHttp } from '../../upstream/discovery.ts';
import { upstreamJwks } from '../../upstream/id-token.ts';

/**
 * The signing keys of an issuer the operator trusts for JWT grants (an enterprise IdP, a workload platform): its
 * configured `jwksUri`, or the `jwks_uri` of its discovery document — OpenID Connect Discovery first, then RFC 8414.
 * Discovery happens on first use, not at start (a slow IdP cannot stop Gatehouse starting) and a failure is not
 * retried within 30 s; jose caches the keys and refetches on an unknown `kid` (key rotation at the IdP).
 */
export interface TrustedIssuer {
  issuer: string;
  jwksUri?: string | undefined;
}

export interface TrustedIssuerKeysOptions {
  fetch?: typeof globalThis.fetch;
  timeoutMs?: number;
  clock?: Clock;
}

/** How long a failed discovery is not retried (jose's own cooldown between JWKS refetches is as long). */
const DISCOVERY_RETRY_MS = 30_000;

const discoveryDocument = z.object({ issuer: z.string(), jwks_uri: z.string().url() });

export function trustedIssuerKeys(options: TrustedIssuerKeysOptions = {}): (issuer: TrustedIssuer) => JWTVerifyGetKey {
  const fetch = options.fetch ?? cappedFetch(globalThis.fetch, PROVIDER_RESPONSE_LIMIT_BYTES);
  const timeoutMs = options.timeoutMs ?? 5_000;
  const clock = options.clock ?? systemClock;
  const byIssuer = new Map<string, JWTVerifyGetKey>();

  async function discoverJwksUri(issuer: string): Promise<string> {
    const base = issuer.replace(/\/+$/, '');
    const origin = new URL(issuer);
    const candidates = [`${base}/.well-known/openid-configuration`, `${origin.origin}/.well-known/oauth-authorization-server${origin.pathname.replace(/\/+$/, '')}`];
    for (const url of candidates) {
      const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' }).catch(() => undefined);
      if (response?.ok !== true) continue;
      const document = discoveryDocument.safeParse(await response.json().catch(() => undefined));
      // OIDC Discovery §4.3 / RFC 8414 §3.3: the document must name the issuer it was fetched for.
      if (!document.success || document.data.issuer !== issuer) continue;
      const jwksUri = new URL(document.data.jwks_uri);
      // Keys only over TLS (MCP Enterprise-Managed Authorization §7.3), except on loopback (tests, the demo).
      if (jwksUri.protocol === 'https:' || isLoopbackHttp(jwksUri)) return jwksUri.href;
    }
    throw new Error(`no discovery document naming ${issuer} with a jwks_uri`);
  }

  /**
   * One discovery at a time per issuer, and after a failure none for a while: the keys are looked up before the
   * signature is checked and a workload token needs no client credentials, so each anonymous request naming an issuer
   * whose discovery fails (down, hanging, or none published) would otherwise send two requests to it.
   */
  function lazilyDiscovered(issuer: string): JWTVerifyGetKey {
    let keys: JWTVerifyGetKey | undefined;
    let discovering: Promise<JWTVerifyGetKey> | undefined;
    let failedAt = Number.NEGATIVE_INFINITY;
    function discover(): Promise<JWTVerifyGetKey> {
      if (clock.now() - failedAt < DISCOVERY_RETRY_MS) return Promise.reject(new Error(`discovery of ${issuer} failed less than ${DISCOVERY_RETRY_MS / 1000} s ago`));
      discovering = discoverJwksUri(issuer)
        .then((jwksUri) => (keys = upstreamJwks(jwksUri, fetch, timeoutMs)))
        .catch((error: unknown) => {
          failedAt = clock.now();
          throw error;
        })
        .finally(() => (discovering = undefined));
      return discovering;
    }
    return async (header, token) => (keys ?? (await (discovering ?? discover())))(header, token);
  }

  return (trusted) => {
    let keys = byIssuer.get(trusted.issuer);
    if (keys === undefined) {
      keys = trusted.jwksUri === undefined ? lazilyDiscovered(trusted.issuer) : upstreamJwks(trusted.jwksUri, fetch, timeoutMs);
      byIssuer.set(trusted.issuer, keys);
    }
    return keys;
  };
}
