import type { IncomingHttpHeaders } from 'node:http';

/**
 * Which request and response headers cross the gateway.
 *
 * @see RFC 9110 §7.6.1 — hop-by-hop headers (and any named in `Connection`) are not forwarded.
 * The client's `Authorization` and `Cookie` are never forwarded: the backend gets the gateway's identity assertion
 * instead, so a backend (or anything it calls) can never replay the client's token (the confused-deputy problem the
 * MCP security best practices call "token passthrough").
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

const NEVER_FORWARDED = new Set([
  ...HOP_BY_HOP,
  'authorization',
  'cookie',
  'host',
  'content-length',
  // Rewritten by us from what the gateway itself saw.
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  // Compressed bodies could not be inspected (tools/list filtering); the loopback hop gains nothing from them.
  'accept-encoding',
]);

const NONE: ReadonlySet<string> = new Set();

function connectionListed(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): ReadonlySet<string> {
  const value = headers.connection;
  // Per request, on the hot path: the common `keep-alive` (or no header) names nothing to drop beyond hop-by-hop.
  if (value === undefined || value === 'keep-alive' || value === 'close') return NONE;
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(text.split(',').map((name) => name.trim().toLowerCase()).filter(Boolean));
}

export interface ForwardedFor {
  /** The full `X-Forwarded-For` value: a trusted proxy's chain (if `server.trustProxy` trusts it) plus the peer. */
  forwardedFor: string;
  /** `http` or `https`, as the client reached the gateway. */
  protocol: string;
  host: string;
}

export function backendRequestHeaders(
  incoming: IncomingHttpHeaders,
  forwarded: ForwardedFor,
  identity: string,
): Record<string, string> {
  const listed = connectionListed(incoming);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || NEVER_FORWARDED.has(name) || listed.has(name)) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  out['x-forwarded-for'] = forwarded.forwardedFor;
  out['x-forwarded-proto'] = forwarded.protocol;
  out['x-forwarded-host'] = forwarded.host;
  out.authorization = `Bearer ${identity}`;
  return out;
}

const RESPONSE_DROPPED = new Set([...HOP_BY_HOP, 'content-length', 'set-cookie']);

/** Response headers passed back to the client; `content-length` is dropped because bodies may be rewritten. */
export function clientResponseHeaders(backend: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = connectionListed(backend);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(backend)) {
    if (value === undefined || RESPONSE_DROPPED.has(name) || listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}
