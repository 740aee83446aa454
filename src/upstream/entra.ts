import { UpstreamDiscoveryError } from './discovery.ts';
import type { JWTPayload } from 'jose';
import { ConfigError } from '../config/config-error.ts';
import { ANY_TENANT, isMultiTenantAuthority, TENANT_ID } from '../config/entra-tenants.ts';
import type { UpstreamConfig } from '../config/schema.ts';
import { UpstreamError } from './errors.ts';

/**
 * Microsoft Entra ID specifics. Entra's v2 endpoints are ordinary OIDC except for the issuer: a multi-tenant
 * authority (`organizations`, `common`) publishes `https://login.microsoftonline.com/{tenantid}/v2.0` with a literal
 * placeholder, every tenant signs with the same keys, so the issuer of each token must be rebuilt from its own `tid`
 * and the tenant checked against an allow-list — otherwise any Entra tenant's users could sign in.
 */
export type EntraConfig = NonNullable<UpstreamConfig['entra']>;

/** The personal Microsoft account tenant: never an organisation, whatever the authority says. */
const MSA_TENANT_ID = '9188040d-6c67-4c5b-b112-36a304b66dad';
const TENANT_PLACEHOLDER = '{tenantid}';

export interface EntraProfile {
  discoveryUrl: URL;
  multiTenant: boolean;
  /** Throws unless the discovery document's issuer is what this authority and tenant should publish. */
  checkDiscoveredIssuer(issuer: string): void;
  /** The issuer this ID/access token must carry (v1 or v2 per its `ver`), or throws if its tenant is not allowed. */
  expectedIssuer(claims: JWTPayload): string;
}

/** Entra scopes are `{resource}/{scope}`; a bare `User.Read` for audience A becomes `A/User.Read`. */
export function qualifyScopes(audience: string, scopes: string[]): string[] {
  const base = audience.replace(/\/+$/, '');
  return scopes.map((scope) => (scope.includes('/') || scope === 'offline_access' || scope === 'openid' ? scope : `${base}/${scope}`));
}

/** Authority URL without a trailing slash; sovereign clouds are simply another authority host. */
export function normalizeAuthority(authority: string): URL {
  const url = URL.canParse(authority) ? new URL(authority) : undefined;
  if (!url || (url.protocol !== 'https:' && !['localhost', '127.0.0.1', '[::1]'].includes(url.hostname))) {
    throw new ConfigError([`upstream.entra.authority: must be an https URL (got "${authority}")`]);
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  url.search = '';
  url.hash = '';
  return url;
}

/** v1 tokens (`ver: 1.0`, apps whose manifest keeps accessTokenAcceptedVersion 1) carry the STS issuer. */
function v1Issuer(v2Template: URL, tid: string): string {
  const host = v2Template.hostname === 'login.microsoftonline.com' ? 'sts.windows.net' : v2Template.host;
  return `https://${host}/${tid}/`;
}

export function createEntraProfile(entra: EntraConfig): EntraProfile {
  const authority = normalizeAuthority(entra.authority);
  const tenant = entra.tenantId;
  const multiTenant = isMultiTenantAuthority(tenant);
  const allowedTenants = new Set(entra.allowedTenants.map((t) => t.toLowerCase()));
  if (!multiTenant && !TENANT_ID.test(tenant) && !/^[a-z0-9.-]+$/i.test(tenant)) {
    throw new ConfigError([`upstream.entra.tenantId: must be a tenant id, a verified domain, organizations or common (got "${tenant}")`]);
  }
  // Checked with the other configuration rules (config/entra-tenants.ts); again here, where it is enforced, so no
  // path around the rules (a test, an embedding) builds a profile that admits every tenant by default.
  if (multiTenant && allowedTenants.size === 0) {
    throw new ConfigError([`upstream.entra.allowedTenants: required with tenantId: ${tenant} — the tenant ids whose users may sign in, or ['${ANY_TENANT}']`]);
  }
  // Set from discovery: a single-tenant authority may be configured by domain name, but tokens carry the GUID.
  let issuerTemplate: string | undefined;
  let homeTenantId: string | undefined = TENANT_ID.test(tenant) ? tenant.toLowerCase() : undefined;

  const tenantAllowed = (tid: string): boolean => {
    if (!multiTenant) return tid === homeTenantId;
    if (tenant.toLowerCase() === 'organizations' && tid === MSA_TENANT_ID) return false;
    return allowedTenants.has(ANY_TENANT) || allowedTenants.has(tid);
  };

  return {
    discoveryUrl: new URL(`${authority.href.replace(/\/$/, '')}/${encodeURIComponent(tenant)}/v2.0/.well-known/openid-configuration`),
    multiTenant,

    checkDiscoveredIssuer(issuer) {
      const match = /^https:\/\/[^/]+\/([^/]+)\/v2\.0$/.exec(issuer);
      if (!match?.[1]) throw new UpstreamDiscoveryError(`Entra discovery returned an unexpected issuer: ${issuer}`);
      const segment = match[1].toLowerCase();
      if (multiTenant) {
        if (segment !== TENANT_PLACEHOLDER) throw new UpstreamDiscoveryError(`Entra multi-tenant discovery issuer lacks ${TENANT_PLACEHOLDER}: ${issuer}`);
      } else {
        if (!TENANT_ID.test(segment)) throw new UpstreamDiscoveryError(`Entra discovery issuer has no tenant id: ${issuer}`);
        if (homeTenantId && segment !== homeTenantId) throw new UpstreamDiscoveryError(`Entra discovery issuer is for another tenant: ${issuer}`);
        homeTenantId = segment;
      }
      issuerTemplate = multiTenant ? issuer : issuer.replace(match[1], TENANT_PLACEHOLDER);
    },

    expectedIssuer(claims) {
      if (!issuerTemplate) throw new Error('Entra profile used before discovery');
      const tid = typeof claims.tid === 'string' ? claims.tid.toLowerCase() : undefined;
      if (!tid || !TENANT_ID.test(tid)) {
        throw new UpstreamError('access_denied', 'The Entra token has no valid tenant id (tid).');
      }
      if (!tenantAllowed(tid)) {
        throw new UpstreamError('access_denied', 'Users of this Entra tenant may not sign in to this gateway.', {
          upstreamError: 'tenant_not_allowed',
        });
      }
      const template = new URL(issuerTemplate.replace(TENANT_PLACEHOLDER, 'placeholder'));
      // Entra says which token format it issued: `ver` 1.0 tokens use the STS issuer, 2.0 the v2 endpoint's.
      return claims.ver === '1.0' ? v1Issuer(template, tid) : issuerTemplate.replace(TENANT_PLACEHOLDER, tid);
    },
  };
}
