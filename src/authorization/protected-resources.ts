import type { RouteConfig } from '../config/schema.ts';

/**
 * The resources (RFC 8707) this authorization server issues tokens for: one per configured route, identified by the
 * route's public URL. A token's `aud` is exactly one of these, so a token for one MCP server is useless at another.
 */
export interface ProtectedResource {
  /** `publicUrl + route.path`, e.g. `https://gatehouse.example.com/mcp`. */
  resource: string;
  route: RouteConfig;
  /** Scope name → description shown on the consent page. */
  scopes: Record<string, string>;
}

export interface ProtectedResources {
  all: ProtectedResource[];
  find(resource: string): ProtectedResource | undefined;
  /**
   * The resource used when a request names none: the only MCP route, if there is exactly one. MCP clients before
   * 2025-06-18 omit `resource`; plain HTTP routes are for clients that know their resource and always name it.
   */
  defaultResource: ProtectedResource | undefined;
  /** Description of a scope of any resource (for the consent page). */
  describeScope(scope: string): string | undefined;
}

/**
 * The form resources are compared in: URL parsing lower-cases scheme and host, and a trailing slash is dropped.
 * MCP 2026-07-28 (Canonical Server URI): servers SHOULD accept upper-case scheme/host, and clients SHOULD omit the
 * trailing slash — some do not. Anything else (path case, query) must match exactly.
 */
export function canonicalResource(resource: string): string {
  const url = URL.parse(resource);
  if (url === null || url.hash !== '' || url.search !== '') return resource;
  return url.href.endsWith('/') ? url.href.slice(0, -1) : url.href;
}

/** A scope as the consent page words it. */
export interface ScopeDescription {
  name: string;
  description: string;
}

/**
 * The scopes with the descriptions the route gives them: what the consent page showed, and what /account shows for
 * the grant later, from the one source (the route's `scopes`), so the two can never drift apart.
 */
export function describeScopes(resource: ProtectedResource | undefined, scopes: readonly string[]): ScopeDescription[] {
  return scopes.map((name) => ({ name, description: (resource !== undefined && Object.hasOwn(resource.scopes, name) ? resource.scopes[name] : undefined) ?? name }));
}

export function protectedResources(publicUrl: string, routes: RouteConfig[]): ProtectedResources {
  // `scopes` is read from the route each time: a configuration reload (src/app/reload-config.ts) replaces it.
  const all = routes.map((route): ProtectedResource => ({
    resource: publicUrl + route.path,
    route,
    get scopes() {
      return route.scopes;
    },
  }));
  const byResource = new Map(all.map((entry) => [canonicalResource(entry.resource), entry]));
  return {
    all,
    find: (resource) => byResource.get(canonicalResource(resource)),
    defaultResource: onlyOne(all.filter((entry) => entry.route.type === 'mcp')),
    describeScope: (scope) => all.find((entry) => Object.hasOwn(entry.scopes, scope))?.scopes[scope],
  };
}

function onlyOne<T>(items: T[]): T | undefined {
  return items.length === 1 ? items[0] : undefined;
}
