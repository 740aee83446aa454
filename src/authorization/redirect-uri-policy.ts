/**
 * The redirect URIs a client may register, whatever way it registers (DCR, CIMD document, configuration):
 * - `https:` anywhere;
 * - `http:` only on a loopback host (`127.0.0.1`, `[::1]`, `localhost`) — native apps listen on an ephemeral port,
 *   and the port is ignored when matching loopback URIs (RFC 8252 §7.3, §8.3);
 * - never a fragment (RFC 6749 §3.1.2), never credentials, never a script-capable or local scheme
 *   (`javascript:`, `data:`, `file:`, `vbscript:`, `blob:`): those turn an authorization response into XSS or a
 *   local file read.
 *
 * Matching at authorization time is exact (oidc-provider compares strings), except for the loopback port.
 */

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

export function isLoopbackRedirectHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname);
}

/** Returns why `uri` is not an acceptable redirect URI, or undefined when it is. */
export function redirectUriProblem(uri: unknown): string | undefined {
  if (typeof uri !== 'string') return 'redirect_uris must be strings';
  const url = URL.parse(uri);
  if (url === null) return `${uri.slice(0, 100)} is not an absolute URI`;
  if (uri.includes('#')) return 'redirect URIs must not contain a fragment';
  if (url.username !== '' || url.password !== '') return 'redirect URIs must not contain credentials';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') {
    return isLoopbackRedirectHost(url.hostname) ? undefined : 'http redirect URIs are only allowed on loopback hosts';
  }
  return `the ${url.protocol.slice(0, -1)} scheme is not allowed for redirect URIs`;
}

/** The first problem among a client's redirect URIs, if any. */
export function redirectUrisProblem(uris: unknown): string | undefined {
  if (uris === undefined) return undefined;
  if (!Array.isArray(uris)) return 'redirect_uris must be an array';
  for (const uri of uris) {
    const problem = redirectUriProblem(uri);
    if (problem !== undefined) return problem;
  }
  return undefined;
}
