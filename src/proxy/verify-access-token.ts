import { importJWK, jwtVerify, errors as joseErrors, type JWTPayload, type CryptoKey } from 'jose';
import { onKeyringChange, type Keyring } from '../keys/keyring.ts';
import type { Clock } from '../runtime/clock.ts';
import type { RevokedGrantsCache } from '../grants/revoked-grants.ts';
import { insufficientScope, unauthorized, type AuthScheme, type ChallengeTarget } from '../errors/bearer-challenge.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { APP_ONLY_CLAIM } from '../protocol/app-only.ts';
import type { VerifyDpopProof } from './dpop-proof.ts';
import { checkSenderConstraint } from './sender-constraint.ts';
import { namesAccessToken } from './token-parameter.ts';

/**
 * Bearer check for protected routes. Runs on every proxied request, so it is local: signature against the keyring's
 * public keys, claims, and revocation from the in-memory RevokedGrantsCache; the store is never touched.
 *
 * @see RFC 9068 — JWT profile for OAuth access tokens (`typ: at+jwt`, `aud`, `client_id`, `scope`).
 * @see RFC 6750 §2.1 — Authorization header only; §2.3 query tokens are refused (they end up in logs and Referer).
 * @see RFC 8707 — `aud` must be exactly this route, so a token minted for another route is useless here.
 * @see RFC 9449 §7 — a DPoP-bound token (`cnf.jkt`) comes as `Authorization: DPoP` with a proof of its key
 *   (sender-constraint.ts); that proof's replay check is the one store call on this path.
 */
export interface AccessTokenClaims {
  sub: string;
  clientId: string;
  scopes: string[];
  grantId: string;
  jti: string;
  /** Epoch seconds. */
  exp: number;
  /** RFC 9449 §6.1 `cnf.jkt`: the thumbprint of the key the token is bound to. */
  jkt?: string;
  /** No user behind the token (client credentials, a workload): `sub` is the client (../protocol/app-only.ts). */
  appOnly?: boolean;
  /** The `kid` of the key that signed it: a stream the token opened ends when that key leaves the set (a revocation). */
  kid?: string;
}

/** What a successful check yields: the claims, and a fresh DPoP nonce to hand the client when its own is aging. */
export type VerifiedAccess = AccessTokenClaims & { dpopNonce?: string };

export interface VerifyTarget extends ChallengeTarget {
  /** The route's resource identifier: the expected `aud`. */
  resource: string;
  requiredScopes: readonly string[];
  /** The route's `dpop` policy. */
  dpop: 'optional' | 'required';
  /** The route's `dpopNonce`: proofs must carry a nonce the gateway issued (RFC 9449 §9). */
  dpopNonce: boolean;
}

export interface AccessTokenVerifierOptions {
  keyring: Keyring;
  issuer: string;
  clock: Clock;
  revokedGrants: RevokedGrantsCache;
  verifyDpopProof: VerifyDpopProof;
  /** Tolerated clock difference with the signer, seconds. */
  clockSkewSeconds?: number;
  /**
   * Verified tokens remembered, least recently used evicted first (signature work skipped on repeat); exp, the
   * audience (the route) and revocation are still checked on every request, so revocation stays immediate.
   * When the keyring's keys change (a rotation, a prune, a key removed after a compromise) the whole cache is
   * dropped, so a token signed with a key that left the set is refused at its next request: one forged with a
   * leaked key could otherwise have stayed accepted until the `exp` its forger chose.
   */
  cacheSize?: number;
}

export interface VerifyInput {
  authorization: string | string[] | undefined;
  /** The raw query string (after `?`), to refuse tokens smuggled in the URL. */
  rawQuery: string;
  /** The `DPoP` proof header. */
  dpop?: string | string[] | undefined;
  method: string;
  /** The URL called, on the public URL, without the query: what a DPoP proof's `htu` must be. */
  url: string;
  /**
   * Given the user and client of a token whose signature verified, before its other checks (expiry, revocation, its
   * proof, its scopes): a revoked grant's token still in use is refused naming whose it is, in the audit record.
   */
  caller?: { user?: string | undefined; client?: string | undefined };
}

