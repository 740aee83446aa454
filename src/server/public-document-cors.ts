import type { FastifyInstance } from 'fastify';

/**
 * The CORS preflight of a public, credential-free document (RFC 9728 resource metadata, the JWKS): its GET answers
 * `Access-Control-Allow-Origin: *`, so its preflight does too, for any origin and whichever request headers the
 * client adds. MCP SDK clients send `MCP-Protocol-Version` on every metadata fetch, which makes a browser preflight
 * it; a preflight refused where the GET is allowed left a browser client that does not retry without the header
 * unable to discover the server. Refusing protects nothing: credentials are never allowed, and the document is the
 * same for every caller. (The MCP endpoints keep their Origin allow-list: src/proxy/cors.ts.)
 *
 * @see WHATWG Fetch §3.2.3 HTTP-CORS-preflight request
 */
export function answerPublicPreflights(app: FastifyInstance, url: string, allow: string): void {
  app.options(url, async (request, reply) => {
    // No Origin: not a browser's preflight but a plain OPTIONS (RFC 9110 §9.3.7), which asks what the URL allows.
    if (request.headers.origin === undefined) return reply.code(204).header('allow', allow).send();
    const requested = String(request.headers['access-control-request-headers'] ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter((name) => FIELD_NAME.test(name));
    return reply
      .code(204)
      .header('access-control-allow-origin', '*')
      .header('access-control-allow-methods', 'GET, HEAD')
      .header('access-control-allow-headers', requested.join(', '))
      .header('access-control-max-age', '600')
      .send();
  });
}

/** RFC 9110 §5.1: a field name is a token; anything else is echoed nowhere. */
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]{1,128}$/;
