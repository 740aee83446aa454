/**
 * The URL the gateway may POST a session's messages to, from the backend's `endpoint` event (relative to the SSE
 * URL); undefined when it is not the backend's own: another origin (SSRF — e.g. a cloud metadata address), embedded
 * credentials, or a path outside the directory of the SSE endpoint (another application on the same origin, such as
 * a neighbouring MCP server or an admin API, reached with this route's identity). WHATWG URL parsing has already
 * resolved dot segments, encoded ones included, and turned `\` into `/` when the path is compared.
 */
export function confinedMessageUrl(backendSseUrl: string, announced: string): string | undefined {
  const sse = new URL(backendSseUrl);
  const target = URL.parse(announced, backendSseUrl);
  if (target === null) return undefined;
  const directory = sse.pathname.slice(0, sse.pathname.lastIndexOf('/') + 1);
  if (target.origin !== sse.origin || target.username || target.password || !target.pathname.startsWith(directory)) return undefined;
  // Separators URL parsing leaves encoded, which a backend may decode into `/` (or cut at): ambiguous, so refused.
  if (/%(2f|5c|00)/i.test(target.pathname)) return undefined;
  target.hash = '';
  return target.href;
}
