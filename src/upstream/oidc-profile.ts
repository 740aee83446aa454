import type { JWTPayload } from 'jose';
import { listClaim, stringClaim } from './entra.ts';
import { UpstreamError } from './errors.ts';
import type { UpstreamIdentity } from './types.ts';

/**
 * Any other OpenID Connect provider (Keycloak, Okta, Auth0, Google, the local identity provider): one issuer, taken
 * from validated discovery; `sub` is only unique per issuer, so the Gatehouse subject carries both.
 */
export function oidcSubject(issuer: string, sub: string): string {
  // `#` cannot occur in an issuer (OIDC Discovery §3: no fragment), so the split back is unambiguous.
  return `${issuer}#${sub}`;
}

export function oidcIdentityFrom(claims: JWTPayload, groupsClaim: string): UpstreamIdentity {
  const issuer = stringClaim(claims, 'iss');
  const sub = stringClaim(claims, 'sub');
  if (!issuer || !sub) throw new UpstreamError('access_denied', 'The ID token has no issuer or subject.');
  const identity: UpstreamIdentity = { subject: oidcSubject(issuer, sub), issuer, groups: listClaim(claims, groupsClaim) };
  const name = stringClaim(claims, 'name');
  const email = stringClaim(claims, 'email');
  const tid = stringClaim(claims, 'tid');
  if (name) identity.name = name;
  if (email) identity.email = email;
  if (tid) identity.tenantId = tid;
  return identity;
}