/** RFC 6750 §2.1 / RFC 9449 §7.1: `Bearer` or `DPoP` (any case), one or more spaces, a token68. */
const CREDENTIAL = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*)$/i;

export type VerifyAccessToken = (input: VerifyInput, target: VerifyTarget) => Promise<VerifiedAccess>;

/** The verifier, and how to stop it following the keyring's changes. */
export type AccessTokenVerifier = VerifyAccessToken & { close(): void };

/**
 * Clock difference tolerated on `exp`/`nbf`. Gateway replicas and the authorization server sign and verify with
 * NTP-synchronised clocks (usually the same process), so a few seconds suffice. It must stay small: a token accepted
 * after its `exp` is answered with a 401 only once the window has passed, and until then the backend must be given
 * an assertion that is still valid (see identity-assertion.ts), so a long window only delays the client's refresh.
 */
export const ACCESS_TOKEN_CLOCK_SKEW_SECONDS = 5;

export function createAccessTokenVerifier(options: AccessTokenVerifierOptions): AccessTokenVerifier {
  const { keyring, issuer, clock, revokedGrants, verifyDpopProof, clockSkewSeconds = ACCESS_TOKEN_CLOCK_SKEW_SECONDS, cacheSize = 10_000 } = options;
  const keys = new Map<string, CryptoKey | Uint8Array>();
  // Keyed by the whole Authorization header: a header seen before was checked against CREDENTIAL then, so a hit
  // skips that pattern over a token of a few hundred characters as well as the signature.
  const verified = new Map<string, VerifiedEntry>();
  // Counts insertions into `verified`, for its approximate LRU order (see cachedClaims).
  let insertions = 0;
  // Rotations are rare: everything is verified once more after one, against the keys that are left.
  // A verification that was under way during the change is not remembered (`keyGeneration` moved on).
  let keyGeneration = 0;
  const stopFollowingKeys = onKeyringChange(keyring, () => {
    keyGeneration += 1;
    keys.clear();
    verified.clear();
  });

  async function keyFor(kid: string | undefined): Promise<CryptoKey | Uint8Array> {
    // A key id names one key for its whole life (rotation adds new ids), so imported keys are cached by id; a kid
    // that left the keyring no longer verifies.
    const jwk = keyring.publicJwks().keys.find((k) => k.kid === kid);
    if (!jwk || !kid) throw new joseErrors.JWKSNoMatchingKey();
    const cached = keys.get(kid);
    if (cached) return cached;
    const key = await importJWK(jwk, jwk.alg);
    keys.set(kid, key);
    return key;
  }

  /** The entry of a header whose token was already verified for this audience, without a promise (the common case). */
  function cached(header: string, target: VerifyTarget): VerifiedEntry | undefined {
    const hit = verified.get(header);
    if (!hit || hit.aud !== target.resource) return undefined;
    // Least recently used goes first (eviction takes the Map's oldest entry). Re-inserting moves a token in use to
    // the end of that order; it is done once at least half the cache's size was inserted since the token's last
    // move, not on every request, so a token in steady use costs no Map delete and insert per request and still
    // never reaches the front.
    if (insertions - hit.insertion >= cacheSize / 2) {
      verified.delete(header);
      remember(header, hit);
    }
    return hit;
  }

  function remember(header: string, entry: VerifiedEntry): void {
    // Bounded: a flood of distinct (even valid) tokens cannot grow memory, it only evicts the least recently used.
    if (verified.size >= cacheSize) verified.delete(verified.keys().next().value as string);
    entry.insertion = ++insertions;
    verified.set(header, entry);
  }

  async function verifySignature(token: string, target: VerifyTarget): Promise<AccessTokenClaims> {
    // Pinning the algorithms to the keyring's own is what defeats `alg: none` and HS256-with-the-public-key forgeries.
    const algorithms = [...new Set(keyring.publicJwks().keys.map((k) => k.alg).filter((a): a is string => !!a))];
    const { payload, protectedHeader } = await jwtVerify(token, (header) => keyFor(header.kid), {
      algorithms,
      typ: 'at+jwt',
      issuer,
      audience: target.resource,
      clockTolerance: clockSkewSeconds,
      currentDate: new Date(clock.now()),
      requiredClaims: ['sub', 'exp', 'iat', 'jti', 'client_id', 'gid'],
    });
    const claims = toClaims(payload);
    // Always set: keyFor found the key by it.
    if (protectedHeader.kid !== undefined) claims.kid = protectedHeader.kid;
    return claims;
  }

  const verifyAccessToken: VerifyAccessToken = async (input, target) => {
    if (namesAccessToken(input.rawQuery)) {
      throw unauthorized(target, true, 'Access tokens are accepted only in the Authorization header.');
    }
    const header = input.authorization;
    if (header === undefined || header === '') throw unauthorized(target, false);
    let entry = typeof header === 'string' ? cached(header, target) : undefined;
    if (entry === undefined) {
      const match = typeof header === 'string' ? CREDENTIAL.exec(header) : null;
      if (!match?.[1] || !match[2]) throw unauthorized(target, true, 'The Authorization header must be `Bearer <token>` or `DPoP <token>`.');
      const token = match[2];
      const scheme: AuthScheme = match[1].toLowerCase() === 'dpop' ? 'dpop' : 'bearer';
      let claims: AccessTokenClaims;
      const generation = keyGeneration;
      try {
        claims = await verifySignature(token, target);
      } catch (error) {
        // Expired: jose checked the signature (and the issuer, audience and type) before the expiry, so the claims are
        // the token's own — named in the audit record as a cached token's are (below).
        if (error instanceof joseErrors.JWTExpired) nameCaller(input.caller, error.payload['sub'], error.payload['client_id']);
        throw unauthorized(target, true, describeFailure(error), scheme);
      }
      entry = { claims, aud: target.resource, token, scheme, insertion: 0 };
      // Only the canonical spelling is remembered (`Bearer <token>`, `DPoP <token>`): the pattern accepts any case
      // and any run of spaces, and one token under thousands of spellings would fill the cache and evict every
      // other caller's. Another spelling is verified in full each time.
      if (header === `${scheme === 'dpop' ? 'DPoP' : 'Bearer'} ${token}` && generation === keyGeneration) remember(header, entry);
    }
    const { claims, token, scheme } = entry;
    nameCaller(input.caller, claims.sub, claims.clientId);
    // Expiry is re-checked for cached tokens; the cache never extends a token's life.
    if (claims.exp + clockSkewSeconds <= clock.now() / 1000) {
      verified.delete(header as string);
      throw unauthorized(target, true, 'The access token has expired.', scheme);
    }
    if (revokedGrants.isRevoked(claims.grantId)) throw unauthorized(target, true, 'The access token has been revoked.', scheme);
    // A list this replica could not re-read for too long may miss a revocation: refuse to vouch (revoked-grants.ts).
    if (!revokedGrants.isCurrent()) throw revocationsUnknown();
    // Before the scope check: a thief holding a bound token without its key learns nothing about its scopes.
    const constraint = checkSenderConstraint(verifyDpopProof, { scheme, token }, claims, input, target);
    const { nextNonce } = constraint instanceof Promise ? await constraint : constraint;
    if (!hasScopes(claims.scopes, target.requiredScopes)) {
      const granted = claims.scopes;
      const missing = target.requiredScopes.filter((scope) => !granted.includes(scope));
      throw insufficientScope(target, `The access token lacks the scope(s): ${missing.join(' ')}.`, scheme);
    }
    return nextNonce === undefined ? claims : { ...claims, dpopNonce: nextNonce };
  };
  return Object.assign(verifyAccessToken, { close: stopFollowingKeys });
}

