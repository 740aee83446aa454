import { SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import type { Random } from '../../runtime/random.ts';

/** The IdP's own signing key, as the token endpoints that mint JWTs outside oidc-provider need it. */
export interface LocalIdpSigner {
  signingKey: CryptoKey;
  signingKid: string;
  issuer: () => string;
  random: Random;
}

/**
 * A JWT from the local IdP: ES256 under its published key, its issuer, a fresh `jti`, issued now (`nbf` too where
 * asked, as Entra's access tokens carry it). The downstream access tokens (on-behalf-of / RFC 8693) and the ID-JAGs
 * are minted here, so both verify against the same JWKS the IdP serves.
 */
export function signLocalIdpJwt(
  signer: LocalIdpSigner,
  token: { typ: string; subject: string; audience: string; issuedAt: number; lifetimeSeconds: number; notBefore?: boolean; claims: JWTPayload },
): Promise<string> {
  const jwt = new SignJWT(token.claims)
    .setProtectedHeader({ alg: 'ES256', kid: signer.signingKid, typ: token.typ })
    .setIssuer(signer.issuer())
    .setSubject(token.subject)
    .setAudience(token.audience)
    .setIssuedAt(token.issuedAt)
    .setExpirationTime(token.issuedAt + token.lifetimeSeconds)
    .setJti(signer.random.token(16));
  return (token.notBefore ? jwt.setNotBefore(token.issuedAt) : jwt).sign(signer.signingKey);
}
