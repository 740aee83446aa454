import { createHash } from 'node:crypto';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { GraphError, type GraphClient } from './graph-client.ts';

/**
 * Who is calling, established on every request from the `Authorization` header the gateway set.
 *  - `broker` mode: a gateway identity assertion, verified locally against the gateway's JWKS: signature, issuer,
 *    audience (this server's resource URL), `typ: gatehouse-id+jwt` (so a gateway access token or ID token is
 *    refused) and expiry.
 *  - `obo` mode: a Graph token the gateway obtained for the user. A Graph token cannot be verified by anyone but
 *    Graph, so Graph itself is asked (`/v1.0/me`); the answer is cached per token hash for a minute.
 */
export const IDENTITY_ASSERTION_TYP = 'gatehouse-id+jwt';

export interface CallerIdentity {
  subject: string;
  name?: string;
  email?: string;
  tenantId?: string;
  groups: string[];
  scopes: string[];
  clientId?: string;
  /** The forwarded credential (assertion or Graph token). Used only to obtain or call Graph; never logged or returned. */
  credential: string;
}

export class CallerRejectedError extends Error {
  /** 401, or 503 when the verifier's dependency (JWKS, Graph) could not be reached. */
  readonly status: number;
  constructor(message: string, status = 401) {
    super(message);
    this.name = 'CallerRejectedError';
    this.status = status;
  }
}

export interface CallerVerifier {
  verify(authorization: string | undefined): Promise<CallerIdentity>;
}

function bearer(authorization: string | undefined): string {
  const match = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorization ?? '');
  if (!match?.[1]) throw new CallerRejectedError('A bearer credential from the gateway is required.');
  return match[1];
}

const stringClaim = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/**
 * `audience` lists this server's resource URLs at the gateway: one per route that forwards to it (e.g. the MCP route
 * `/mcp` and the plain HTTP route `/graph`). An assertion minted for any other route is refused.
 */
export function createAssertionVerifier(options: { gatewayIssuer: string; audience: string | string[]; jwksUrl: string; jwks?: JWTVerifyGetKey }): CallerVerifier {
  const jwks = options.jwks ?? createRemoteJWKSet(new URL(options.jwksUrl));
  return {
    async verify(authorization) {
      const token = bearer(authorization);
      try {
        const { payload } = await jwtVerify(token, jwks, {
          issuer: options.gatewayIssuer,
          audience: options.audience,
          typ: IDENTITY_ASSERTION_TYP,
          requiredClaims: ['sub', 'exp', 'iat'],
          algorithms: ['ES256', 'EdDSA'],
        });
        return {
          subject: payload.sub as string,
          name: stringClaim(payload.name),
          email: stringClaim(payload.email),
          tenantId: stringClaim(payload.tid),
          groups: Array.isArray(payload.groups) ? payload.groups.filter((g): g is string => typeof g === 'string') : [],
          scopes: (stringClaim(payload.scope) ?? '').split(' ').filter(Boolean),
          clientId: stringClaim(payload.client_id),
          credential: token,
        };
      } catch (error) {
        if (error instanceof joseErrors.JWTExpired) throw new CallerRejectedError('The identity assertion has expired.');
        if (error instanceof joseErrors.JWKSTimeout || !(error instanceof joseErrors.JOSEError)) {
          // The gateway's JWKS was unreachable: not the caller's fault, and not a reason to let it in.
          throw new CallerRejectedError('The identity assertion could not be verified right now.', 503);
        }
        throw new CallerRejectedError('The identity assertion is not valid for this server.');
      }
    },
  };
}

export function createGraphTokenVerifier(options: { graph: GraphClient; now?: () => number }): CallerVerifier {
  const now = options.now ?? Date.now;
  const cache = new Map<string, { caller: Omit<CallerIdentity, 'credential'>; until: number }>();
  return {
    async verify(authorization) {
      const token = bearer(authorization);
      const key = createHash('sha256').update(token).digest('base64url');
      const hit = cache.get(key);
      if (hit && hit.until > now()) return { ...hit.caller, credential: token };
      let profile;
      try {
        profile = await options.graph.getMe(token);
      } catch (error) {
        const status = error instanceof GraphError && error.status !== 401 && error.status !== 403 ? 503 : 401;
        throw new CallerRejectedError(status === 401 ? 'The forwarded Microsoft Graph token was not accepted.' : error instanceof Error ? error.message : 'Graph unavailable', status);
      }
      const caller = {
        subject: stringClaim(profile.id) ?? 'unknown',
        name: stringClaim(profile.displayName),
        email: stringClaim(profile.mail) ?? stringClaim(profile.userPrincipalName),
        groups: [],
        scopes: [],
      };
      if (cache.size > 1_000) cache.clear();
      cache.set(key, { caller, until: now() + 60_000 });
      return { ...caller, credential: token };
    },
  };
}
