import { unauthorized, type AuthScheme } from '../errors/bearer-challenge.ts';
import type { VerifyDpopProof } from './dpop-proof.ts';
import type { AccessTokenClaims, VerifyInput, VerifyTarget } from './verify-access-token.ts';

export interface SenderConstraint {
  /** A fresh DPoP nonce to hand the client (its own is aging). */
  nextNonce?: string;
}

const UNBOUND: SenderConstraint = Object.freeze({});

/**
 * Which scheme a token may be presented with, by its binding and the route's `dpop` policy (RFC 9449 §7):
 * - a DPoP-bound token (`cnf.jkt`) only as `DPoP`, with a valid proof of its key: as `Bearer`, a stolen bound token
 *   would work without the key, which is what binding is meant to prevent (§7.2);
 * - an unbound token only as `Bearer`, and not at all on a route with `dpop: required`;
 * - `DPoP` with an unbound token is refused: there is no key for the proof to be checked against.
 */
export function checkSenderConstraint(
  verifyDpopProof: VerifyDpopProof,
  credential: { scheme: AuthScheme; token: string },
  claims: AccessTokenClaims,
  input: VerifyInput,
  target: VerifyTarget,
): SenderConstraint | Promise<SenderConstraint> {
  const { scheme, token } = credential;
  if (claims.jkt === undefined) {
    if (target.dpop === 'required') throw unauthorized(target, true, 'This route accepts only DPoP-bound access tokens (RFC 9449).', scheme);
    if (scheme === 'dpop') throw unauthorized(target, true, 'The access token is not bound to a DPoP key; present it as `Bearer`.', scheme);
    // Answered at once, not as a promise: an unbound token is the common case, checked on every request.
    return UNBOUND;
  }
  if (scheme === 'bearer') {
    throw unauthorized(target, true, 'The access token is bound to a DPoP key: present it as `Authorization: DPoP` with a DPoP proof.', scheme);
  }
  return verifyDpopProof(
    {
      proof: input.dpop,
      method: input.method,
      url: input.url,
      accessToken: token,
      jkt: claims.jkt,
      requireNonce: target.dpopNonce === true,
    },
    target,
  );
}
