import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ProtectedResources } from './protected-resources.ts';
import { OIDC_SCOPES } from '../protocol/oidc-scopes.ts';
import { renderErrorPage } from '../errors/error-page.ts';
import { brandingImageOrigins } from '../server/branding-assets.ts';
import type { PageBranding } from '../web/branding.ts';
import { errorCatalogue, type ErrorCode } from '../errors/protocol-error.ts';

/**
 * An authorization request's scopes as its resource sees them, before the provider reads them.
 *
 * A scope of another route is dropped. Every route's scopes are provider-level scopes (provider-configuration.ts),
 * so the provider held the grant to it while the consent page — and so the grant — had only the resource's own:
 * after every approval the provider asked for consent again, and a remembered approval answered it for ever. Dropped,
 * it is treated as an unknown scope is (RFC 6749 §3.3 lets the server issue fewer scopes than requested); the token
 * response names what was granted.
 *
 * MCP clients that found no `scope` in the resource's challenge or metadata send none (MCP 2025-06-18 §Scope
 * Selection allows omitting it). A token without the route's required scopes would be refused by the proxy at
 * once, so an authorization request naming no scope of the target resource asks for the resource's required
 * scopes — which the consent page then shows to the user like any other request.
 */
export function installResourceScopes(provider: Provider, resources: ProtectedResources): void {
  const routeScopes = new Set(resources.all.flatMap((entry) => Object.keys(entry.scopes)));
  provider.use(async (ctx, next) => {
    if (ctx.path === '/authorize' && ctx.method === 'GET') {
      const query = ctx.query as Record<string, string | string[] | undefined>;
      // Two `resource` values (or `scope` values) are refused later, by the consent route (or the provider).
      const named = typeof query.resource === 'string' ? resources.find(query.resource) : undefined;
      const target = query.resource === undefined ? resources.defaultResource : named;
      if (target !== undefined && !Array.isArray(query.scope)) {
        const knownScope = (scope: string) => Object.hasOwn(target.scopes, scope);
        // Split on single spaces and rejoined as is: a malformed value stays malformed for the provider's syntax check.
        let scope = query.scope?.split(' ').filter((entry) => knownScope(entry) || !routeScopes.has(entry)).join(' ');
        const requested = scope?.split(' ').filter(Boolean) ?? [];
        if (!requested.some(knownScope)) scope = [...requested, ...target.route.requiredScopes].join(' ');
        if (scope !== query.scope) ctx.query = { ...query, scope };
      }
    }
    await next();
  });
}

/**
 * A provider answer of 503 (a store outage, see ProviderStoreUnavailableError) tells the client when to come back,
 * as every other 503 of the gateway does (RFC 9110 §10.2.3).
 */
export function installRetryAfter(provider: Provider): void {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.status === 503 && !ctx.res.hasHeader('retry-after')) ctx.set('retry-after', '1');
  });
}

/**
 * oidc-provider's page for errors it must not redirect (unknown client, unregistered redirect URI): our styled page.
 * The provider's descriptions are fixed texts about the request, never secrets.
 */
export async function renderProviderError(ctx: KoaContextWithOIDC, out: Record<string, unknown>, branding?: PageBranding): Promise<void> {
  const code = typeof out.error === 'string' && Object.hasOwn(errorCatalogue, out.error) ? (out.error as ErrorCode) : 'invalid_request';
  const description = typeof out.error_description === 'string' ? out.error_description : 'The request could not be processed.';
  ctx.type = 'html';
  const images = ["'self'", ...(branding === undefined ? [] : brandingImageOrigins(branding))].join(' ');
  ctx.set('content-security-policy', `default-src 'none'; style-src 'self'; img-src ${images}; frame-ancestors 'none'; base-uri 'none'`);
  ctx.set('x-frame-options', 'DENY');
  ctx.set('cache-control', 'no-store');
  const requestId = ctx.res.getHeader('x-request-id');
  ctx.body = renderErrorPage({ code, description, requestId: typeof requestId === 'string' ? requestId : undefined, branding });
}

/**
 * The metadata's `scopes_supported` without `offline_access`. Every client that may refresh gets a refresh token
 * without asking for it (token-policy.ts), and the MCP SDK's v2 client, finding it listed, adds it to every
 * authorization request together with `prompt=consent` (OIDC Core §11) — which Gatehouse honours with the consent
 * page (consent-routes.ts), so such a client was asked every time, whatever the user had approved. A client asking for
 * `offline_access` anyway is served as before (the provider still knows the scope).
 */
export function installScopesSupported(provider: Provider, resources: Pick<ProtectedResources, 'all'>): void {
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.oidc?.route === 'discovery' ? (ctx.body as { scopes_supported?: unknown } | undefined) : undefined;
    if (body === undefined || !Array.isArray(body.scopes_supported)) return;
    // The provider's list is fixed when it is built; a reload that removed a route scope (src/app/reload-config.ts)
    // would leave it advertised, a scope the authorization endpoint no longer grants. Listed: the OpenID scopes and
    // the routes' scopes as they are now.
    const routeScopes = new Set(resources.all.flatMap((resource) => Object.keys(resource.scopes)));
    body.scopes_supported = body.scopes_supported.filter(
      (scope) => scope !== 'offline_access' && (typeof scope !== 'string' || routeScopes.has(scope) || OIDC_SCOPES.has(scope)),
    );
  });
}
