import { createLocalJWKSet, jwtVerify, type CryptoKey, type JSONWebKeySet } from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { ID_JAG_TOKEN_TYPE, ID_JAG_TYP, ID_TOKEN_TYPE } from '../../protocol/oauth-urns.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { Random } from '../../runtime/random.ts';
import { signLocalIdpJwt } from './token-signer.ts';
import type { LocalUser } from './users.ts';

/**
 * DEVELOPMENT ONLY — the local IdP as an enterprise IdP (MCP Enterprise-Managed Authorization §4): an MCP client that
 * signed a user in here exchanges the user's ID token (RFC 8693, `requested_token_type` ID-JAG) for an Identity
 * Assertion JWT Authorization Grant for a resource authorization server it names in `audience` — one of those this
 * IdP is told about (the demo's Gatehouse). Its "policy" is that the user exists and the client is the ID token's
 * audience; a real IdP evaluates its administrators' rules here.
 * @see draft-ietf-oauth-identity-assertion-authz-grant §4.3 (request), §3.1 (claims), §4.3.4 (response)
 */
export const ID_JAG_LIFETIME_SECONDS = 300;

export interface IdJagIssuerDeps {
  issuer: () => string;
  /** Resource authorization servers (issuers) ID-JAGs may be issued for. */
  audiences: string[];
  publicJwks: JSONWebKeySet;
  signingKey: CryptoKey;
  signingKid: string;
  findUser: (id: string) => LocalUser | undefined;
  clock: Clock;
  random: Random;
}

const failure = (ctx: KoaContextWithOIDC, error: string, description: string): void => {
  ctx.status = 400;
  ctx.body = { error, error_description: description };
};

export function createIdJagIssuer(deps: IdJagIssuerDeps) {
  const jwks = createLocalJWKSet(deps.publicJwks);

  return async function issueIdJag(ctx: KoaContextWithOIDC): Promise<void> {
    const params = ctx.oidc.params ?? {};
    const clientId = ctx.oidc.client?.clientId;
    if (params.subject_token_type !== ID_TOKEN_TYPE) return failure(ctx, 'invalid_request', `subject_token_type must be ${ID_TOKEN_TYPE}`);
    const audience = params.audience;
    if (typeof audience !== 'string' || !deps.audiences.includes(audience)) {
      return failure(ctx, 'invalid_target', 'audience must be a resource authorization server this IdP trusts');
    }
    let sub: string;
    try {
      const { payload } = await jwtVerify(String(params.subject_token), jwks, {
        issuer: deps.issuer(),
        audience: clientId ?? '',
        currentDate: new Date(deps.clock.now()),
        requiredClaims: ['sub'],
      });
      sub = payload.sub as string;
    } catch {
      return failure(ctx, 'invalid_grant', 'subject_token is not a valid ID token of this IdP for this client');
    }
    const user = deps.findUser(sub);
    if (user === undefined || clientId === undefined) return failure(ctx, 'invalid_grant', 'unknown user');
    const scope = typeof params.scope === 'string' && params.scope !== '' ? params.scope : undefined;
    const resource = typeof params.resource === 'string' && params.resource !== '' ? params.resource : undefined;
    const now = Math.floor(deps.clock.now() / 1000);
    const assertion = await signLocalIdpJwt(deps, {
      typ: ID_JAG_TYP,
      subject: user.id,
      audience,
      issuedAt: now,
      lifetimeSeconds: ID_JAG_LIFETIME_SECONDS,
      claims: {
        client_id: clientId,
        email: user.email,
        name: user.name,
        ...(resource === undefined ? {} : { resource }),
        ...(scope === undefined ? {} : { scope }),
      },
    });
    ctx.status = 200;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      issued_token_type: ID_JAG_TOKEN_TYPE,
      access_token: assertion,
      token_type: 'N_A',
      expires_in: ID_JAG_LIFETIME_SECONDS,
      ...(scope === undefined ? {} : { scope }),
    };
  };
}
