import { SignJWT } from 'jose';
import { onKeyringChange, type Keyring, type SigningKey } from '../keys/keyring.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import type { AccountRecord } from './account-cache.ts';
import type { AccessTokenClaims } from './verify-access-token.ts';
import { APP_ONLY_CLAIM } from '../protocol/app-only.ts';

/**
 * The identity the gateway forwards to a backend instead of the client's token: a short-lived JWT signed with the
 * keyring (`typ: gatehouse-id+jwt`, so it can never be confused with an access token), audience = the route.
 * Backends verify it with `${publicUrl}/jwks`. Signing costs more than a cache lookup, so assertions are reused per
 * access token and route until shortly before they expire.
 */
export const IDENTITY_ASSERTION_TYP = 'gatehouse-id+jwt';

/**
 * The shortest life an assertion gets, however close the access token is to its `exp`. The bearer check tolerates
 * a few seconds of clock skew, so a token may be accepted just after its `exp`; an assertion capped at that `exp`
 * would reach the backend already expired, the backend would refuse it and the client would see 502 instead of the
 * 401 that makes it refresh. This covers the skew window plus the time the backend takes to verify the assertion.
 */
export const MIN_ASSERTION_LIFETIME_SECONDS = 15;

/**
 * How long a new signing key is published before assertions use it. A backend's JWKS client does not see a key the
 * moment it appears: `/jwks` is cached for 60 s (`max-age`), and jose's `createRemoteJWKSet` fetches again on an
 * unknown `kid` only 30 s after its last fetch. Signed with the new key at once, assertions were refused for up to
 * that long after every rotation (502 to the client). Access tokens need no lead: the gateway verifies them itself.
 */
export const ASSERTION_KEY_LEAD_MS = 60_000;

/**
 * The most group text an assertion carries: the UTF-8 bytes of the JSON `groups` array. The assertion travels in a
 * request header line (`Authorization: Bearer <jwt>`), base64url-encoded (4/3 of the bytes), beside the other claims
 * (≈ 1 KB with a long name and email); nginx's default buffer for one header line is 8 KB and Node's for all headers
 * 16 KB. A user in 300 groups got a backend's 431 on every call. Entra itself stops listing groups in a token at 200
 * ("groups overage"). Beyond this budget the assertion says `groups_overage: true` with no groups, so a backend knows
 * the list is missing rather than empty; the gateway's own policy still sees every group.
 */
export const ASSERTION_GROUPS_BUDGET_BYTES = 4 * 1024;

function groupsClaim(groups: readonly string[]): { groups: readonly string[]; groups_overage?: true } {
  // JSON.stringify escapes what must be: quotes and control characters count as what they become.
  const bytes = Buffer.byteLength(JSON.stringify(groups));
  return bytes > ASSERTION_GROUPS_BUDGET_BYTES ? { groups: [], groups_overage: true } : { groups };
}

/** The key an assertion is signed with: the current one once published long enough, else the one it replaced. */
export function assertionSigningKey(keyring: Keyring, now: number): SigningKey {
  const current = keyring.currentSigningKey();
  if (now - current.createdAt >= ASSERTION_KEY_LEAD_MS) return current;
  let previous: SigningKey | undefined;
  for (const key of keyring.signingKeys()) {
    if (key.createdAt < current.createdAt && (previous === undefined || key.createdAt > previous.createdAt)) previous = key;
  }
  return previous ?? current;
}

export interface AssertionInput {
  claims: AccessTokenClaims;
  account: AccountRecord | undefined;
  audience: string;
  ttlSeconds: number;
}

/** A signed assertion, and the same as the backend's `Authorization` value. */
export interface SignedAssertion {
  readonly jwt: string;
  /**
   * `Bearer <jwt>`, built once per assertion: per request it would be a new string of ≈ 500 bytes, which undici keeps
   * with the request — an open stream's whole life.
   */
  readonly authorization: string;
}

export interface IdentityAssertionSigner {
  assertionFor(input: AssertionInput): Promise<SignedAssertion>;
  /** Stops following the keyring's changes. */
  close(): void;
}

export function createIdentityAssertionSigner(options: {
  keyring: Keyring;
  issuer: string;
  clock: Clock;
  random: Random;
  maxEntries?: number;
}): IdentityAssertionSigner {
  const { keyring, issuer, clock, random, maxEntries = 10_000 } = options;
  // By access token (`jti`), then audience: a token's grant and scopes never change, so a stepped-up token (a new
  // jti) never reuses the narrower assertion; and the lookup uses the strings the verified claims already hold,
  // building no key per request.
  const cache = new Map<string, Map<string, CachedAssertion>>();
  // A key that left the set (a prune, a removal after a compromise) must not keep signing what backends receive: they
  // would refuse those assertions once their JWKS no longer has it. Every assertion is signed again after a change.
  let keyGeneration = 0;
  const stopFollowingKeys = onKeyringChange(keyring, () => {
    keyGeneration += 1;
    cache.clear();
  });

  /** The assertion still good for this token and audience, if one was signed. */
  function cached({ claims, audience }: AssertionInput): CachedAssertion | undefined {
    const hit = cache.get(claims.jti)?.get(audience);
    return hit && hit.renewAt > clock.now() ? hit : undefined;
  }

  async function sign({ claims, account, audience, ttlSeconds }: AssertionInput): Promise<CachedAssertion> {
    const now = clock.now();
    const iat = Math.floor(now / 1000);
    // Normally the assertion ends with the access token it stands for; near (or just past, within the bearer
    // check's skew) that token's exp it still lives MIN_ASSERTION_LIFETIME_SECONDS, so it is never sent already
    // expired. The route's TTL bounds both.
    const lifetime = Math.min(ttlSeconds, Math.max(claims.exp - iat, MIN_ASSERTION_LIFETIME_SECONDS));
    const exp = iat + lifetime;
    const key = assertionSigningKey(keyring, now);
    const generation = keyGeneration;
    const jwt = await new SignJWT({
      name: account?.name,
      email: account?.email,
      tid: account?.tenantId,
      ...groupsClaim(account?.groups ?? []),
      scope: claims.scopes.join(' '),
      client_id: claims.clientId,
      gid: claims.grantId,
      ...(claims.appOnly === true ? { [APP_ONLY_CLAIM]: true } : {}),
    })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: IDENTITY_ASSERTION_TYP })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(claims.sub)
      .setJti(random.token(16))
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(key.privateKey);

    let byAudience = cache.get(claims.jti);
    if (byAudience === undefined) {
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
      cache.set(claims.jti, (byAudience = new Map()));
    }
    // Renew once three quarters of the lifetime are gone, so a backend never receives an almost-expired assertion.
    const signed = { jwt, authorization: `Bearer ${jwt}`, renewAt: now + ((exp - iat) * 1000 * 3) / 4 };
    // Signed with a key chosen before a change: used for this request, not kept for the next ones.
    if (generation === keyGeneration) byAudience.set(audience, signed);
    return signed;
  }

  // A cached assertion is answered without an await: this is on every proxied request.
  return {
    async assertionFor(input) {
      return cached(input) ?? (await sign(input));
    },
    close: stopFollowingKeys,
  };
}

interface CachedAssertion extends SignedAssertion {
  readonly renewAt: number;
}
