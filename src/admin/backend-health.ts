import type { RouteConfig } from '../config/schema.ts';

/**
 * Whether each route's backend answers at all, for the console's overview: one bounded request to the backend URL
 * through the context's fetch. Any HTTP answer below 500 counts as reachable — an MCP backend refuses a bare request
 * without the gateway's identity assertion (401/405/406) and that still proves it is up; a 5xx (a proxy in front
 * of a dead backend) or no answer in time does not. Nothing is sent that could act: HEAD, no body, no credentials.
 */
export interface BackendHealth {
  state: 'reachable' | 'failing' | 'unreachable';
  /** The HTTP status, when the backend (or something in front of it) answered. */
  status?: number;
}

export async function probeBackend(fetch: typeof globalThis.fetch, backend: string, timeoutMs: number): Promise<BackendHealth> {
  try {
    const response = await fetch(backend, { method: 'HEAD', redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return { state: response.status >= 500 ? 'failing' : 'reachable', status: response.status };
  } catch {
    return { state: 'unreachable' };
  }
}

export async function probeBackends(fetch: typeof globalThis.fetch, routes: readonly RouteConfig[], timeoutMs: number): Promise<Map<string, BackendHealth>> {
  const results = await Promise.all(routes.map(async (route) => [route.path, await probeBackend(fetch, route.backend, timeoutMs)] as const));
  return new Map(results);
}
