import { routeScopesNamed } from '../../protocol/oidc-scopes.ts';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { APP_ONLY_CLAIM, appOnlyGrantId } from '../../protocol/app-only.ts';
import { appOnlyTokenRecord } from '../../records/authorization.ts';
import { providerFacing } from '../../store/oidc-adapter.ts';
import { writeRecord } from '../../store/record-access.ts';
import type { Store } from '../../store/store.ts';
import type { ProtectedResource } from '../protected-resources.ts';

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

/**
 * The scopes of a client-credentials request, against the MCP server it names. oidc-provider drops scopes it does not
 * know, and with none asked issues a token with none: either way a token every call then refused, and the agent's
 * developer learned nothing from /token. Now a scope the server does not offer is RFC 6749 §5.2 `invalid_scope` (the
 * description lists what it offers), and a request naming none gets the server's required scopes, as an interactive
 * authorization without a scope does (provider-middleware.ts, installResourceScopes). Other grants are untouched.
 *
 * Runs from `getResourceServerInfo`, which the grant calls before it reads `scope`: the default is written into the
 * request's parameters there.
 */

export function clientCredentialsScopeProblem(ctx: KoaContextWithOIDC, resource: ProtectedResource): string | undefined {
  const params = ctx.oidc?.params;
  if (params?.grant_type !== CLIENT_CREDENTIALS_GRANT) return undefined;
  // Two servers named: the answer is that a token is for one (RFC 8707 `invalid_target`, as the provider says once it
  // gets there), not that the first server's default scopes are unknown to the second (`invalid_scope`).
  if (Array.isArray(params.resource) && params.resource.length > 1) throw new errors.InvalidTarget('only a single resource indicator value is supported');
  // OpenID Connect's own scopes are ignored: `openid offline_access` alone names no scope, and gets the default too.
  const named = routeScopesNamed(params.scope);
  const unknown = named.filter((scope) => !Object.hasOwn(resource.scopes, scope));
  if (unknown.length > 0) return `${unknown.join(' ')}: not a scope of this MCP server (it offers ${Object.keys(resource.scopes).join(' ') || 'none'})`;
  if (named.length === 0 && resource.route.requiredScopes.length > 0) params.scope = resource.route.requiredScopes.join(' ');
  return undefined;
}

interface IssuedToken {
  kind?: string;
  jti?: string;
}

/** The claims that make a client-credentials access token app-only (see ../../protocol/app-only.ts). */
export function appOnlyClaims(token: IssuedToken): { gid: string; [APP_ONLY_CLAIM]: true } | undefined {
  if (token.kind !== 'ClientCredentials' || token.jti === undefined) return undefined;
  return { gid: appOnlyGrantId(token.jti), [APP_ONLY_CLAIM]: true };
}

/** Records an app-only token under its client, with the MCP server it is for: awaited before the token is handed out. */
export type IndexAppOnlyToken = (grantId: string, clientId: string, resource: string | undefined) => Promise<void>;

/**
 * An app-only token has no grant record, so revoking its client (src/admin/clients.ts), which ends the client's
 * grants, found none of them: they stayed valid for their whole life while the console and the CLI said every token
 * of the client was refused. Each is recorded under its client as it is minted, for as long as it lives; a token
 * that could not be recorded is not handed out (a store outage: 503, the client retries).
 */
export function appOnlyTokenIndex(store: Store, ttlSeconds: number): IndexAppOnlyToken {
  return (grantId, clientId, resource) =>
    providerFacing(writeRecord(store, appOnlyTokenRecord, grantId, { clientId, ...(resource === undefined ? {} : { resource }) }, { ttlSeconds, indexes: { client: clientId } }));
}
