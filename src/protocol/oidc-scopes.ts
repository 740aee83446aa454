/**
 * The OpenID Connect scopes Gatehouse's authorization server offers besides the routes' own: `openid` and
 * `offline_access` (a refresh token), `profile` and `email` (claims of the ID token). They name no MCP server, so
 * the consent page, the app-only and jwt-bearer grants' scope rules and the provider's scope list read them from here.
 * @see OpenID Connect Core 1.0 §5.4, §11
 */
export const OIDC_SCOPES: ReadonlySet<string> = new Set(['openid', 'offline_access', 'profile', 'email']);

/**
 * The scopes a token request names of an MCP server: its `scope` less OpenID Connect's, which generic OAuth libraries
 * send by habit (`openid offline_access`) and which mean nothing for a route's token. A request left with none names
 * none, and gets what a request without `scope` gets.
 */
export function routeScopesNamed(scope: unknown): string[] {
  return typeof scope === 'string' ? scope.split(' ').filter((entry) => entry !== '' && !OIDC_SCOPES.has(entry)) : [];
}
