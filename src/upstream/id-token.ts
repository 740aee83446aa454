import { createRemoteJWKSet, customFetch, decodeJwt, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../runtime/clock.ts';
import { constantTimeEqual } from '../keys/hashing.ts';
import { UpstreamError } from './errors.ts';

export type JwksResolver = ReturnType<typeof createRemoteJWKSet>;

/** The upstream's signing keys, fetched through the injected fetch with the upstream timeout (jose caches them). */
export function upstreamJwks(jwksUri: string, fetch: typeof globalThis.fetch, timeoutMs: number): JwksResolver {
  return createRemoteJWKSet(new URL(jwksUri), {
    timeoutDuration: timeoutMs,
    [customFetch]: (url, options) => fetch(url, options as RequestInit),
  });
}

/**
 * Whether a failed verification means the key set could not be had — not answered, timed out, a non-200 or non-JSON
 * answer (jose's plain JOSEError), or no key set in it — rather than a bad token. The first is the issuer's outage, a
 * 503 to retry; answering it as an invalid token told the client to give up.
 */
export function isKeySetUnavailable(error: unknown): boolean {
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) return true;
  if (error instanceof errors.JOSEError) return error.constructor === errors.JOSEError;
  // Not jose's own: the fetch itself failed (network, abort).
  return true;
}

/** Seconds of clock difference tolerated between us and the IdP on `exp`/`iat`/`nbf`. */
const CLOCK_TOLERANCE_SECONDS = 60;

/**
 * Validates an ID token from the token endpoint. @see OpenID Connect Core §3.1.3.7
 * Signature (IdP JWKS), issuer (per profile: Entra's depends on the token's tenant), audience = our client id,
 * `azp` when there are several audiences, expiry on the injected clock, and the nonce we bound to this sign-in
 * (replay of an ID token from another sign-in fails here).
 */
export async function verifyIdToken(options: {
  idToken: string;
  jwks: JWTVerifyGetKey;
  clientId: string;
  expectedNonce: string;
  expectedIssuer: (claims: JWTPayload) => string;
  clock: Clock;
}): Promise<JWTPayload> {
  const { idToken, jwks, clientId, expectedNonce, clock } = options;
  let unverified: JWTPayload;
  try {
    unverified = decodeJwt(idToken);
  } catch (cause) {
    throw new UpstreamError('access_denied', 'The identity provider returned a malformed ID token.', {}, { cause });
  }
  const issuer = options.expectedIssuer(unverified);
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(idToken, jwks, {
      issuer,
      audience: clientId,
      currentDate: new Date(clock.now()),
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['sub', 'exp', 'iat'],
    }));
  } catch (cause) {
    // The keys could not be fetched: the IdP is unreachable, not the token bad.
    if (isKeySetUnavailable(cause)) {
      throw new UpstreamError('temporarily_unavailable', 'The identity provider\'s signing keys could not be fetched.', {}, { cause });
    }
    throw new UpstreamError('access_denied', 'The identity provider\'s ID token failed validation.', {}, { cause });
  }
  // OIDC Core §3.1.3.7 items 4–5: with several audiences `azp` must be ours; present at all, it must be ours too.
  if ((Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== clientId) || (payload.azp !== undefined && payload.azp !== clientId)) {
    throw new UpstreamError('access_denied', 'The ID token was issued to another party (azp).');
  }
  // jose checks `iat` only for its type: an ID token issued in 2096 is no clock skew (§3.1.3.7 item 10).
  if (typeof payload.iat === 'number' && payload.iat > clock.now() / 1000 + CLOCK_TOLERANCE_SECONDS) {
    throw new UpstreamError('access_denied', "The identity provider's ID token was issued in the future.");
  }
  if (typeof payload.nonce !== 'string' || !constantTimeEqual(payload.nonce, expectedNonce)) {
    throw new UpstreamError('access_denied', 'The ID token nonce does not match this sign-in.');
  }
  return payload;
}
