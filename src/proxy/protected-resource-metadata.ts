import type { RouteConfig } from '../config/schema.ts';
import { DPOP_SIGNING_ALGS } from '../protocol/dpop.ts';

/**
 * Protected Resource Metadata documents, one per route.
 *
 * @see RFC 9728 §3 — served at the well-known URL with the resource's path inserted after it
 *   (`/.well-known/oauth-protected-resource/mcp` for `/mcp`); the root document describes the first route, for
 *   clients that only try the root.
 * @see RFC 9728 §3.3 — `resource` must equal the URL the client used, or the client must reject the document.
 * @see RFC 9728 §2 — `dpop_signing_alg_values_supported`, and `dpop_bound_access_tokens_required` on a route with
 *   `dpop: required`, so a client knows to bind its token before its first call.
 */
export const PRM_PATH = '/.well-known/oauth-protected-resource';

export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported: string[];
  bearer_methods_supported: ['header'];
  dpop_signing_alg_values_supported: string[];
  dpop_bound_access_tokens_required?: true;
  resource_name?: string;
}

export const resourceUrl = (publicUrl: string, route: Pick<RouteConfig, 'path'>): string => publicUrl + route.path;

/** Path of a route's PRM document; a route at `/` is described by the root document itself. */
export const resourceMetadataPath = (route: Pick<RouteConfig, 'path'>): string =>
  route.path === '/' ? PRM_PATH : PRM_PATH + route.path;

export const resourceMetadataUrl = (publicUrl: string, route: Pick<RouteConfig, 'path'>): string =>
  publicUrl + resourceMetadataPath(route);

export function buildProtectedResourceMetadata(publicUrl: string, route: RouteConfig, trailingSlash = false): ProtectedResourceMetadata {
  return {
    resource: trailingSlash ? `${resourceUrl(publicUrl, route)}/` : resourceUrl(publicUrl, route),
    authorization_servers: [publicUrl],
    // offline_access is an authorization-server scope (refresh tokens), not something this resource offers.
    scopes_supported: Object.keys(route.scopes).filter((scope) => scope !== 'offline_access'),
    bearer_methods_supported: ['header'],
    dpop_signing_alg_values_supported: [...DPOP_SIGNING_ALGS],
    ...(route.dpop === 'required' ? { dpop_bound_access_tokens_required: true as const } : {}),
  };
}
