/**
 * The OpenID Connect scopes Gatehouse's authorization server offers besides the routes' own: `openid` and
 * `offline_access` (a refresh token), `profile` and `email` (claims of the ID token). They name no MCP server, so
 * the consent page, the client-credentials rules and the provider's scope list read them from this one list.
 * @see OpenID Connect Core 1.0 §5.4, §11
 */
export const OIDC_SCOPES: ReadonlySet<string> = new Set(['openid', 'offline_access', 'profile', 'email']);
