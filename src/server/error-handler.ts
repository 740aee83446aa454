import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ZodError } from 'zod';
import { StoreUnavailableError } from '../store/store.ts';
import { systemClock } from '../runtime/clock.ts';
import { atMostEvery } from '../runtime/log-throttle.ts';
import { ProtocolError, type ErrorCode } from '../errors/protocol-error.ts';
import type { PageBranding } from '../web/branding.ts';
import type { unhookedResponseHeaders } from './security-headers.ts';
import { renderErrorBody, type ErrorFormat, type RenderErrorOptions } from '../errors/render-error.ts';

/**
 * Where Fastify's errors become responses. Handlers throw ProtocolError; this file sends it, rendered by the one
 * renderer (src/errors/render-error.ts) as OAuth JSON (RFC 6749 §5.2, RFC 6750 §3), a JSON-RPC error (MCP routes)
 * or the styled HTML error page (browser-facing routes).
 * Everything that is not a ProtocolError is mapped to one without echoing its message: Fastify's JSON parse errors
 * quote the request body, which may hold a token, and unexpected errors may hold internal detail. Unexpected errors
 * are logged server-side with the request id and answered with a generic 500 `server_error`.
 */

declare module 'fastify' {
  interface FastifyInstance {
    /** The operator's branding for the HTML error page (set by buildServer; absent on bare test servers). */
    pageBranding?: PageBranding;
  }
  interface FastifyContextConfig {
    /** How errors on this route are rendered; `oauth-json` when unset. MCP routes set `jsonrpc`, pages set `html`. */
    errorFormat?: ErrorFormat;
  }
}

export type SendProtocolErrorOptions = Omit<RenderErrorOptions, 'requestId' | 'branding'>;

/**
 * Sends `error` with its status and headers (`WWW-Authenticate`, `Retry-After`, …) in the requested format. For
 * handlers that answer an error themselves instead of throwing (e.g. inside a hijacked stream before any byte).
 * @see RFC 6749 §5.2 (error response), RFC 6750 §3 (bearer challenges), JSON-RPC 2.0 §5.1 (error object)
 */
export function sendProtocolError(reply: FastifyReply, error: ProtocolError, options: SendProtocolErrorOptions = {}): FastifyReply {
  const { contentType, body } = renderErrorBody(error, { ...options, requestId: reply.request.id, branding: reply.server.pageBranding });
  // RFC 6749 §5.2 / RFC 6750 §3: error responses are never cached.
  reply.code(error.status).headers(error.headers).header('cache-control', 'no-store').type(contentType);
  return reply.send(body);
}

/** Fastify's own client errors, each with a safe description (their messages may quote the request body). */
const fastifyClientErrors: Record<string, { code: ErrorCode; description: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'payload_too_large', description: 'The request body is larger than allowed.' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'invalid_request', description: 'The request content type is not supported.' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'invalid_request', description: 'The Content-Length does not match the body.' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'invalid_request', description: 'The JSON request body is empty.' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'invalid_request', description: 'The request body is not valid JSON.' },
};

/** Status-based mapping for 4xx errors from plugins (rate limit, CSRF, …) that are not ProtocolErrors. */
function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'invalid_token';
  if (status === 403) return 'access_denied';
  if (status === 404) return 'not_found';
  if (status === 413) return 'payload_too_large';
  if (status === 429) return 'rate_limited';
  return 'invalid_request';
}