/** A verified token, remembered under the Authorization header that carried it. */
interface VerifiedEntry {
  claims: AccessTokenClaims;
  /** The audience it was verified for (the route's resource). */
  aud: string;
  token: string;
  scheme: AuthScheme;
  /** `insertions` when it was last put at the end of the cache's order. */
  insertion: number;
}

function hasScopes(granted: readonly string[], required: readonly string[]): boolean {
  for (const scope of required) if (!granted.includes(scope)) return false;
  return true;
}

function toClaims(payload: JWTPayload): AccessTokenClaims {
  const { sub, client_id: clientId, gid, jti, exp, scope } = payload;
  const jkt = boundKeyThumbprint(payload.cnf);
  if (typeof sub !== 'string' || typeof clientId !== 'string' || typeof gid !== 'string' || typeof jti !== 'string') {
    throw new joseErrors.JWTClaimValidationFailed('claims have the wrong type', payload);
  }
  if (scope !== undefined && typeof scope !== 'string') {
    throw new joseErrors.JWTClaimValidationFailed('scope must be a string', payload, 'scope');
  }
  const appOnly = payload[APP_ONLY_CLAIM] === true;
  // RFC 9068 §2.2: an app-only token's subject is the client itself; anything else is not a token we issued.
  if (appOnly && sub !== clientId) throw new joseErrors.JWTClaimValidationFailed('app-only token for another subject', payload, 'sub');
  const claims: AccessTokenClaims = { sub, clientId, grantId: gid, jti, exp: exp ?? 0, scopes: scope ? scope.split(' ').filter(Boolean) : [], appOnly };
  if (jkt !== undefined) claims.jkt = jkt;
  return claims;
}

