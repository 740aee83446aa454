import { createLocalJWKSet, jwtVerify, type CryptoKey, type JSONWebKeySet, type JWTPayload } from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Clock } from '../../runtime/clock.ts';
import type { Random } from '../../runtime/random.ts';
import { signLocalIdpJwt } from './token-signer.ts';
import { entraError, type EntraErrorBody } from './entra-errors.ts';
import { hasMfa, mfaClaimsChallenge } from './step-up.ts';
import { LOCAL_TENANT_ID, type LocalUser } from './users.ts';
import { JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT, ACCESS_TOKEN_TYPE } from '../../protocol/oauth-urns.ts';
export { JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT, ACCESS_TOKEN_TYPE };

/**
 * DEVELOPMENT ONLY — the two grants the token broker performs against Entra or another IdP, answered the way Entra
 * answers them: on-behalf-of (`jwt-bearer` + `requested_token_use=on_behalf_of`, audience inside the scopes) and RFC
 * 8693 token exchange (`subject_token`, `audience`). Both take a user's access token for the gateway's own API and
 * return a token for a downstream API (the demo directory API) carrying the same user.
 */
/** Delegated permissions the directory API understands (Graph's names); `.default` means all of them. */
export const DOWNSTREAM_SCOPES = ['User.Read'];
const DOWNSTREAM_TOKEN_TTL_SECONDS = 3600;

export interface DownstreamGrantDeps {
  issuer: () => string;
  gatewayClientId: string;
  /** `aud` of the tokens the gateway gets at sign-in (what an OBO assertion must carry). */
  gatewayAudience: string;
  downstreamAudiences: string[];
  findUser: (id: string) => LocalUser | undefined;
  publicJwks: JSONWebKeySet;
  signingKey: CryptoKey;
  signingKid: string;
  clock: Clock;
  random: Random;
}

interface Exchange {
  subjectToken: unknown;
  audience: string | undefined;
  scopes: string[];
}

class GrantFailure extends Error {
  readonly status: number;
  readonly body: EntraErrorBody | { error: string; error_description: string };
  constructor(status: number, body: GrantFailure['body']) {
    super(body.error);
    this.status = status;
    this.body = body;
  }
}

const splitScopes = (value: unknown): string[] => (typeof value === 'string' ? value.split(' ').filter(Boolean) : []);
const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);

/** Entra style: every scope is `{audience}/{name}`, all for one audience. */
function audienceFromScopes(scopes: string[], audiences: string[]): Exchange['audience'] {
  const named = scopes.filter((scope) => !OIDC_SCOPES.has(scope));
  const audience = audiences.find((candidate) => named.length > 0 && named.every((scope) => scope.startsWith(`${candidate}/`)));
  return audience;
}

