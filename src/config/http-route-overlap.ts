import { displayUrl } from './display-url.ts';
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
      // Shown without credentials or query values: a problem is printed by `config check` and logged on reload.
      const what = `routes[${index}].backend: "${displayUrl(route.backend)}" also reaches ${displayUrl(endpoint.url.href)}, the MCP backend of routes[${endpoint.index}] (${endpoint.route.path})`;
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

/**
 * True when `target` is on the same server as `base` and at or below its path (segment-wise: `/api` ≠ `/apix`).
 * Paths compare without case: a server that routes so (ASP.NET does by default) serves `/MCP` as `/mcp`, and a
 * refusal too many is an operator's rename, a miss the policy bypass this check exists for.
 */
function covers(base: URL, target: URL): boolean {
  if (!sameServer(base, target)) return false;
  const basePath = base.pathname.replace(/\/+$/, '').toLowerCase();
  const targetPath = target.pathname.toLowerCase();
  return basePath === '' || targetPath === basePath || targetPath.startsWith(`${basePath}/`);
}

/**
 * Same origin, counting every spelling of one address as that address: `localhost`, `127.0.0.1` and `[::1]` (the
 * loopback, the same server), an IPv4-mapped IPv6 address as its IPv4 one (`[::ffff:127.0.0.1]` is `127.0.0.1`),
 * and the unspecified addresses (`0.0.0.0`, `[::]`), which connect to this machine, as the loopback. Other loopback
 * addresses (`127.0.0.2`) may be other servers, and are taken as such.
 */
function sameServer(a: URL, b: URL): boolean {
  if (a.origin === b.origin) return true;
  return a.protocol === b.protocol && effectivePort(a) === effectivePort(b) && addressOf(a) === addressOf(b);
}

function addressOf(url: URL): string {
  if (isLoopbackUrl(url.href)) return 'loopback';
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === '0.0.0.0' || host === '::') return 'loopback';
  // The WHATWG parser writes an IPv4-mapped address in hex: [::ffff:127.0.0.1] is [::ffff:7f00:1].
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped) {
    const high = Number.parseInt(mapped[1]!, 16);
    const low = Number.parseInt(mapped[2]!, 16);
    const ipv4 = `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
    return ipv4 === '127.0.0.1' ? 'loopback' : ipv4;
  }
  return host;
}

function effectivePort(url: URL): string {
  return url.port || (url.protocol === 'https:' ? '443' : '80');
}
