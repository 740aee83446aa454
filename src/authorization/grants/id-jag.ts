import { decodeJwt, decodeProtectedHeader, type JWTVerifyGetKey } from 'jose';
import type { EnterpriseIdpConfig } from '../../config/schema.ts';
import { TokenEndpointError } from '../../errors/token-endpoint-error.ts';
import { ID_JAG_TYP } from '../../protocol/oauth-urns.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { HandlerStep } from '../../server/handler-steps.ts';
import type { Store } from '../../store/store.ts';
import { userIdProblem } from '../../upstream/identity-claims.ts';
import type { ProtectedResources } from '../protected-resources.ts';
import { firstUseOfAssertion } from './assertion-replay.ts';
import { asymmetricHeaderOf, refuse, requireProofForDpopResource, verifyJwtAssertion, type AssertionGrantRequest } from './verify-assertion.ts';

/**
 * Validation of an Identity Assertion JWT Authorization Grant presented at `/token` with the RFC 7523 `jwt-bearer`
 * grant (MCP Enterprise-Managed Authorization §5.1, draft-ietf-oauth-identity-assertion-authz-grant §4.4.1). Every
 * refusal is `invalid_grant` (or `invalid_scope` / `invalid_target` where RFC 6749 and RFC 8707 say so), with a
 * public description that never quotes the assertion; what went wrong in detail is the private `error_detail`.
 */

export interface IdJagDeps {
  /** Gatehouse's issuer: the `aud` every ID-JAG for us must carry. */
  issuer: string;
  idps: readonly EnterpriseIdpConfig[];
  keysOf(idp: EnterpriseIdpConfig): JWTVerifyGetKey;
  resources: ProtectedResources;
  store: Store;
  clock: Clock;
}

export interface IdJagRequest extends AssertionGrantRequest<IdJagDeps> {
  idp?: EnterpriseIdpConfig;
}

/** An ID-JAG says what it is in its header (`typ`, draft §3.1); anything else is some other JWT. */
export function isIdJag(assertion: string): boolean {
  try {
    return hasIdJagTyp(decodeProtectedHeader(assertion).typ);
  } catch {
    return false;
  }
}

/**
 * `typ` names a media type, compared without case and with `application/` optional (RFC 7515 §4.1.9), as the
 * signature check (jose) compares it: `application/oauth-id-jag+jwt` is an ID-JAG too.
 */
function hasIdJagTyp(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const lower = typ.toLowerCase();
  return (lower.startsWith('application/') ? lower.slice('application/'.length) : lower) === ID_JAG_TYP;
}


/** §3.1: the header says what this JWT is; anything unsigned or symmetric is refused before any key is fetched. */
export const checkAssertionHeader: HandlerStep<IdJagRequest> = (request) => {
  const header = asymmetricHeaderOf(request.assertion);
  if (!hasIdJagTyp(header.typ)) throw refuse(`The assertion is not an ID-JAG (typ ${ID_JAG_TYP}).`, `typ ${String(header.typ)}`);
};

/** Only the issuers the operator configured are trusted; the unverified `iss` only picks which keys to check with. */
export const findEnterpriseIdp: HandlerStep<IdJagRequest> = (request) => {
  let iss: unknown;
  try {
    iss = decodeJwt(request.assertion).iss;
  } catch {
    throw refuse('The assertion is not a JWT.', 'undecodable payload');
  }
  const idp = request.deps.idps.find((candidate) => candidate.issuer === iss);
  if (idp === undefined) throw refuse('The assertion was not issued by a trusted enterprise identity provider.', `issuer ${String(iss)}`);
  request.idp = idp;
};

