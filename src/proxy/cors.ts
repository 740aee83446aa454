import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ProtocolError } from '../errors/protocol-error.ts';

/**
 * CORS for browser-based MCP clients on the gateway's routes only (not a server-wide `OPTIONS *`, which would answer
 * for other parts' URLs). Only the origins the Origin check allows get CORS headers; credentials are never allowed —
 * MCP clients send bearer tokens, not cookies. The response headers a client must read cross-origin are exposed:
 * `Mcp-Session-Id` (sessions), `WWW-Authenticate` (discovery and step-up), `Retry-After` (rate limits), `DPoP-Nonce`
 * (RFC 9449 §9); a browser client may send its `DPoP` proof.
 *
 * Written here rather than with @fastify/cors: the allowed origins are the Origin check's own (one policy, not two
 * copies), and only these routes answer preflights; the plugin's global registration would answer for every part.
 *
 * @see WHATWG Fetch §3.2 CORS protocol
 */
const EXPOSED_HEADERS = 'mcp-session-id, www-authenticate, retry-after, mcp-protocol-version, dpop-nonce';

/** What a preflight may ask for on one kind of path. */
export interface CorsPolicy {
  paths: readonly string[];
  methods: string;
  allowsHeader: (name: string) => boolean;
}

/** MCP endpoints: the headers MCP uses. (The public metadata documents answer any origin: ../server/public-document-cors.ts.) */
export const MCP_CORS = {
  // The methods are each URL's own (gateway-plugin.ts): `/sse` serves GET only, `/messages` POST.
  allowsHeader: (name: string) => /^(authorization|dpop|content-type|accept|last-event-id|mcp-[a-z0-9-]+)$/.test(name),
};

/**
 * A plain HTTP route is a REST API: every method it forwards, and the headers a REST client sends (any field name,
 * RFC 9110 §5.1 token characters). Allowing them all costs nothing CORS protects: credentials (cookies) are never
 * allowed, and the gateway forwards no client header it does not already forward without CORS.
 */
export const HTTP_ROUTE_CORS = {
  methods: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
  allowsHeader: (name: string) => /^[!#$%&'*+.^_`|~0-9a-z-]{1,128}$/.test(name) && name !== 'cookie',
};

export function installCors(app: FastifyInstance, policies: readonly CorsPolicy[], isAllowed: (origin: string) => boolean): void {
  // Callback-style hooks here and in the server's other per-request hooks: an async hook costs a promise and a
  // microtask turn per request for work that never waits.
  app.addHook('onSend', (request, reply, payload, done) => {
    const origin = request.headers.origin;
    if (origin && isAllowed(origin)) {
      reply.header('access-control-allow-origin', origin).header('access-control-expose-headers', EXPOSED_HEADERS).header('vary', 'Origin');
    }
    done(null, payload);
  });
  const preflight = (policy: CorsPolicy) => async (request: FastifyRequest, reply: FastifyReply) => {
    const origin = request.headers.origin;
    // No Origin: not a browser's preflight but a plain OPTIONS (RFC 9110 §9.3.7), which asks what the route allows.
    if (!origin) return reply.code(204).header('allow', policy.methods).send();
    if (!isAllowed(origin)) throw new ProtocolError('forbidden_origin', 'This origin may not call this route.');
    const requested = String(request.headers['access-control-request-headers'] ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter((name) => name !== '');
    const refused = requested.filter((name) => !policy.allowsHeader(name));
    if (refused.length > 0) throw new ProtocolError('invalid_request', `Headers not allowed: ${refused.join(', ')}.`, { status: 403 });
    return reply
      .code(204)
      .header('access-control-allow-methods', policy.methods)
      .header('access-control-allow-headers', requested.join(', '))
      .header('access-control-max-age', '600')
      .send();
  };
  for (const policy of policies) {
    const answer = preflight(policy);
    for (const url of policy.paths) app.options(url, answer);
  }
}
