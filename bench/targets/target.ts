import type { BackendUrls } from '../backends/main.ts';

/**
 * What every target (a proxy in front of the backends, or none) offers the bench. A target serves each backend
 * under a path named after it (`/canned`, `/json`, `/sse`, `/hold`; legacy HTTP+SSE at `/legacy/sse`), so one
 * scenario's requests look the same through every target apart from the origin and the credential.
 */
export type BackendName = keyof BackendUrls;

export interface Target {
  name: string;
  /** The URL a client uses for this backend (legacy: the SSE endpoint). */
  url(backend: BackendName): string;
  /** Extra request headers (the bearer token, for targets that check one). */
  headers(backend: BackendName): Record<string, string>;
  /** Every process of the target, for CPU and RSS; empty for `direct`. */
  pids(): number[];
  stop(): Promise<void>;
}

/** A path prefix on the proxy and the backend URL it maps to: `upstream + path.slice(prefix.length)`. */
export interface ProxyRoute {
  prefix: string;
  upstream: string;
}

/**
 * The mapping the plain proxies (nginx, Express peer, Node floor) serve. The legacy server announces its message
 * endpoint as an absolute path (`/messages?sessionId=…`), which these proxies do not rewrite (Gatehouse does), so
 * `/messages` is mapped too.
 */
export function proxyRoutes(urls: BackendUrls): ProxyRoute[] {
  return [
    { prefix: '/canned', upstream: urls.canned },
    { prefix: '/json', upstream: urls.json },
    { prefix: '/sse', upstream: urls.sse },
    { prefix: '/hold', upstream: urls.hold },
    { prefix: '/legacy/', upstream: `${urls.legacy}/` },
    { prefix: '/messages', upstream: `${urls.legacy}/messages` },
  ];
}

export function proxiedUrl(origin: string, backend: BackendName): string {
  return backend === 'legacy' ? `${origin}/legacy/sse` : `${origin}/${backend}`;
}
