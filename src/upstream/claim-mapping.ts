import type { JWTPayload } from 'jose';
import type { UpstreamConfig } from '../config/schema.ts';

/**
 * Which upstream claims make the Gatehouse identity. Two presets: `entra` (the subject is the tenant-qualified object
 * id, groups and app roles both count, no userinfo call since Entra's sign-in access token is for the gateway's API
 * and not for Graph's userinfo) and `generic` (any OpenID Connect provider: the subject is the issuer-qualified claim,
 * and userinfo is asked for claims the ID token lacks — OIDC Core §5.4 puts scope-requested claims there unless the
 * `claims` parameter asked for them in the ID token). Each field can be overridden in `upstream.claims`.
 *
 * The subject is what `admin.users`, the audit log, `/account` and `gatehouse users` show and match:
 * - entra: `<tid>/<oid>` — `oid` is stable per user in a tenant (`sub` differs per application);
 * - generic: `<issuer>#<sub>` — `sub` is only unique per issuer (OIDC Core §2), so the issuer qualifies it.
 */
export interface ClaimMapping {
  preset: 'entra' | 'generic';
  subject: string;
  name: string;
  email: string;
  groups: readonly string[];
  userinfo: 'auto' | 'always' | 'never';
}

export function claimMappingFor(config: Pick<UpstreamConfig, 'type' | 'groupsClaim' | 'claims'>): ClaimMapping {
  const given = config.claims;
  const preset = given.preset ?? (config.type === 'entra' ? 'entra' : 'generic');
  const entra = preset === 'entra';
  return {
    preset,
    subject: given.subject ?? (entra ? 'oid' : 'sub'),
    name: given.name ?? 'name',
    email: given.email ?? 'email',
    groups: given.groups ?? (entra ? [config.groupsClaim, 'roles'] : [config.groupsClaim]),
    userinfo: given.userinfo ?? (entra ? 'never' : 'auto'),
  };
}

/** Whether the userinfo endpoint has something to add: `auto` asks only when a mapped claim is missing. */
export function wantsUserinfo(claims: JWTPayload, mapping: ClaimMapping): boolean {
  if (mapping.userinfo !== 'auto') return mapping.userinfo === 'always';
  // An `email` without `email_verified` is not used (identity-claims.ts): some providers say so only at userinfo.
  if (mapping.email === 'email' && claims.email !== undefined && claims.email_verified === undefined) return true;
  return [mapping.subject, mapping.name, mapping.email, ...mapping.groups].some((claim) => claims[claim] === undefined);
}

export function stringClaim(claims: JWTPayload, name: string): string | undefined {
  const value = claims[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

export function listClaim(claims: JWTPayload, name: string): string[] {
  const value = claims[name];
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  if (typeof value === 'string' && value.length > 0) return value.split(/[\s,]+/).filter(Boolean);
  return [];
}

/** Every group and role the mapped claims name, once each. */
export function mappedGroups(claims: JWTPayload, mapping: ClaimMapping): string[] {
  return [...new Set(mapping.groups.flatMap((claim) => listClaim(claims, claim)))];
}
