import { createLocalJWKSet, jwtVerify, type JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import type { Client } from 'oidc-provider';
import type { Logger } from 'pino';
import { z } from 'zod';
import { takeOverStructuredTokens } from './structured-token-takeover.ts';
import { isGrantRevoked } from '../grants/revoked-grants.ts';
import type { Keyring } from '../keys/keyring.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Store } from '../store/store.ts';

/**
 * RFC 7662 introspection of our JWT access tokens. oidc-provider cannot look up a structured token, so its
 * introspection endpoint answered `unsupported_token_type` for every access token Gatehouse issues — an error RFC 7662
 * does not have: §2.2 answers `{"active": false}` for a token the server will not describe. As for revocation
 * (access-token-revocation.ts), the provider has parsed the request and authenticated the client by then; we answer
 * from here:
 * - a client the operator has not named an introspection client gets `{"active": false}`, as the provider's own
 *   policy does for the tokens it can look up (RFC 7662 §4: introspection tells who a token is for);
 * - a token we signed (keyring JWKS, `typ: at+jwt`, our issuer), not expired or not yet valid, whose grant is not
 *   revoked in the store, is active, described with the claims the gateway itself checks (RFC 7662 §2.2 names);
 * - anything else (forged, foreign, expired, revoked) is `{"active": false}`.
 */
export interface AccessTokenIntrospectionOptions {
  keyring: Keyring;
  /** Our issuer (`server.publicUrl`): the `iss` every access token we sign carries. */
  issuer: string;
  store: Store;
  clock: Clock;
  logger: Logger;
  /** The provider's introspection policy: which authenticated clients may introspect. */
  mayIntrospect: (client: Client) => boolean;
}

const activeClaims = z.object({
  client_id: z.string().min(1),
  gid: z.string().min(1),
  sub: z.string().optional(),
  aud: z.union([z.string(), z.array(z.string())]),
  scope: z.string().optional(),
  exp: z.number(),
  iat: z.number(),
  nbf: z.number().optional(),
  jti: z.string().optional(),
  cnf: z.object({ jkt: z.string() }).optional(),
});

export function installAccessTokenIntrospection(provider: Provider, options: AccessTokenIntrospectionOptions): void {
  const { keyring, issuer, store, clock, logger, mayIntrospect } = options;
  takeOverStructuredTokens(
    provider,
    'introspection',
    async (_ctx, client, token) => ({ status: 200, body: JSON.stringify(mayIntrospect(client) ? await describe(token) : { active: false }) }),
    { logger, description: 'The token could not be introspected now; try again later.' },
  );

  async function describe(token: string): Promise<Record<string, unknown>> {
    const jwks = keyring.publicJwks();
    const algorithms = [...new Set(jwks.keys.map((key) => key.alg).filter((alg): alg is string => alg !== undefined))];
    let payload: JWTPayload;
    try {
      // No clock tolerance: "active" is a statement about now, and a resource server acting on it has no other check.
      ({ payload } = await jwtVerify(token, createLocalJWKSet(jwks), { algorithms, typ: 'at+jwt', issuer, currentDate: new Date(clock.now()) }));
    } catch {
      return { active: false };
    }
    const parsed = activeClaims.safeParse(payload);
    if (!parsed.success) return { active: false };
    const claims = parsed.data;
    // The store's record, not a replica's in-memory set: this answer is all the caller will check.
    if (await isGrantRevoked(store, claims.gid)) return { active: false };
    return {
      active: true,
      iss: issuer,
      client_id: claims.client_id,
      ...(claims.sub === undefined ? {} : { sub: claims.sub }),
      aud: claims.aud,
      ...(claims.scope === undefined ? {} : { scope: claims.scope }),
      exp: claims.exp,
      iat: claims.iat,
      ...(claims.nbf === undefined ? {} : { nbf: claims.nbf }),
      ...(claims.jti === undefined ? {} : { jti: claims.jti }),
      token_type: claims.cnf === undefined ? 'Bearer' : 'DPoP',
      ...(claims.cnf === undefined ? {} : { cnf: { jkt: claims.cnf.jkt } }),
    };
  }
}
