import type { KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { APP_ONLY_CLAIM, appOnlyGrantId } from '../../protocol/app-only.ts';

/**
 * The OAuth client credentials grant for agents without a browser (MCP client-credentials extension, OAuth 2.1 §4.2).
 * oidc-provider implements the grant (`features.clientCredentials`); these are the Gatehouse rules around it.
 */
export const CLIENT_CREDENTIALS_GRANT = 'client_credentials';

/**
 * The resource an app-only request names nothing for: none. Interactive clients before MCP 2025-06-18 omit `resource`
 * and get the only MCP route; an agent with standing credentials must say which server it wants, or it would get a
 * token for whatever route happens to be the only one today (RFC 8707 §2, MCP Resource Parameter Implementation).
 */
export function requireNamedResource(ctx: KoaContextWithOIDC): void {
  if (ctx.oidc.params?.grant_type === CLIENT_CREDENTIALS_GRANT) {
    throw new errors.InvalidTarget('the client credentials grant needs `resource`: the URL of the MCP server the token is for');
  }
}

interface IssuedToken {
  kind?: string;
  jti?: string;
}

/** The claims that make a client-credentials access token app-only (see ../../protocol/app-only.ts). */
export function appOnlyClaims(token: IssuedToken): Record<string, unknown> | undefined {
  if (token.kind !== 'ClientCredentials' || token.jti === undefined) return undefined;
  return { gid: appOnlyGrantId(token.jti), [APP_ONLY_CLAIM]: true };
}
