import type { FastifyInstance } from 'fastify';
import { ProtocolError } from '../errors/protocol-error.ts';

/**
 * Headers that must appear at most once. Node hides a repetition: for `Authorization`, `Content-Type`, `Host` and
 * the other singletons it keeps the first value and drops the rest from `req.headers`, and it joins unknown headers
 * (`Mcp-Session-Id: a, b`). A gateway that reads the first value while something behind it (or a second parser)
 * reads another is the classic request-smuggling and auth-confusion setup, so a repetition is refused before any
 * route runs, from `rawHeaders`, which keeps every occurrence.
 *
 * @see RFC 9110 §5.3 — a field that is not a list must not be repeated; RFC 6750 §2.1 (one credential);
 *   RFC 9449 §4.3 (one `DPoP` proof); RFC 6454 §7.3 (one `Origin`); MCP 2026-07-28 standard headers.
 */
const SINGLETON_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'dpop',
  'host',
  'origin',
  'content-type',
  'content-length',
  'mcp-session-id',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'last-event-id',
]);

/** The first singleton header that occurs more than once in `rawHeaders` (name/value pairs), if any. */
export function repeatedSingletonHeader(rawHeaders: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (let index = 0; index < rawHeaders.length; index += 2) {
    const name = rawHeaders[index]!.toLowerCase();
    if (!SINGLETON_HEADERS.has(name)) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

/**
 * One edge check for every route (gateway, OAuth endpoints, pages): errors render in the route's own format. Also
 * the request's transfer coding, which no route can read either.
 */
export function refuseRepeatedHeaders(app: FastifyInstance): void {
  // A callback hook, not an async one: it runs on every request and never waits.
  app.addHook('onRequest', (request, _reply, done) => {
    const { headers, rawHeaders } = request.raw;
    // Node folds every repeated name into one key of `headers`: as many keys as raw pairs means nothing repeats,
    // which spares the common request the scan (a lowercased copy and a lookup per header).
    const repeated = Object.keys(headers).length * 2 === rawHeaders.length ? undefined : repeatedSingletonHeader(rawHeaders);
    if (repeated !== undefined) return done(new ProtocolError('invalid_request', `The ${repeated} header must not be sent more than once.`));
    // Node's parser takes `Transfer-Encoding: gzip, chunked` (chunked last) and hands on the body still gzip-coded,
    // as if it were not: a coding no part here decodes is refused (RFC 9112 §6.1: 501), not passed on unmarked.
    const coding = headers['transfer-encoding'];
    if (coding !== undefined && coding.trim().toLowerCase() !== 'chunked') {
      return done(new ProtocolError('invalid_request', 'Only the chunked transfer coding is supported.', { status: 501 }));
    }
    done();
  });
}