/** Signature with the IdP's keys, `iss`, `aud` = our issuer, `exp`, `iat` (not in the future), required claims. */
export const verifyAssertionSignature: HandlerStep<IdJagRequest> = async (request) => {
  const idp = request.idp as EnterpriseIdpConfig;
  const payload = await verifyJwtAssertion(request.assertion, request.deps.keysOf(idp), request.deps.clock, {
    issuer: idp.issuer,
    audience: request.deps.issuer,
    typ: ID_JAG_TYP,
    requiredClaims: ['iss', 'sub', 'aud', 'client_id', 'jti', 'exp', 'iat'],
  });
  if (typeof payload.sub !== 'string' || payload.sub === '' || typeof payload.jti !== 'string' || payload.jti === '') {
    throw refuse('The assertion has invalid claims.', 'sub or jti not a non-empty string');
  }
  // The user id a sign-in at the IdP would be held to: it becomes the subject of the token, the account and grant
  // records and every audit record (a 9,000-character `sub` made a 12 KB token and unreadable audit listings).
  const problem = userIdProblem(payload.sub);
  if (problem !== undefined) throw refuse('The assertion has invalid claims.', `sub ${problem}`);
  request.claims = payload as IdJagRequest['claims'];
};

/** §4.4.1: the assertion was issued to this very client, and the operator lets this IdP speak for it. */
export const checkAssertionClient: HandlerStep<IdJagRequest> = (request) => {
  const claimed = request.claims?.client_id;
  if (claimed !== request.clientId) throw refuse('The assertion was issued to another client.', `client_id ${String(claimed)} ≠ ${request.clientId}`);
  if (!request.idp?.clients.includes(request.clientId)) {
    throw refuse('This client may not use assertions from this identity provider.', `client ${request.clientId} not in the IdP's clients`);
  }
};

/** MCP profile §5.1: the token is for the MCP server the assertion names, which must be one of our routes. */
export const resolveAssertionResource: HandlerStep<IdJagRequest> = (request) => {
  const { resources } = request.deps;
  const claimed = request.claims?.resource;
  if (claimed !== undefined && typeof claimed !== 'string') throw refuse('The assertion must name one resource.', 'resource not a string');
  const named = claimed ?? request.requestedResource;
  if (named === undefined) throw new TokenEndpointError('invalid_target', 'Neither the assertion nor the request names the MCP server (`resource`).');
  const entry = resources.find(named);
  if (entry === undefined) {
    if (claimed === undefined) throw new TokenEndpointError('invalid_target', 'The requested resource is not a protected resource of this gateway.');
    throw refuse('The assertion is for a resource that is not a protected resource of this gateway.', `resource ${named}`);
  }
  if (request.requestedResource !== undefined && resources.find(request.requestedResource) !== entry) {
    throw new TokenEndpointError('invalid_target', 'The requested resource is not the one the assertion was issued for.');
  }
  request.resource = entry;
};

/**
 * MCP profile §7.2.1: the token carries the intersection of the requested scopes (all of the assertion's when none
 * are requested) and the assertion's, within the IdP's cap and the route's scopes. A request for more than the
 * assertion grants never widens it.
 */
export const intersectScopes: HandlerStep<IdJagRequest> = (request) => {
  const granted = typeof request.claims?.scope === 'string' ? request.claims.scope.split(' ').filter(Boolean) : [];
  const requested = request.requestedScopes ?? granted;
  const cap = request.idp?.scopes;
  const offered = request.resource?.scopes ?? {};
  const scopes = [...new Set(requested)].filter(
    (scope) => granted.includes(scope) && (cap === undefined || cap.includes(scope)) && Object.hasOwn(offered, scope),
  );
  if (scopes.length === 0) throw new TokenEndpointError('invalid_scope', 'None of the requested scopes is granted by the assertion for this resource.');
  request.scopes = scopes;
};

/** RFC 7523 §3 item 7: one use per `jti`, on every replica; checked last, so a forged assertion cannot burn one. */
export const consumeAssertionJti: HandlerStep<IdJagRequest> = async (request) => {
  const claims = request.claims as NonNullable<IdJagRequest['claims']>;
  const first = await firstUseOfAssertion(request.deps, { iss: claims.iss, jti: claims.jti, exp: claims.exp });
  if (!first) throw refuse('The assertion was already used.', `jti replay from ${claims.iss}`);
};

export const idJagSteps: readonly HandlerStep<IdJagRequest>[] = [
  checkAssertionHeader,
  findEnterpriseIdp,
  verifyAssertionSignature,
  checkAssertionClient,
  resolveAssertionResource,
  requireProofForDpopResource,
  intersectScopes,
  consumeAssertionJti,
];
