import type { FastifyRequest } from 'fastify';

/**
 * Refuses a state-changing request (the consent POST) that a browser reports as coming from another site: the CSRF
 * token is the main defence, this is the second, independent one. `Origin` must be ours when present; otherwise
 * `Sec-Fetch-Site` must be `same-origin` (or `none`: the user typed or bookmarked it). `Origin: null` (sent by
 * sandboxed frames, and under `Referrer-Policy: no-referrer`) proves nothing, so it needs `Sec-Fetch-Site`.
 * A request with neither header comes from something that is not a modern browser and is left to the CSRF check.
 *
 * @see OWASP CSRF Prevention Cheat Sheet — "Verifying Origin With Standard Headers", Fetch Metadata
 */
export function isSameOriginRequest(request: FastifyRequest, publicOrigin: string): boolean {
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== 'null') return origin === publicOrigin;
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin' || site === 'none';
  return origin === undefined;
}
