import { decodeJwt, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { WorkloadIdentityConfig } from '../../config/schema.ts';
import { TokenEndpointError } from '../../errors/token-endpoint-error.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { HandlerStep } from '../../server/handler-steps.ts';
import type { Store } from '../../store/store.ts';
import type { ProtectedResources } from '../protected-resources.ts';
import { firstUseOfAssertion } from './assertion-replay.ts';
import { asymmetricHeaderOf, refuse, requireProofForDpopResource, verifyJwtAssertion, type AssertionGrantRequest } from './verify-assertion.ts';
import { matchWorkloadRule, type WorkloadRuleMatch } from './workload-rules.ts';

/**
 * Workload identity federation (MCP extension, SEP-1933): an autonomous MCP client presents the JWT its platform
 * gave it (a Kubernetes service-account token, a GitHub Actions OIDC token, an Entra managed-identity token) with the
 * RFC 7523 `jwt-bearer` grant and no client credentials; a configured trusted issuer and its claim rules decide which
 * client it acts as and with which scopes. The token issued is app-only, like a client-credentials token.
 * @see RFC 7523 §3 (validation)
 */
export interface WorkloadDeps {
  /** The `aud` expected when an issuer's entry names none: Gatehouse's token endpoint URL. */
  tokenEndpoint: string;
  issuers: readonly WorkloadIdentityConfig[];
  keysOf(issuer: WorkloadIdentityConfig): JWTVerifyGetKey;
  resources: ProtectedResources;
  store: Store;
  clock: Clock;
}

export interface WorkloadRequest extends AssertionGrantRequest<WorkloadDeps> {
  trusted?: WorkloadIdentityConfig;
  rule?: WorkloadRuleMatch;
}

/** The issuer entry a token names (unverified: only to pick the keys and rules to check it with). */
export function workloadIssuerOf(issuers: readonly WorkloadIdentityConfig[], assertion: string): WorkloadIdentityConfig | undefined {
  const iss = assertionIssuer(assertion);
  return iss === undefined ? undefined : issuers.find((candidate) => candidate.issuer === iss);
}

/** The `iss` an assertion claims (unverified: for choosing how to verify it), if it is a JWT that has one. */
export function assertionIssuer(assertion: string): string | undefined {
  try {
    const { iss } = decodeJwt(assertion);
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

/** Not a JWT, or unsigned or symmetric: refused before any key is fetched. */
export const checkWorkloadHeader: HandlerStep<WorkloadRequest> = (request) => {
  asymmetricHeaderOf(request.assertion);
};

export const findWorkloadIssuer: HandlerStep<WorkloadRequest> = (request) => {
  const trusted = workloadIssuerOf(request.deps.issuers, request.assertion);
  if (trusted === undefined) throw refuse('The assertion was not issued by a trusted workload identity issuer.', 'untrusted issuer');
  request.trusted = trusted;
};

/** Signature with the issuer's keys, `iss`, `aud` (the token endpoint unless configured), `exp`, `iat`, `sub`, a token id. */
export const verifyWorkloadToken: HandlerStep<WorkloadRequest> = async (request) => {
  const trusted = request.trusted as WorkloadIdentityConfig;
  const payload = await verifyJwtAssertion(request.assertion, request.deps.keysOf(trusted), request.deps.clock, {
    issuer: trusted.issuer,
    audience: trusted.audience ?? request.deps.tokenEndpoint,
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat'],
  });
  // RFC 7523 §3 item 7 asks for `jti`; Entra's tokens (managed identities) name themselves `uti` instead.
  const tokenId = typeof payload.jti === 'string' && payload.jti !== '' ? payload.jti : payload.uti;
  if (typeof payload.sub !== 'string' || typeof tokenId !== 'string' || tokenId === '') {
    throw refuse('The assertion has invalid claims.', 'no sub, or neither jti nor uti');
  }
  request.claims = { ...payload, jti: tokenId } as WorkloadRequest['claims'];
};

/** The operator's claim rules decide who this workload is; the request's client must be that one. */
export const applyWorkloadRules: HandlerStep<WorkloadRequest> = (request) => {
  const trusted = request.trusted as WorkloadIdentityConfig;
  const rule = matchWorkloadRule(trusted.rules, request.claims as JWTPayload);
  if (rule === undefined) throw refuse('No rule admits this workload.', `sub ${String(request.claims?.sub)} from ${trusted.issuer} matches no rule`);
  if (rule.clientId !== request.clientId) throw refuse('This workload does not act as this client.', `rule client ${rule.clientId} ≠ ${request.clientId}`);
  request.rule = rule;
};

/** The extension: `resource` is required and names the MCP server; it must be one of our routes. */
export const resolveWorkloadResource: HandlerStep<WorkloadRequest> = (request) => {
  if (request.requestedResource === undefined) throw new TokenEndpointError('invalid_target', 'The request must name the MCP server (`resource`).');
  const entry = request.deps.resources.find(request.requestedResource);
  if (entry === undefined) throw new TokenEndpointError('invalid_target', 'The requested resource is not a protected resource of this gateway.');
  request.resource = entry;
};

/** Requested (else all the rule allows) ∩ the rule's scopes ∩ the route's. */
export const intersectWorkloadScopes: HandlerStep<WorkloadRequest> = (request) => {
  const allowed = request.rule?.scopes ?? [];
  const offered = request.resource?.scopes ?? {};
  const scopes = [...new Set(request.requestedScopes ?? allowed)].filter((scope) => allowed.includes(scope) && Object.hasOwn(offered, scope));
  if (scopes.length === 0) throw new TokenEndpointError('invalid_scope', 'None of the requested scopes is allowed for this workload and resource.');
  request.scopes = scopes;
};

export const consumeWorkloadJti: HandlerStep<WorkloadRequest> = async (request) => {
  const claims = request.claims as NonNullable<WorkloadRequest['claims']>;
  if (!(await firstUseOfAssertion(request.deps, claims))) throw refuse('The assertion was already used.', `jti replay from ${claims.iss}`);
};

export const workloadSteps: readonly HandlerStep<WorkloadRequest>[] = [
  checkWorkloadHeader,
  findWorkloadIssuer,
  verifyWorkloadToken,
  applyWorkloadRules,
  resolveWorkloadResource,
  requireProofForDpopResource,
  intersectWorkloadScopes,
  consumeWorkloadJti,
];