/** Turns anything thrown into a ProtocolError; `undefined` means it was unexpected (a 500). */
export function toProtocolError(error: unknown): ProtocolError | undefined {
  if (error instanceof ProtocolError) return error;
  if (error instanceof StoreUnavailableError) return storeUnavailable(error);
  if (error instanceof SyntaxError) {
    // A body parser's JSON.parse failure: its message quotes the input, so it is replaced, never echoed.
    return new ProtocolError('invalid_request', 'The request body is not valid JSON.', { cause: error });
  }
  if (error instanceof ZodError) {
    // Edge validation with zod (STYLE.md §4): name the field and the rule; zod issues do not carry the value.
    const problems = error.issues.map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`);
    return new ProtocolError('invalid_request', `Invalid request: ${problems.join('; ')}`, { cause: error });
  }
  const fastifyError = error as Partial<FastifyError> | null;
  if (typeof fastifyError !== 'object' || fastifyError === null) return undefined;
  const status = fastifyError.statusCode;
  const known = fastifyError.code === undefined ? undefined : fastifyClientErrors[fastifyError.code];
  if (known) return new ProtocolError(known.code, known.description, { status: status ?? 400, cause: error });
  if (fastifyError.validation) {
    // Schema validation messages name the field and rule (`body/grant_type must be string`), never the value.
    return new ProtocolError('invalid_request', `Invalid request: ${fastifyError.message}`, { status: 400, cause: error });
  }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = codeForStatus(status);
    const headers = status === 429 ? retryAfterHeader(error) : {};
    return new ProtocolError(code, undefined, { status, headers, cause: error });
  }
  return undefined;
}

/**
 * Any route whose store call fails because the store is down (or known to be down, see store-health.ts) answers
 * 503 with `Retry-After`, in the route's format: the client can only wait, and nothing was wrong with its request.
 * The error's message names the store's endpoint, so it stays in the log (as the cause), never in the body.
 * @see RFC 9110 §15.6.4 (503), §10.2.3 (Retry-After); RFC 6749 §4.1.2.1 (`temporarily_unavailable`)
 */
export function storeUnavailable(error: StoreUnavailableError): ProtocolError {
  return new ProtocolError('temporarily_unavailable', 'The service is temporarily unavailable; retry later.', {
    headers: { 'retry-after': String(error.retryAfterSeconds) },
    cause: error,
  });
}

function retryAfterHeader(error: unknown): Record<string, string> {
  const headers = (error as { headers?: Record<string, unknown> }).headers;
  const retryAfter = headers?.['retry-after'];
  return retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) };
}

function formatFor(request: FastifyRequest): ErrorFormat {
  return request.routeOptions.config?.errorFormat ?? 'oauth-json';
}

/**
 * For Fastify's `frameworkErrors` option: errors raised before routing (a URL with broken percent-encoding, an
 * over-long path parameter) would otherwise get Fastify's own body, which quotes the URL.
 */
export function createFrameworkErrorHandler(
  headers: ReturnType<typeof unhookedResponseHeaders>,
): (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => FastifyReply {
  return (error, request, reply) => {
    const description = error.code === 'FST_ERR_BAD_URL' ? 'The request URL is malformed.' : 'The request cannot be routed.';
    request.log.info({ errorCode: 'invalid_request', fastifyCode: error.code }, 'request rejected');
    // A browser following a mangled link to a page gets the error page, as for an unknown page (notFoundFormat).
    const format = notFoundFormat(request);
    // Sent before routing, so without the hooks: the security headers every other answer gets are set here.
    reply.headers(format === 'html' ? headers.html : headers.other).header('x-request-id', request.id);
    return sendProtocolError(reply, new ProtocolError('invalid_request', description), { format });
  };
}

/** Endpoints programs call: their 404 stays the JSON they parse, whatever the caller's `Accept` says. */
const API_PREFIXES = ['/.well-known', '/token', '/register', '/revoke', '/introspect', '/jwks', '/metrics', '/healthz', '/readyz'];

/**
 * The console's addresses (src/admin): nothing under them is an API, and every route there answers its errors as a
 * page (`errorFormat: 'html'`), so an unknown one, or one refused before routing, is answered as a page too.
 */
const CONSOLE_PREFIXES = ['/admin', '/account'];

const under = (prefixes: readonly string[], path: string): boolean => prefixes.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));

/**
 * A console address, whoever asks, and a browser navigating to an unknown page or submitting a form to one (a GET or
 * a POST asking for HTML, outside the API endpoints), get the styled page: a stale console form (a grant id that
 * cannot be routed) answered JSON to a person. Programs never ask for HTML: MCP clients send `Accept:
 * application/json, text/event-stream`.
 */
export function notFoundFormat(request: FastifyRequest): ErrorFormat {
  const path = request.url.split('?')[0] ?? '';
  if (under(CONSOLE_PREFIXES, path)) return 'html';
  if (request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'POST') return 'oauth-json';
  if (!/\btext\/html\b/.test(String(request.headers.accept ?? ''))) return 'oauth-json';
  return under(API_PREFIXES, path) ? 'oauth-json' : 'html';
}

/**
 * The "store unavailable" warning of requests failing in a store outage: at most a line every 10 s, with how many were
 * held back. Every request during an outage fails with one, each already has its own request line (status 503), and
 * the breaker names the outage once (store-health.ts).
 */
export function storeOutageWarning(): (failed: { request: FastifyRequest; code: string; reason: string }) => void {
  return atMostEvery<{ request: FastifyRequest; code: string; reason: string }>(10_000, systemClock, ({ request, code, reason }, heldBack) =>
    request.log.warn({ errorCode: code, reason, ...(heldBack > 0 ? { heldBack } : {}) }, 'store unavailable'),
  );
}

/** Installs the error handler and the 404 (JSON, or a page for browsers) on `app` (and so on every plugin registered inside it). */
export function installErrorHandler(app: FastifyInstance): void {
  const warnStoreUnavailable = storeOutageWarning();
  app.setErrorHandler((error: unknown, request, reply) => {
    // Fastify parses a body before its 404 handler runs: a POST with a body it cannot parse to a path that does not
    // exist was told its body was wrong (400, 415). The path is what is wrong.
    if (request.is404 && isBodyParsingError(error)) return sendNotFound(request, reply);
    const protocolError = toProtocolError(error);
    if (protocolError?.cause instanceof StoreUnavailableError) {
      warnStoreUnavailable({ request, code: protocolError.code, reason: protocolError.cause.detail });
      return sendProtocolError(reply, protocolError, { format: formatFor(request) });
    }
    if (protocolError) {
      // Client mistakes are routine: log the code, not the error (its message may quote a token in the body).
      request.log.info({ errorCode: protocolError.code, status: protocolError.status, detail: protocolError.detail }, 'request rejected');
      return sendProtocolError(reply, protocolError, { format: formatFor(request) });
    }
    request.log.error({ err: error }, 'unexpected error');
    return sendProtocolError(reply, new ProtocolError('server_error'), { format: formatFor(request) });
  });

  app.setNotFoundHandler(sendNotFound);
}

/** A body parser's failure: JSON that does not parse, or Fastify's content-type parsing (type, size, empty JSON). */
function isBodyParsingError(error: unknown): boolean {
  if (error instanceof SyntaxError) return true;
  const code = (error as Partial<FastifyError> | null)?.code;
  return typeof code === 'string' && code.startsWith('FST_ERR_CTP_');
}

function sendNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const format = notFoundFormat(request);
  const description = format === 'html' ? 'There is no page at this address. The start page lists what this gateway serves.' : 'No such endpoint.';
  return sendProtocolError(reply, new ProtocolError('not_found', description), { format });
}
