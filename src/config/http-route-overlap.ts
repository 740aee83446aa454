import { isLoopbackUrl } from './public-url.ts';
import type { RuleResult } from './config-rules.ts';
import type { RouteConfig } from './schema.ts';

/**
 * A `type: http` route forwards any path below its backend URL. If that base path also holds an MCP server that an
 * `mcp` route protects, the MCP endpoints become reachable through the HTTP route with a token for the HTTP route:
 * the MCP route's required scopes, per-tool policies and `tools/list` filter are all skipped, and the backend sees an
 * identity assertion it may accept (the confused deputy this prevents). Refused unless the operator opts in with
 * `allowMcpBackendOverlap: true` on the HTTP route, and then still reported as a warning.
 */
export function checkHttpRoutesCoveringMcpBackends(routes: readonly RouteConfig[], { problems, warnings }: RuleResult): void {
  const mcpEndpoints = routes.flatMap((route, index) => (route.type === 'mcp' ? mcpBackendUrls(route).map((url) => ({ index, route, url })) : []));
  routes.forEach((route, index) => {
    if (route.type !== 'http') {
      if (route.allowMcpBackendOverlap) problems.push(`routes[${index}].allowMcpBackendOverlap: only for type: http routes — remove it`);
      return;
    }
    const base = new URL(route.backend);
    for (const endpoint of mcpEndpoints) {
      if (!covers(base, endpoint.url)) continue;
      const what = `routes[${index}].backend: "${route.backend}" also reaches ${endpoint.url.href}, the MCP backend of routes[${endpoint.index}] (${endpoint.route.path})`;
      if (route.allowMcpBackendOverlap) {
        warnings.push(`${what} — its tools are callable through ${route.path} without that route's scopes, tool policies or tools/list filter (allowMcpBackendOverlap is set)`);
      } else {
        problems.push(
          `${what} — its tools would be callable there without that route's scopes, tool policies or tools/list filter; point the backend at a path that holds no MCP endpoint (e.g. …/api), or set routes[${index}].allowMcpBackendOverlap: true`,
        );
      }
      break;
    }
  });
}

/** Where an MCP route's backend answers: its URL and, with the legacy transport, its SSE endpoint. */
function mcpBackendUrls(route: RouteConfig): URL[] {
  const urls = [new URL(route.backend)];
  if (route.transports.includes('sse')) urls.push(new URL(route.legacySsePath, route.backend));
  return urls;
}

/**
 * The `type: http` route (one that did not opt in with `allowMcpBackendOverlap`) whose backend reaches `url`, if any.
 * For the legacy message endpoint a backend announces on each SSE stream: the check above cannot know it at start-up
 * (a backend may put it anywhere below its SSE endpoint's directory, src/proxy/legacy-sse.ts), and one an HTTP route
 * also reaches takes that session's messages around the MCP route's policy.
 */
export function httpRouteReaching(routes: readonly RouteConfig[], url: string): RouteConfig | undefined {
  const target = new URL(url);
  return routes.find((route) => route.type === 'http' && !route.allowMcpBackendOverlap && covers(new URL(route.backend), target));
}

/** True when `target` is on the same server as `base` and at or below its path (segment-wise: `/api` ≠ `/apix`). */
function covers(base: URL, target: URL): boolean {
  if (!sameServer(base, target)) return false;
  const basePath = base.pathname.replace(/\/+$/, '');
  return basePath === '' || target.pathname === basePath || target.pathname.startsWith(`${basePath}/`);
}

/** Same origin, counting `localhost`, `127.0.0.1` and `[::1]` as one host: they are the same server. */
function sameServer(a: URL, b: URL): boolean {
  if (a.origin === b.origin) return true;
  return a.protocol === b.protocol && effectivePort(a) === effectivePort(b) && isLoopbackUrl(a.href) && isLoopbackUrl(b.href);
}

function effectivePort(url: URL): string {
  return url.port || (url.protocol === 'https:' ? '443' : '80');
}
