import type { GatehouseConfig } from './schema.ts';

/**
 * The public base URL of the gateway with no trailing slash: the OAuth issuer (which clients compare byte for byte,
 * RFC 8414 §3.3) and the prefix of every advertised URL. It comes from `server.publicUrl`, never from the request's
 * Host header, so a TLS-terminating load balancer cannot make Gatehouse advertise its internal http address.
 * Without a configured URL (demo, tests) it is `http://localhost:<port>`.
 */
export function resolvePublicUrl(config: Pick<GatehouseConfig, 'server'>): string {
  const configured = config.server.publicUrl;
  if (!configured) return `http://localhost:${config.server.port}`;
  const url = new URL(configured);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** True for http(s) URLs on this machine, where plain http is acceptable for development. */
export function isLoopbackUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  return LOOPBACK_HOSTS.has(new URL(value).hostname);
}
