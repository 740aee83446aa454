import type Provider from 'oidc-provider';
import type { Client, KoaContextWithOIDC } from 'oidc-provider';
import type { JWTVerifyGetKey } from 'jose';
import { ConfigError } from '../../config/config-error.ts';
import type { GatehouseContext } from '../../context/gatehouse-context.ts';
import { TokenEndpointError } from '../../errors/token-endpoint-error.ts';
import { ID_JAG_GRANT_PROFILE, JWT_BEARER_GRANT } from '../../protocol/oauth-urns.ts';
import { routeScopesNamed } from '../../protocol/oidc-scopes.ts';
import { runSteps } from '../../server/handler-steps.ts';
import { providerFacing } from '../../store/oidc-adapter.ts';
import { StoreUnavailableError } from '../../store/store.ts';
import { boundedEmail, boundedName, oidcSubject } from '../../upstream/identity-claims.ts';
import type { ProtectedResources } from '../protected-resources.ts';
import { idJagSteps, isIdJag, type IdJagRequest } from './id-jag.ts';
import { noteIssuance } from './issuance-audit.ts';
import { issueAppOnlyToken, issueAssertionGrant } from './issue-assertion-grant.ts';
import { requestDpopProof, type DpopProof } from './dpop-binding.ts';
import { installWorkloadClientNaming } from './workload-client.ts';
import { assertionIssuer, workloadIssuerOf, workloadSteps, type WorkloadRequest } from './workload-identity.ts';
import { trustedIssuerKeys, type TrustedIssuer } from './trusted-issuer-keys.ts';
import { forgetAssertionUse } from './assertion-replay.ts';

/**
 * The RFC 7523 `jwt-bearer` grant at `/token` (§2.1), for two kinds of assertion: an Identity Assertion JWT
 * Authorization Grant from a configured enterprise IdP (MCP Enterprise-Managed Authorization; `typ`
 * `oauth-id-jag+jwt`), giving a user's token; and a workload token from a configured trusted issuer (MCP workload
 * identity federation), giving an app-only token. Registered only when either is configured, so the metadata
 * advertises exactly what the token endpoint accepts.
 */
export interface JwtBearerGrantDeps {
  ctx: GatehouseContext;
  resources: ProtectedResources;
  /** The keys of a trusted issuer; by default fetched from its JWKS or discovery document. */
  keysOf?: (issuer: TrustedIssuer) => JWTVerifyGetKey;
}

/** A JWT grant request's body is a form of a few parameters; an assertion larger than this is not one we accept. */
const MAX_ASSERTION_LENGTH = 16 * 1024;

/** AS metadata this grant adds (draft-ietf-oauth-identity-assertion-authz-grant §7.2). */
export function jwtBearerGrantMetadata(authorization: AuthorizationConfig): Record<string, unknown> {
  return authorization.enterpriseIdps.length === 0 ? {} : { authorization_grant_profiles_supported: [ID_JAG_GRANT_PROFILE] };
}

type AuthorizationConfig = GatehouseContext['config']['authorization'];

/** What is wrong with a client a trusted issuer's entry names, or undefined: configured, allowed the grant, of the right kind. */
function grantClientProblem(authorization: AuthorizationConfig, clientId: string, where: string, kind: 'public' | 'confidential'): string | undefined {
  const client = authorization.clients.find((candidate) => candidate.clientId === clientId);
  if (client === undefined) return `${where}: client "${clientId}" is not in authorization.clients`;
  if (!client.grantTypes.includes(JWT_BEARER_GRANT)) return `${where}: client "${clientId}" needs grantTypes [${JWT_BEARER_GRANT}]`;
  const confidential = client.clientSecret !== undefined || client.jwks !== undefined;
  if (kind === 'public' && confidential) return `${where}: client "${clientId}" must have no clientSecret or jwks: the workload token is its credential`;
  if (kind === 'confidential' && !confidential) return `${where}: client "${clientId}" needs a clientSecret or jwks: a public client's ID-JAG would be a bearer credential`;
  return undefined;
}