export function createDownstreamGrants(deps: DownstreamGrantDeps) {
  const jwks = createLocalJWKSet(deps.publicJwks);
  const now = () => deps.clock.now();

  async function verifySubjectToken(token: unknown): Promise<JWTPayload> {
    if (typeof token !== 'string') throw new GrantFailure(400, entraError('invalid_grant', 50013, { now: now() }));
    try {
      const { payload } = await jwtVerify(token, jwks, {
        issuer: deps.issuer(),
        audience: deps.gatewayAudience,
        currentDate: new Date(now()),
      });
      return payload;
    } catch {
      throw new GrantFailure(400, entraError('invalid_grant', 50013, { now: now() }));
    }
  }

  async function exchange(ctx: KoaContextWithOIDC, request: Exchange, rfc8693: boolean): Promise<void> {
    try {
      if (ctx.oidc.client?.clientId !== deps.gatewayClientId) {
        throw new GrantFailure(400, { error: 'unauthorized_client', error_description: 'only the gateway may exchange tokens' });
      }
      const claims = await verifySubjectToken(request.subjectToken);
      const user = typeof claims.sub === 'string' ? deps.findUser(claims.sub) : undefined;
      if (!user) throw new GrantFailure(400, entraError('invalid_grant', 50013, { now: now() }));
      if (user.requireInteraction) {
        // A Conditional Access / MFA demand: Entra adds a claims challenge the client must replay interactively.
        const challenge = JSON.stringify({ access_token: { capolids: { essential: true, values: ['local-mfa-policy'] } } });
        throw new GrantFailure(400, entraError('interaction_required', 50076, { suberror: 'basic_action', claims: challenge, now: now() }));
      }
      if (user.requireMfa && !hasMfa(claims.amr)) {
        // Entra's on-behalf-of answer when a Conditional Access policy on the downstream API wants MFA the user's token
        // does not show: 400 `interaction_required`, AADSTS50076, and the policy to satisfy as a `claims` challenge.
        throw new GrantFailure(400, entraError('interaction_required', 50076, { suberror: 'basic_action', claims: mfaClaimsChallenge(), now: now() }));
      }
      if (user.requireConsent) throw new GrantFailure(400, entraError('invalid_grant', 65001, { suberror: 'consent_required', now: now() }));
      const audience = request.audience;
      if (!audience || !deps.downstreamAudiences.includes(audience)) {
        throw new GrantFailure(400, rfc8693
          ? { error: 'invalid_target', error_description: 'the requested audience is not a known resource' }
          : entraError('invalid_resource', 500011, { now: now() }));
      }
      const names = request.scopes
        .filter((scope) => !OIDC_SCOPES.has(scope))
        .map((scope) => (scope.startsWith(`${audience}/`) ? scope.slice(audience.length + 1) : scope))
        .flatMap((name) => (name === '.default' ? DOWNSTREAM_SCOPES : [name]));
      if (names.length === 0 || names.some((name) => !DOWNSTREAM_SCOPES.includes(name))) {
        throw new GrantFailure(400, rfc8693
          ? { error: 'invalid_scope', error_description: 'unknown scope for this audience' }
          : entraError('invalid_scope', 28003, { now: now() }));
      }
      const scp = [...new Set(names)].join(' ');
      const issuedAt = Math.floor(now() / 1000);
      const accessToken = await signLocalIdpJwt(deps, {
        typ: 'JWT',
        subject: user.id,
        audience,
        issuedAt,
        notBefore: true,
        lifetimeSeconds: DOWNSTREAM_TOKEN_TTL_SECONDS,
        claims: {
          oid: user.id,
          tid: LOCAL_TENANT_ID,
          name: user.name,
          email: user.email,
          preferred_username: user.email,
          scp,
          azp: deps.gatewayClientId,
          appid: deps.gatewayClientId,
          ver: '2.0',
        },
      });
      ctx.status = 200;
      ctx.body = {
        token_type: 'Bearer',
        access_token: accessToken,
        expires_in: DOWNSTREAM_TOKEN_TTL_SECONDS,
        ext_expires_in: DOWNSTREAM_TOKEN_TTL_SECONDS,
        scope: scp
          .split(' ')
          .map((name) => `${audience}/${name}`)
          .join(' '),
        ...(rfc8693 ? { issued_token_type: ACCESS_TOKEN_TYPE } : {}),
      };
    } catch (error) {
      if (!(error instanceof GrantFailure)) throw error;
      ctx.status = error.status;
      ctx.body = error.body;
    }
  }

  return {
    /** @see Microsoft identity platform on-behalf-of flow (first case: shared secret → here, any client auth). */
    async onBehalfOf(ctx: KoaContextWithOIDC): Promise<void> {
      const params = ctx.oidc.params ?? {};
      if (params.requested_token_use !== 'on_behalf_of') {
        ctx.status = 400;
        ctx.body = { error: 'invalid_request', error_description: 'requested_token_use must be on_behalf_of' };
        return;
      }
      const scopes = splitScopes(params.scope);
      await exchange(ctx, { subjectToken: params.assertion, audience: audienceFromScopes(scopes, deps.downstreamAudiences), scopes }, false);
    },

    /** @see RFC 8693 §2.1 */
    async tokenExchange(ctx: KoaContextWithOIDC): Promise<void> {
      const params = ctx.oidc.params ?? {};
      if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
        ctx.status = 400;
        ctx.body = { error: 'invalid_request', error_description: `subject_token_type must be ${ACCESS_TOKEN_TYPE}` };
        return;
      }
      const scopes = splitScopes(params.scope);
      const audience =
        (typeof params.audience === 'string' ? params.audience : undefined) ??
        (typeof params.resource === 'string' ? params.resource : undefined) ??
        audienceFromScopes(scopes, deps.downstreamAudiences);
      await exchange(ctx, { subjectToken: params.subject_token, audience, scopes }, true);
    },
  };
}
