import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type ProtectedHeaderParameters } from 'jose';
import { TokenEndpointError } from '../../errors/token-endpoint-error.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { StepContext } from '../../server/handler-steps.ts';
import type { ProtectedResource } from '../protected-resources.ts';
import { isKeySetUnavailable } from '../../upstream/id-token.ts';
import { ASSERTION_CLOCK_SKEW_SECONDS, assertionTimeProblem } from './assertion-replay.ts';

/**
 * The verification every JWT grant shares (RFC 7523 §3): an asymmetric signature with the issuer's keys, the
 * expected `iss`, `aud` (and `typ`), `exp` (at most a day ahead) and an `iat` not in the future, within the clock skew, on the injected
 * clock. Failures are `invalid_grant` with a public description that never quotes the assertion; the issuer's keys
 * out of reach is `503 temporarily_unavailable`, not the client's fault.
 */
/** What every JWT grant's steps share: the token request as received, and what the steps establish in turn. */
export interface AssertionGrantRequest<Deps> extends StepContext {
  deps: Deps;
  assertion: string;
  /** The client oidc-provider authenticated at the token endpoint. */
  clientId: string;
  /** The scopes the token request names (`scope` less OpenID Connect's), if any: undefined when it names none. */
  requestedScopes: string[] | undefined;
  /** `resource` of the token request, if any. */
  requestedResource: string | undefined;
  /** Whether the request carried a DPoP proof (checked before the grant's steps run). */
  proofSent: boolean;
  claims?: JWTPayload & { iss: string; sub: string; jti: string; exp: number };
  resource?: ProtectedResource;
  scopes?: string[];
}

/**
 * A route that takes only DPoP-bound tokens (`dpop: required`) gets no Bearer token, which every use of would be
 * refused (RFC 9449 §5): refused once the resource is known, before the assertion's `jti` is spent.
 */
export function requireProofForDpopResource<Deps>(request: AssertionGrantRequest<Deps>): void {
  if (request.proofSent || request.resource?.route.dpop !== 'required') return;
  throw new TokenEndpointError('invalid_request', `${request.resource.resource} accepts only DPoP-bound access tokens (RFC 9449): send the token request with a DPoP proof.`);
}

/** Asymmetric JWS algorithms only: an HMAC key would be a secret shared with the IdP, `none` no signature at all. */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/**
 * The assertion's protected header, read before any key is fetched: not a JWT, or unsigned or symmetric (an HMAC
 * key would be a secret shared with the issuer, `none` no signature), is refused right there.
 */
export function asymmetricHeaderOf(assertion: string): ProtectedHeaderParameters {
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(assertion);
  } catch {
    throw refuse('The assertion is not a JWT.', 'undecodable header');
  }
  if (typeof header.alg !== 'string' || !ASYMMETRIC_ALGORITHMS.includes(header.alg)) {
    throw refuse('The assertion must be signed with an asymmetric algorithm.', `alg ${String(header.alg)}`);
  }
  return header;
}

export const refuse = (description: string, detail: string): TokenEndpointError => new TokenEndpointError('invalid_grant', description, { detail });

export async function verifyJwtAssertion(
  assertion: string,
  keys: JWTVerifyGetKey,
  clock: Clock,
  expected: { issuer: string; audience: string; typ?: string; requiredClaims: string[] },
): Promise<JWTPayload> {
  try {
    const { payload } = await jwtVerify(assertion, keys, {
      issuer: expected.issuer,
      audience: expected.audience,
      ...(expected.typ === undefined ? {} : { typ: expected.typ }),
      algorithms: ASYMMETRIC_ALGORITHMS,
      requiredClaims: expected.requiredClaims,
      clockTolerance: ASSERTION_CLOCK_SKEW_SECONDS,
      currentDate: new Date(clock.now()),
    });
    const problem = assertionTimeProblem(payload, clock.now() / 1000);
    if (problem === 'iat') throw refuse('The assertion was issued in the future.', 'iat in the future');
    if (problem === 'exp') throw refuse('The assertion expires too far ahead (lifetime over a day).', 'exp too far ahead');
    return payload;
  } catch (error) {
    if (error instanceof TokenEndpointError) throw error;
    throw describeVerificationFailure(error);
  }
}

/** A jose verification failure as the client may see it (never the assertion), with the detail for the log. */
export function describeVerificationFailure(error: unknown): TokenEndpointError {
  if (error instanceof joseErrors.JWTExpired) return refuse('The assertion has expired.', 'exp');
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return refuse('The assertion is not for this authorization server (aud).', 'aud');
    return refuse('The assertion has invalid claims.', `claim ${error.claim}: ${error.reason}`);
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return refuse('The assertion must be signed with an asymmetric algorithm.', 'alg');
  // Not the client's fault: the IdP's keys (or its discovery document) could not be fetched or read.
  if (isKeySetUnavailable(error)) {
    return new TokenEndpointError('temporarily_unavailable', "The identity provider's keys could not be read; try again later.", {
      status: 503,
      detail: error instanceof joseErrors.JOSEError ? error.code : String(error instanceof Error ? error.message : error),
    });
  }
  return refuse('The assertion signature does not verify.', error instanceof joseErrors.JOSEError ? error.code : 'signature');
}
