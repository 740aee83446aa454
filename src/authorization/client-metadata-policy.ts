import type { GatehouseConfig } from '../config/schema.ts';

/**
 * Which URL client ids (CIMD) this gateway accepts, and which it shows as verified on the consent page.
 * A domain entry is a host (`app.example.com`) or a suffix pattern (`*.example.com`, which does not match the bare
 * `example.com`). Deny wins over allow.
 */
export type ClientMetadataDocumentsConfig = GatehouseConfig['authorization']['clientMetadataDocuments'];

export function hostMatches(host: string, pattern: string): boolean {
  // `example.com.` (a fully qualified spelling, which resolvers and TLS accept) is `example.com`.
  const wanted = withoutTrailingDot(pattern.toLowerCase());
  const actual = withoutTrailingDot(host.toLowerCase());
  if (wanted.startsWith('*.')) return actual.endsWith(wanted.slice(1)) && actual.length > wanted.length - 1;
  return actual === wanted;
}

/** True for a URL-shaped client id (the MCP 2025-11-25+ way to identify a client without registration). */
export function isClientIdUrl(clientId: string): boolean {
  return clientId.startsWith('https://') || clientId.startsWith('http://');
}

export interface ClientIdUrlDecision {
  allowed: boolean;
  /** Shown on the consent page: allow-listed domains are vouched for by the operator. */
  verified: boolean;
  reason?: string;
}

/** @see draft-ietf-oauth-client-id-metadata-document §3 (the client id URL), §6 (deployments may restrict domains) */
export function decideClientIdUrl(clientId: string, config: ClientMetadataDocumentsConfig): ClientIdUrlDecision {
  if (!config.enabled) return { allowed: false, verified: false, reason: 'URL client ids are disabled' };
  const url = URL.parse(clientId);
  if (url === null) return { allowed: false, verified: false, reason: 'not a URL' };
  // One document, one client id, shown as it is: a spelling other than the URL's standard form
  // (`HTTPS://App.example/c`, `https://app.example:443/c`, a raw right-to-left override in the path that reversed
  // the rest of the consent page's "Client metadata" line) would be a second identity of the same client, or a
  // disguised one. Clients publish their URL as written by a URL library, which is that form.
  if (url.href !== clientId) return { allowed: false, verified: false, reason: `not written in its standard form (${url.href})` };
  const host = url.hostname;
  // One host, two client ids: `https://app.example.` would be a second identity of `https://app.example`, shown
  // under another name, which a deny entry for the host must not miss either (hostMatches reads it as the host).
  if (host.endsWith('.')) return { allowed: false, verified: false, reason: `${host} ends with a dot: write the host without it` };
  if (config.denyDomains.some((pattern) => hostMatches(host, pattern))) {
    return { allowed: false, verified: false, reason: `${host} is denied` };
  }
  if (config.allowDomains.length === 0) return { allowed: true, verified: false };
  const listed = config.allowDomains.some((pattern) => hostMatches(host, pattern));
  return listed ? { allowed: true, verified: true } : { allowed: false, verified: false, reason: `${host} is not allowed` };
}

function withoutTrailingDot(host: string): string {
  return host.endsWith('.') ? host.slice(0, -1) : host;
}