/** Each workload rule names a pre-registered public client allowed the grant: checked at start, not on a request. */
export function workloadClientProblems(authorization: AuthorizationConfig): string[] {
  return authorization.workloadIdentities.flatMap((trusted, index) =>
    trusted.rules.flatMap((rule) => grantClientProblem(authorization, rule.clientId, `authorization.workloadIdentities[${index}] (${trusted.issuer})`, 'public') ?? []),
  );
}

/**
 * Each enterprise IdP names pre-registered confidential clients allowed the grant. The ID-JAG draft is for confidential
 * clients only (its security considerations): an ID-JAG presented by a public client is a bearer credential for whoever copies it.
 */
export function enterpriseClientProblems(authorization: AuthorizationConfig): string[] {
  return authorization.enterpriseIdps.flatMap((idp, index) =>
    idp.clients.flatMap((clientId) => grantClientProblem(authorization, clientId, `authorization.enterpriseIdps[${index}] (${idp.issuer})`, 'confidential') ?? []),
  );
}

export function installJwtBearerGrant(provider: Provider, deps: JwtBearerGrantDeps): void {
  const { ctx, resources } = deps;
  const authorization = ctx.config.authorization;
  if (authorization.enterpriseIdps.length === 0 && authorization.workloadIdentities.length === 0) return;
  const problems = [...workloadClientProblems(authorization), ...enterpriseClientProblems(authorization)];
  if (problems.length > 0) throw new ConfigError(problems);
  const keysOf = deps.keysOf ?? trustedIssuerKeys({ clock: ctx.clock });
  const issueDeps = { store: ctx.store, clock: ctx.clock, accessTokenTtlSeconds: authorization.accessTokenTtlSeconds, signingAlg: ctx.keyring.currentSigningKey().alg };
  const shared = { resources, store: ctx.store, clock: ctx.clock, keysOf };

  async function grantIdJag(koaCtx: KoaContextWithOIDC, client: Client, request: Omit<IdJagRequest, 'deps'>, dpop: DpopProof | undefined): Promise<void> {
    const full: IdJagRequest = { ...request, deps: { ...shared, issuer: ctx.publicUrl, idps: authorization.enterpriseIdps } };
    try {
      await runSteps(idJagSteps, full);
    } finally {
      // For the audit record (issuance-audit.ts): whom the IdP vouched for, once its signature held, and for which server.
      noteIssuance(koaCtx, {
        kind: 'id-jag',
        ...(full.claims === undefined ? {} : { user: oidcSubject(full.claims.iss, full.claims.sub) }),
        ...(full.resource === undefined ? {} : { resource: full.resource.resource }),
      });
    }
    const claims = full.claims as NonNullable<IdJagRequest['claims']>;
    await releasedOnOutage(claims, issueAssertionGrant(provider, koaCtx, issueDeps, {
      // The subject a generic OpenID Connect sign-in at the same IdP gets, so both meet on one account.
      subject: oidcSubject(claims.iss, claims.sub),
      issuer: claims.iss,
      // Held to the bounds of a sign-in's (identity-claims.ts): shown on pages, carried in every identity assertion.
      name: typeof claims.name === 'string' && claims.name !== '' ? boundedName(claims.name) : undefined,
      email: typeof claims.email === 'string' && claims.email.includes('@') ? boundedEmail(claims.email) : undefined,
      client,
      resource: full.resource!,
      scopes: full.scopes!,
      grantType: JWT_BEARER_GRANT,
      dpop,
    }));
  }

  async function grantWorkload(koaCtx: KoaContextWithOIDC, client: Client, request: Omit<WorkloadRequest, 'deps'>, dpop: DpopProof | undefined): Promise<void> {
    const full: WorkloadRequest = { ...request, deps: { ...shared, tokenEndpoint: `${ctx.publicUrl}/token`, issuers: authorization.workloadIdentities } };
    try {
      await runSteps(workloadSteps, full);
    } finally {
      noteIssuance(koaCtx, { kind: 'workload', ...(full.resource === undefined ? {} : { resource: full.resource.resource }) });
    }
    // Who the workload is, for the audit trail (the token names only the client it acts as); never the token.
    ctx.logger.info({ client: client.clientId, issuer: full.claims?.iss, workload: boundedName(String(full.claims?.sub)) }, 'workload token accepted');
    await releasedOnOutage(full.claims!, issueAppOnlyToken(provider, koaCtx, issueDeps, { client, resource: full.resource!, scopes: full.scopes!, dpop }));
  }

  /** The assertion's use is forgotten when the store fails while its token is issued (assertion-replay.ts). */
  async function releasedOnOutage(assertion: { iss: string; jti: string }, issuing: Promise<void>): Promise<void> {
    try {
      await issuing;
    } catch (error) {
      if (error instanceof StoreUnavailableError) await forgetAssertionUse(shared, assertion);
      throw error;
    }
  }

  async function handleJwtBearer(koaCtx: KoaContextWithOIDC): Promise<void> {
    const params = koaCtx.oidc.params ?? {};
    const client = koaCtx.oidc.client;
    if (client === undefined) throw new TokenEndpointError('invalid_client', 'The client must authenticate.');
    const assertion = params.assertion;
    if (typeof assertion !== 'string' || assertion === '' || assertion.length > MAX_ASSERTION_LENGTH) {
      throw new TokenEndpointError('invalid_request', '`assertion` must be given once, as a JWT.');
    }
    // The proof first, as oidc-provider's own grants check it: a bad one is refused before the assertion is used up.
    const dpop = await requestDpopProof(provider, koaCtx);
    // OpenID Connect's scopes alone name none: they get the default (the assertion's, the rule's), not invalid_scope.
    const named = routeScopesNamed(params.scope);
    const request = {
      assertion,
      clientId: client.clientId,
      requestedScopes: named.length === 0 ? undefined : named,
      requestedResource: typeof params.resource === 'string' ? params.resource : undefined,
      proofSent: dpop !== undefined,
    };
    // An ID-JAG says what it is (`typ`, draft §3.1); anything else can only be a workload token, if any issuer is trusted.
    // One from a configured enterprise IdP and no workload issuer is an ID-JAG with its `typ` wrong: refused in the
    // ID-JAG's words (which name the `typ`), not as a workload token from an untrusted issuer.
    const fromEnterpriseIdp = () =>
      workloadIssuerOf(authorization.workloadIdentities, assertion) === undefined &&
      authorization.enterpriseIdps.some((idp) => idp.issuer === assertionIssuer(assertion));
    if (isIdJag(assertion) || authorization.workloadIdentities.length === 0 || fromEnterpriseIdp()) await grantIdJag(koaCtx, client, request, dpop);
    else await grantWorkload(koaCtx, client, request, dpop);
  }

  if (authorization.workloadIdentities.length > 0) installWorkloadClientNaming(provider, authorization.workloadIdentities);
  // A store outage anywhere in the grant (the replay record, the account, the grant and its token) is the provider's
  // `503 temporarily_unavailable` with Retry-After, as at every other grant; unwrapped it was a 500 `server_error`.
  provider.registerGrantType(JWT_BEARER_GRANT, (koaCtx) => providerFacing(handleJwtBearer(koaCtx)), ['assertion', 'scope', 'resource']);
  // Why a JWT grant was refused, for the operator: the private detail, never the assertion.
  provider.on('grant.error', (koaCtx: unknown, error: unknown) => {
    const grantType = (koaCtx as KoaContextWithOIDC).oidc?.params?.grant_type;
    if (grantType !== JWT_BEARER_GRANT || !(error instanceof TokenEndpointError)) return;
    ctx.logger.info({ error: error.error, detail: error.error_detail }, 'jwt-bearer grant refused');
  });
}
