import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { JWTVerifyGetKey } from 'jose';
import type { GatehouseContext } from '../../context/gatehouse-context.ts';
import { TokenEndpointError } from '../../errors/token-endpoint-error.ts';
import { ID_JAG_GRANT_PROFILE, JWT_BEARER_GRANT } from '../../protocol/oauth-urns.ts';
import { runSteps } from '../../server/handler-steps.ts';
import { oidcSubject } from '../../upstream/identity-claims.ts';
import type { ProtectedResources } from '../protected-resources.ts';
import { idJagSteps, type IdJagRequest } from './id-jag.ts';
import { issueAssertionGrant } from './issue-assertion-grant.ts';
import { trustedIssuerKeys, type TrustedIssuer } from './trusted-issuer-keys.ts';

/**
 * The RFC 7523 `jwt-bearer` grant at `/token` (§2.1): an Identity Assertion JWT Authorization Grant from a configured
 * enterprise IdP (MCP Enterprise-Managed Authorization). Registered only when something is configured for it, so the
 * metadata advertises exactly what the token endpoint accepts.
 */
export interface JwtBearerGrantDeps {
  ctx: GatehouseContext;
  resources: ProtectedResources;
  /** The keys of a trusted issuer; by default fetched from its JWKS or discovery document. */
  keysOf?: (issuer: TrustedIssuer) => JWTVerifyGetKey;
}

/** A JWT grant request's body is a form of a few parameters; an assertion larger than this is not one we issue. */
const MAX_ASSERTION_LENGTH = 16 * 1024;

/** AS metadata this grant adds (draft-ietf-oauth-identity-assertion-authz-grant §7.2). */
export function jwtBearerGrantMetadata(authorization: GatehouseContext['config']['authorization']): Record<string, unknown> {
  return authorization.enterpriseIdps.length === 0 ? {} : { authorization_grant_profiles_supported: [ID_JAG_GRANT_PROFILE] };
}

export function installJwtBearerGrant(provider: Provider, deps: JwtBearerGrantDeps): void {
  const { ctx, resources } = deps;
  const authorization = ctx.config.authorization;
  if (authorization.enterpriseIdps.length === 0) return;
  const keysOf = deps.keysOf ?? trustedIssuerKeys();
  const issueDeps = { store: ctx.store, clock: ctx.clock, accessTokenTtlSeconds: authorization.accessTokenTtlSeconds, signingAlg: ctx.keyring.currentSigningKey().alg };

  async function handleJwtBearer(koaCtx: KoaContextWithOIDC): Promise<void> {
    const params = koaCtx.oidc.params ?? {};
    const client = koaCtx.oidc.client;
    if (client === undefined) throw new TokenEndpointError('invalid_client', 'The client must authenticate.');
    const assertion = params.assertion;
    if (typeof assertion !== 'string' || assertion === '' || assertion.length > MAX_ASSERTION_LENGTH) {
      throw new TokenEndpointError('invalid_request', '`assertion` must be given once, as a JWT.');
    }
    const request: IdJagRequest = {
      deps: { issuer: ctx.publicUrl, idps: authorization.enterpriseIdps, keysOf, resources, store: ctx.store, clock: ctx.clock },
      assertion,
      clientId: client.clientId,
      requestedScopes: typeof params.scope === 'string' ? params.scope.split(' ').filter(Boolean) : undefined,
      requestedResource: typeof params.resource === 'string' ? params.resource : undefined,
    };
    await runSteps(idJagSteps, request);
    const claims = request.claims as NonNullable<IdJagRequest['claims']>;
    await issueAssertionGrant(provider, koaCtx, issueDeps, {
      // The subject a generic OpenID Connect sign-in at the same IdP gets, so both meet on one account.
      subject: oidcSubject(claims.iss, claims.sub),
      issuer: claims.iss,
      name: typeof claims.name === 'string' ? claims.name : undefined,
      email: typeof claims.email === 'string' ? claims.email : undefined,
      client,
      resource: request.resource!,
      scopes: request.scopes!,
      grantType: JWT_BEARER_GRANT,
    });
  }

  provider.registerGrantType(JWT_BEARER_GRANT, handleJwtBearer, ['assertion', 'scope', 'resource']);
  // Why a JWT grant was refused, for the operator: the private detail, never the assertion.
  provider.on('grant.error', (koaCtx: unknown, error: unknown) => {
    const grantType = (koaCtx as KoaContextWithOIDC).oidc?.params?.grant_type;
    if (grantType !== JWT_BEARER_GRANT || !(error instanceof TokenEndpointError)) return;
    ctx.logger.info({ error: error.error, detail: error.error_detail }, 'jwt-bearer grant refused');
  });
}