/**
 * RFC 7800 `cnf`: `jkt` (RFC 9449 §6.1) is the one confirmation method this gateway can check. A token bound any
 * other way (RFC 8705 `x5t#S256`, a mutual-TLS certificate) is refused however it is presented: accepting it would
 * turn a stolen sender-constrained token into a usable one.
 */
function boundKeyThumbprint(cnf: unknown): string | undefined {
  if (cnf === undefined) return undefined;
  if (typeof cnf === 'object' && cnf !== null && Object.keys(cnf).length === 1 && 'jkt' in cnf && typeof cnf.jkt === 'string' && cnf.jkt !== '') {
    return cnf.jkt;
  }
  throw new SenderConstrainedTokenError();
}

class SenderConstrainedTokenError extends Error {
  constructor() {
    super('token bound by an unsupported confirmation method');
    this.name = 'SenderConstrainedTokenError';
  }
}

/** Names a verified token's user and client to the caller that asked (VerifyInput.caller), when they are strings. */
function nameCaller(caller: VerifyInput['caller'], user: unknown, client: unknown): void {
  if (caller === undefined || typeof user !== 'string' || typeof client !== 'string') return;
  caller.user = user;
  caller.client = client;
}

/** Says what was wrong without echoing token content. */
function describeFailure(error: unknown): string {
  if (error instanceof SenderConstrainedTokenError) return 'The access token is bound by a confirmation method (cnf) this gateway cannot check.';
  if (error instanceof joseErrors.JWTExpired) return 'The access token has expired.';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return 'The access token was issued for another resource.';
    if (error.claim === 'iss') return 'The access token was issued by another authorization server.';
    return 'The access token has invalid claims.';
  }
  return 'The access token is malformed or its signature does not verify.';
}

/** The revoked grants could not be re-read for too long (the store unreachable): retry once it is back. */
export function revocationsUnknown(): ProtocolError {
  return new ProtocolError('temporarily_unavailable', 'Revocations cannot be checked right now; retry later.', { headers: { 'retry-after': '5' } });
}
