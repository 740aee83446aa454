import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type Provider from 'oidc-provider';
import type { Client, KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import { z } from 'zod';
import { takeOverStructuredTokens } from './structured-token-takeover.ts';
import type { Keyring } from '../keys/keyring.ts';

/**
 * RFC 7009 revocation of our JWT access tokens. oidc-provider cannot look up a structured token, so its revocation
 * endpoint answers `unsupported_token_type` for one — after it has parsed the request and authenticated the client
 * exactly as for any other token. MCP clients "sign out" by revoking what they hold, which is often only the access
 * token, so we finish the job there: a token we signed (keyring JWKS, `typ: at+jwt`, our issuer; expired is fine)
 * issued to the authenticated client ends its whole grant, as revoking its refresh token would. Everything else —
 * a forged or foreign JWT, another client's token — gets the 200 RFC 7009 §2.2 prescribes for invalid tokens, and
 * nothing happens.
 *
 * Revoking the grant goes through the provider's models, so the adapter hooks (adapter-hooks.ts) do the rest: the
 * grant's refresh tokens and codes are deleted, and `AccessToken.revokeByGrantId` / `Grant.destroy` write the
 * `revoked-grant` record every proxy replica checks.
 *
 * @see RFC 7009 §2.1 — the server first validates the client credentials, then invalidates the token; revoking an
 *      access token MAY revoke the refresh tokens of the same grant.
 * @see RFC 7009 §2.2 — 200 also for invalid tokens: the client cannot do anything about them.
 */
export interface AccessTokenRevocationOptions {
  keyring: Keyring;
  /** Our issuer (`server.publicUrl`): the `iss` every access token we sign carries. */
  issuer: string;
  logger: Logger;
}

/** The claims revocation needs; the rest of the RFC 9068 shape is the proxy's concern. */
const revocableClaims = z.object({ client_id: z.string().min(1), gid: z.string().min(1) });
type RevocableClaims = z.infer<typeof revocableClaims>;

export function installAccessTokenRevocation(provider: Provider, options: AccessTokenRevocationOptions): void {
  const { keyring, issuer, logger } = options;
  takeOverStructuredTokens(
    provider,
    'revocation',
    async (ctx, client, token) => {
      const claims = await verifyOwnAccessToken(token, keyring, issuer);
      if (claims !== undefined && claims.client_id === client.clientId) await revokeGrantOfToken(provider, ctx, client, claims.gid);
      return { status: 200, body: '' };
    },
    // RFC 7009 §2.2.1: the revocation could not happen now; the client may retry.
    { logger, description: 'The token could not be revoked now; try again later.' },
  );
}

/**
 * The token's claims when we issued it, `undefined` for anything else. Signature against the keyring's public keys
 * (algorithms pinned to the keyring's, which defeats `alg: none` and key-confusion forgeries), `typ` and `iss` are
 * checked; expiry is not: signing out with a token that just expired must still end the grant.
 */
export async function verifyOwnAccessToken(token: string, keyring: Keyring, issuer: string): Promise<RevocableClaims | undefined> {
  const jwks = keyring.publicJwks();
  const algorithms = [...new Set(jwks.keys.map((key) => key.alg).filter((alg): alg is string => alg !== undefined))];
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, createLocalJWKSet(jwks), { algorithms, typ: 'at+jwt', issuer }));
  } catch (error) {
    // jose checks `exp` last, after the signature, `typ` and `iss`, and hands over the verified claims.
    if (!(error instanceof joseErrors.JWTExpired) || error.claim !== 'exp') return undefined;
    payload = error.payload;
  }
  const claims = revocableClaims.safeParse(payload);
  return claims.success ? claims.data : undefined;
}

interface TokenModel {
  revokeByGrantId(grantId: string): Promise<void>;
}

/**
 * What oidc-provider does when a refresh token is revoked: the grant and everything it issued end. The access-token
 * model's `revokeByGrantId` is `endGrant` (adapter-hooks.ts), which ends the whole grant, its record included.
 */
async function revokeGrantOfToken(provider: Provider, ctx: KoaContextWithOIDC, client: Client, grantId: string): Promise<void> {
  const grant = await provider.Grant.find(grantId);
  // Defence in depth: the signed `client_id` already names the client; the stored grant must agree.
  if (grant !== undefined && grant.clientId !== client.clientId) return;
  // The token models are untyped in oidc-provider.d.ts (other parts cast them to their own shapes).
  await (provider.AccessToken as TokenModel).revokeByGrantId(grantId);
  if (grant === undefined) return;
  // The same event a refresh-token revocation emits (counted as a client revocation in provider-metrics.ts).
  provider.emit('grant.revoked', ctx, grantId);
}
