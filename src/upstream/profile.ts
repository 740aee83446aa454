import type { JWTPayload } from 'jose';
import type { Configuration } from 'openid-client';
import { ConfigError } from '../config/config-error.ts';
import type { UpstreamConfig } from '../config/schema.ts';
import { cspOrigin } from '../config/csp-source.ts';
import { discoverEntra, discoverOidc, type DiscoveryDeps } from './discovery.ts';
import { createEntraProfile } from './entra.ts';
import { claimMappingFor, type ClaimMapping } from './claim-mapping.ts';
import { identityFromClaims } from './identity-claims.ts';
import type { UpstreamIdentity } from './types.ts';

/** What differs between Entra ID and any other OIDC provider; the upstream client is the same for both. */
export interface Profile {
  discover(): Promise<Configuration>;
  expectedIssuer(claims: JWTPayload, configuration: Configuration): string;
  /** Which claims make the identity, and whether userinfo is asked for them. */
  claims: ClaimMapping;
  identityFrom(claims: JWTPayload): UpstreamIdentity;
  /** Entra wants the scopes again on refresh (it may otherwise return a token for one resource only). */
  refreshParameters: Record<string, string>;
  /**
   * Whether an ID token answering `max_age` must say when the user signed in (`auth_time`, REQUIRED then: OIDC Core
   * §2). Any OpenID provider: yes. Entra: no, its tokens carry it only when configured as an optional claim.
   */
  authTimeRequiredWithMaxAge: boolean;
}

/** Picks the profile for `upstream.type`; configuration mistakes fail here, at start. */
export function createProfile(config: UpstreamConfig, discoveryDeps: DiscoveryDeps): Profile {
  const claims = claimMappingFor(config);
  const identityFrom = (verified: JWTPayload) => identityFromClaims(verified, claims);
  if (config.type === 'entra') {
    if (!config.entra) throw new ConfigError(['upstream.entra.tenantId: required for type entra — your directory (tenant) id, or organizations/common']);
    const entra = createEntraProfile(config.entra);
    return {
      discover: () => discoverEntra(entra, discoveryDeps),
      expectedIssuer: (claims) => entra.expectedIssuer(claims),
      claims,
      identityFrom,
      refreshParameters: { scope: config.scopes.join(' ') },
      authTimeRequiredWithMaxAge: false,
    };
  }
  const issuer = config.issuer;
  if (!issuer) throw new ConfigError(['upstream.issuer: required for type oidc — the issuer URL of your identity provider']);
  return {
    discover: () => discoverOidc(issuer, discoveryDeps),
    expectedIssuer: (_claims, configuration) => configuration.serverMetadata().issuer,
    claims,
    identityFrom,
    refreshParameters: {},
    authTimeRequiredWithMaxAge: true,
  };
}

/**
 * The origin of the IdP's browser-facing endpoints (authorize, end-session), for a page's CSP `form-action`: browsers
 * apply it to the redirects that follow a form post, so a form that ends at the IdP must name its origin.
 */
export function upstreamBrowserOrigin(config: Pick<UpstreamConfig, 'type' | 'issuer' | 'entra'> | undefined): string | undefined {
  const url = config?.type === 'entra' ? config.entra?.authority : config?.issuer;
  return url === undefined ? undefined : cspOrigin(url);
}
