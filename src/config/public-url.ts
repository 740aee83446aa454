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

/**
 * Why browser cookies could not work at this public URL, or undefined when they can. Ours are `Secure` and `__Host-`,
 * which browsers only store over https; `dev.insecureCookies` drops that for http://localhost development only, since
 * anywhere else the consent and session cookies would cross the network in the clear. `start` (the authorization
 * server's cookie policy) and `config check` both ask this one function, so they cannot disagree.
 */
export function cookieSecurityProblem(publicUrl: string, insecureCookies: boolean): string | undefined {
  if (new URL(publicUrl).protocol === 'https:') return undefined;
  if (!insecureCookies) {
    return `server.publicUrl: "${publicUrl}" is not https, and browsers store our Secure cookies only over https — use an https URL, or for local development on http://localhost set dev.insecureCookies: true`;
  }
  if (!isLoopbackUrl(publicUrl)) {
    return `dev.insecureCookies: "${publicUrl}" is not https and not localhost — session cookies would cross the network in the clear; use an https URL`;
  }
  return undefined;
}
