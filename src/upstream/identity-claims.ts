import type { JWTPayload } from 'jose';
import { mappedGroups, stringClaim, type ClaimMapping } from './claim-mapping.ts';
import { UpstreamError } from './errors.ts';
import type { UpstreamIdentity } from './types.ts';

/**
 * The Gatehouse subject for any OpenID Connect provider: `sub` is only unique per issuer (OIDC Core §2), so the
 * subject carries both. `#` cannot occur in an issuer (OIDC Discovery §3: no fragment), so the split back is
 * unambiguous.
 */
export function oidcSubject(issuer: string, sub: string): string {
  return `${issuer}#${sub}`;
}

const emailLike = (value: string | undefined): string | undefined => (value && value.includes('@') ? value : undefined);

/**
 * The identity a validated ID token (merged with userinfo where the mapping asked for it) describes, per the claim
 * mapping (src/upstream/claim-mapping.ts documents both subject formats).
 */
export function identityFromClaims(claims: JWTPayload, mapping: ClaimMapping): UpstreamIdentity {
  const issuer = stringClaim(claims, 'iss');
  const id = stringClaim(claims, mapping.subject);
  if (!issuer || !id) {
    throw new UpstreamError('access_denied', `The identity provider named no ${issuer ? `"${mapping.subject}" claim` : 'issuer'} for this user.`);
  }
  const tenantId = stringClaim(claims, 'tid')?.toLowerCase();
  let subject: string;
  if (mapping.preset === 'entra') {
    // oid is stable per user and tenant; sub is per application, and tid qualifies oid across tenants.
    if (!tenantId) throw new UpstreamError('access_denied', 'The Entra token has no tenant id (tid).');
    subject = `${tenantId}/${id}`;
  } else {
    subject = oidcSubject(issuer, id);
  }
  const identity: UpstreamIdentity = { subject, issuer, groups: mappedGroups(claims, mapping) };
  const name = stringClaim(claims, mapping.name);
  // Entra has `email` only as an optional claim; its sign-in name is usually the address.
  const email =
    stringClaim(claims, mapping.email) ??
    (mapping.preset === 'entra' ? emailLike(stringClaim(claims, 'preferred_username') ?? stringClaim(claims, 'upn')) : undefined);
  if (name) identity.name = name;
  if (email) identity.email = email;
  if (tenantId) identity.tenantId = tenantId;
  return identity;
}
