import type { Client, KoaContextWithOIDC } from 'oidc-provider';
import type { GatehouseConfig } from '../config/schema.ts';
import { appOnlyClaims, type IndexAppOnlyToken } from './grants/client-credentials.ts';

/**
 * Token lifetimes and refresh-token behaviour, as oidc-provider configuration functions.
 *
 * Refresh tokens are issued to every client allowed the `refresh_token` grant, whether or not it asked for
 * `offline_access`: MCP clients rarely request it (the MCP spec does not mention it), yet without a refresh token
 * the user would be sent through consent and sign-in again every 10 minutes. The risk is bounded instead by rotation
 * with reuse detection, an idle limit and an absolute limit, and by revocation (user, admin, upstream).
 *
 * @see RFC 9700 §4.14 (refresh token protection), OAuth 2.1 §4.3.1 (rotation for public clients)
 */
type AuthorizationConfig = GatehouseConfig['authorization'];

interface RefreshTokenLike {
  /** Epoch seconds when the first token of this chain was issued (the sign-in). */
  iiat?: number;
  isSenderConstrained?(): boolean;
}

export function tokenLifetimes(config: AuthorizationConfig, nowSeconds: () => number) {
  return {
    AccessToken: () => config.accessTokenTtlSeconds,
    AuthorizationCode: () => config.authorizationCodeTtlSeconds,
    ClientCredentials: () => config.accessTokenTtlSeconds,
    IdToken: () => config.accessTokenTtlSeconds,
    // Interactions cover consent + upstream sign-in; the consent state itself is limited to 10 minutes separately.
    Interaction: () => 30 * 60,
    Session: () => config.refreshTokenAbsoluteSeconds,
    Grant: () => config.refreshTokenAbsoluteSeconds,
    /** Idle limit per token (each rotation restarts it), never beyond the absolute limit of the whole chain. */
    RefreshToken: (_ctx: KoaContextWithOIDC, token: RefreshTokenLike) => {
      const issuedAt = token.iiat ?? nowSeconds();
      const remainingAbsolute = issuedAt + config.refreshTokenAbsoluteSeconds - nowSeconds();
      return Math.max(1, Math.min(config.refreshTokenIdleSeconds, remainingAbsolute));
    },
  };
}

/** Every client that may refresh gets a refresh token (see above for why `offline_access` is not required). */
export function issueRefreshToken(_ctx: KoaContextWithOIDC, client: Client): boolean {
  return client.grantTypeAllowed('refresh_token');
}

/**
 * Rotate on every use, for every client: a stolen refresh token then works at most once before the legitimate
 * client's next refresh exposes the reuse and revokes the grant. (oidc-provider's default keeps long-lived tokens
 * for confidential clients; we have no reason to treat them differently.)
 */
export function rotateRefreshToken(): boolean {
  return true;
}

/**
 * The shared access-token contract: `gid` lets the proxy check grant revocation without a store lookup; a
 * client-credentials token has no grant and is marked app-only instead, and recorded under its client so that
 * revoking the client ends it (grants/client-credentials.ts).
 */
export function extraTokenClaims(indexAppOnlyToken: IndexAppOnlyToken) {
  return async (
    _ctx: KoaContextWithOIDC,
    token: { grantId?: string; kind?: string; jti?: string; clientId?: string; resourceServer?: { identifier?: () => string } },
  ): Promise<Record<string, unknown> | undefined> => {
    if (token.grantId !== undefined) return { gid: token.grantId };
    const claims = appOnlyClaims(token);
    if (claims !== undefined && token.clientId !== undefined) await indexAppOnlyToken(claims.gid, token.clientId, token.resourceServer?.identifier?.());
    return claims;
  };
}
