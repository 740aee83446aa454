import type { JWTPayload } from 'jose';
import { mappedGroups, stringClaim, type ClaimMapping } from './claim-mapping.ts';
import { UpstreamError } from './errors.ts';
import type { UpstreamIdentity } from './types.ts';

/** What an identity provider's claims may hold: OIDC Core §2 for `sub`, RFC 5321 for an address, a page line for a name. */
const MAX_SUBJECT_LENGTH = 255;
const MAX_NAME_LENGTH = 256;
const MAX_EMAIL_LENGTH = 254;

/**
 * The Gatehouse subject for any OpenID Connect provider: `sub` is only unique per issuer (OIDC Core §2), so the
 * subject carries both. `#` cannot occur in an issuer (OIDC Discovery §3: no fragment), so the split back is
 * unambiguous.
 */
export function oidcSubject(issuer: string, sub: string): string {
  return `${issuer}#${sub}`;
}

/**
 * Why a provider's user id cannot be a Gatehouse subject, or undefined — at sign-in and for an enterprise IdP's
 * ID-JAG alike. OIDC Core §2: a `sub` is at most 255 ASCII characters (counted here as UTF-8 bytes, what ASCII
 * characters would be: 127 emoji were 508 bytes). A longer one becomes the subject of every token issued to the user,
 * and their access token outgrew the headers a server reads (431 on every call) after a sign-in that looked fine. Nor
 * a control character: the id is the key of the user's records, the `sub` of their tokens and of every identity
 * assertion, and a line in the admin CLI; no IdP issues one, and one that does sends something else as a user id.
 */
export function userIdProblem(id: string): string | undefined {
  if (Buffer.byteLength(id, 'utf8') > MAX_SUBJECT_LENGTH) return `is longer than ${MAX_SUBJECT_LENGTH} characters`;
  if (/\p{Cc}/u.test(id)) return 'contains control characters';
  return undefined;
}

/** A display name as pages and identity assertions carry it: one of kilobytes is cut. */
export const boundedName = (name: string): string => (name.length > MAX_NAME_LENGTH ? `${name.slice(0, MAX_NAME_LENGTH - 1)}…` : name);

/** An address, or none when it is longer than any address can be (RFC 5321 §4.5.3.1.3). */
export const boundedEmail = (email: string): string | undefined => (email.length <= MAX_EMAIL_LENGTH ? email : undefined);

const emailLike = (value: string | undefined): string | undefined => (value && value.includes('@') ? value : undefined);

/**
 * The `email` claim only when the provider vouches for it. An address is what `admin.users` and tool policies
 * (`user.email`) match, and many providers let a user type any address into their profile: with an unverified
 * `email` of an admin's address, anyone signing in at the same provider was an admin. OpenID Connect says so with
 * `email_verified` (Core §5.1); Entra's `email` is an optional, user-editable claim whose domain only `xms_edov`
 * vouches for (the "nOAuth" attack), and its sign-in name (`preferred_username`/`upn`, in a domain the tenant
 * verified) is used instead. A claim the operator mapped by another name (`upstream.claims.email`) is theirs to vouch for.
 */
function verifiedEmail(claims: JWTPayload, mapping: ClaimMapping): string | undefined {
  const email = stringClaim(claims, mapping.email);
  if (email === undefined || mapping.email !== 'email') return email;
  const vouched = mapping.preset === 'entra' ? claims.xms_edov : claims.email_verified;
  return vouched === true || vouched === 'true' || vouched === 1 || vouched === '1' ? email : undefined;
}

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
  const problem = userIdProblem(id);
  if (problem !== undefined) throw new UpstreamError('access_denied', `The identity provider's user id ("${mapping.subject}") ${problem}.`);
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
    verifiedEmail(claims, mapping) ??
    // `upn` first: Microsoft documents `preferred_username` as mutable, not for authorization.
    (mapping.preset === 'entra' ? emailLike(stringClaim(claims, 'upn') ?? stringClaim(claims, 'preferred_username')) : undefined);
  // Shown on pages and carried in every identity assertion.
  if (name) identity.name = boundedName(name);
  if (email && boundedEmail(email) !== undefined) identity.email = email;
  if (tenantId) identity.tenantId = tenantId;
  return identity;
}
