import type { JWTPayload } from 'jose';
import { fetchUserInfo, type Configuration } from 'openid-client';
import { wantsUserinfo, type ClaimMapping } from './claim-mapping.ts';
import { isNetworkFailure, upstreamStatus, UpstreamError } from './errors.ts';

/**
 * The validated ID token's claims, completed from the userinfo endpoint when the mapping wants claims the ID token
 * lacks. A conformant provider puts the claims of `profile`, `email` and custom scopes (such as `groups`) in userinfo
 * and leaves them out of the ID token whenever an access token is issued (OIDC Core §5.4), so without this call such
 * a provider's users would have no name, email or groups and every group policy would deny them.
 *
 * openid-client checks that userinfo's `sub` is the ID token's (OIDC Core §5.3.4: otherwise the answer could describe
 * another user). Where both name a claim the ID token wins: it is signed, and `iss`, `sub`, `tid` must stay the ones
 * verified.
 *
 * @see OpenID Connect Core 1.0 §5.3 (UserInfo endpoint), §5.4 (scope claims)
 */
export async function withUserinfoClaims(input: {
  configuration: Configuration;
  idTokenClaims: JWTPayload;
  accessToken: string;
  mapping: ClaimMapping;
}): Promise<JWTPayload> {
  const { configuration, idTokenClaims, accessToken, mapping } = input;
  if (!wantsUserinfo(idTokenClaims, mapping)) return idTokenClaims;
  if (!configuration.serverMetadata().userinfo_endpoint) return idTokenClaims;
  const sub = idTokenClaims.sub;
  if (typeof sub !== 'string') return idTokenClaims;
  let userinfo: Record<string, unknown>;
  try {
    userinfo = await fetchUserInfo(configuration, accessToken, sub);
  } catch (cause) {
    // Fails closed either way: signing in without the groups a policy expects would quietly turn into "access denied"
    // later. An IdP that did not answer (or answered 5xx) may next time; an answer that fails validation — another
    // user's `sub` above all, or what is not a userinfo response — will not, so it is not "try again later".
    if (isNetworkFailure(cause) || (upstreamStatus(cause) ?? 0) >= 500) {
      throw new UpstreamError('temporarily_unavailable', 'The identity provider\'s userinfo endpoint did not answer; try again.', {}, { cause });
    }
    throw new UpstreamError('access_denied', 'The identity provider\'s userinfo answer failed validation.', {}, { cause });
  }
  const merged: JWTPayload = { ...userinfo, ...idTokenClaims };
  // An address and the word that it was verified belong together: userinfo's `email_verified` was about userinfo's
  // `email`, and with the signed token's own address in its place it vouched for an address it never saw (an ID token
  // naming an admin's address, unverified, beside a userinfo of the user's own verified one opened the console). The
  // token's address keeps only the token's own word, unless userinfo names that same address.
  if (typeof idTokenClaims.email === 'string' && idTokenClaims.email_verified === undefined && userinfo.email !== idTokenClaims.email) {
    delete merged.email_verified;
  }
  return merged;
}

