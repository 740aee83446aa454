import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ProtectedResources } from './protected-resources.ts';
import { renderErrorPage } from '../errors/error-page.ts';
import { brandingImageOrigins } from '../server/branding-assets.ts';
import type { PageBranding } from '../web/branding.ts';
import { errorCatalogue, type ErrorCode } from '../errors/protocol-error.ts';

/**
 * MCP clients that found no `scope` in the resource's challenge or metadata send none (MCP 2025-06-18 §Scope
 * Selection allows omitting it). A token without the route's required scopes would be refused by the proxy at
 * once, so an authorization request naming no scope of the target resource asks for the resource's required
 * scopes — which the consent page then shows to the user like any other request.
 */
export function installDefaultScopes(provider: Provider, resources: ProtectedResources): void {
  provider.use(async (ctx, next) => {
    if (ctx.path === '/authorize' && ctx.method === 'GET') {
      const query = ctx.query as Record<string, string | string[] | undefined>;
      const resourceParam = typeof query.resource === 'string' ? query.resource : undefined;
      const target = resourceParam === undefined ? resources.defaultResource : resources.find(resourceParam);
      const requested = typeof query.scope === 'string' ? query.scope.split(' ').filter(Boolean) : [];
      const knownScope = (scope: string) => target !== undefined && Object.hasOwn(target.scopes, scope);
      if (target !== undefined && !requested.some(knownScope) && !Array.isArray(query.scope)) {
        ctx.query = { ...query, scope: [...requested, ...target.route.requiredScopes].join(' ') };
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
