import { scrubUrl } from '../server/logger.ts';
import type { Readable, Transform } from 'node:stream';
import { checkDeclaredLength, limitRequestBody, readRequestBody, type BodyLimits } from '../server/request-body.ts';
import { mediaTypeOf } from '../protocol/media-type.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { backendUrlFor } from './backend-path.ts';
import { backendResponse, exchangeHandler, runSteps, type ExchangeStep, type McpExchange } from './exchange.ts';
// The steps every transport shares, named `shared.…` in the step lists below beside this transport's own.
import * as shared from './exchange.ts';
import type { GatewayRuntime } from './gateway-runtime.ts';
import { relayResponse } from './relay-response.ts';
import { routeBodyLimit, type RouteState } from './route-state.ts';
import { namesContentCoding } from './forward-headers.ts';
import { namesAccessToken } from './token-parameter.ts';

/**
 * Plain HTTP routes (`type: http`): a REST API behind the same tokens and identity forwarding as the MCP routes.
 * `/hello/x?y` on a route at `/hello` with backend `http://api:3001/v1` goes to `http://api:3001/v1/x?y`, and never
 * outside `/v1` (backend-path.ts). Bodies stream both ways; the gateway never reads them, but it holds the request
 * body to the route's limit (`bodyLimitBytes`, else `server.bodyLimitBytes`) and `requestBodyMs` as it streams
 * (src/server/request-body.ts, the same cap and deadline as MCP POSTs).
 */

/** Before the token check: a path that leaves the route (or is ambiguous) is refused whoever sends it (400). */
export function confineBackendPath(exchange: McpExchange): void {
  const { state, request } = exchange;
  exchange.backendUrl = backendUrlFor(state.backendBase, state.route.path, request.url, state.nestedRoutePaths);
}

function bodyLimits(exchange: McpExchange): BodyLimits {
  const { runtime, state, request } = exchange;
  return { limit: routeBodyLimit(state, runtime.ctx.config.server.bodyLimitBytes), timeoutMs: state.route.timeouts.requestBodyMs, declaredLength: request.headers['content-length'] };
}

/** A `Content-Length` over the body limit is refused before a byte is read (413, RFC 9110 §15.5.14). */
export function checkContentLength(exchange: McpExchange): void {
  checkDeclaredLength(bodyLimits(exchange));
}

/**
 * The body streams on through the cap and the deadline (413 past the limit, 408 when it trickles). Armed after the
 * identity is ready, so the deadline measures the client's upload, not the broker.
 */
export function capRequestBody(exchange: McpExchange): void {
  const { request, draft } = exchange;
  const incoming = request.method === 'GET' || request.method === 'HEAD' ? undefined : (request.body as Readable | undefined);
  if (incoming === undefined) return;
  const limits = bodyLimits(exchange);
  const upload = incoming.pipe(limitRequestBody(incoming, { ...limits, onBytes: (bytes) => void (draft.bytesIn += bytes) }));
  exchange.upload = upload;
  exchange.uploadOverLimit = () => restOfUploadOverLimit(incoming, upload, limits, draft.bytesIn);
  // A declared length is passed on (it is within the limit); without one, undici sends the stream chunked.
  if (limits.declaredLength !== undefined && exchange.backendHeaders !== undefined) {
    exchange.backendHeaders['content-length'] = limits.declaredLength;
  }
}

/**
 * A backend that answers before it has read the whole body (an error of its own, a refusal at its smaller limit) and
 * closes the connection makes undici fail the request with a write error, and its answer is lost with the upload.
 * When that happens while the client is still sending, the rest of the body is read through the same cap and
 * deadline: a body over the limit gets the 413 the gateway would have given had it got that far first — the
 * client's own mistake, which a 502 would misreport (the endpoint fuzz test sends such bodies). A body within the
 * limit, or one that stops arriving, leaves the backend failure as it is: set the route's `bodyLimitBytes` to the
 * backend's own limit, and the gateway refuses what the backend would.
 */
async function restOfUploadOverLimit(incoming: Readable, upload: Transform, limits: BodyLimits, passed: number): Promise<ProtocolError | undefined> {
  incoming.unpipe(upload);
  upload.destroy();
  if (incoming.readableEnded || incoming.destroyed) return undefined;
  const rest = incoming.pipe(limitRequestBody(incoming, { limit: Math.max(limits.limit - passed, 0), timeoutMs: limits.timeoutMs }));
  try {
    for await (const _chunk of rest);
    return undefined;
  } catch (error) {
    return error instanceof ProtocolError && error.code === 'payload_too_large' ? error : undefined;
  }
}

/**
 * RFC 6750 §2.2 lets a client send its access token as a form body's `access_token` instead of (or as well as) the
 * `Authorization` header. Gatehouse takes tokens from the header only, and a body goes to the backend as it came: a
 * form naming `access_token` would hand the backend the client's token, which it must never see (it gets the
 * gateway's identity assertion instead; a token in the query is refused by the token check for the same reason).
 * So a form body is read whole before it is forwarded, through the same cap and deadline, and one that names
 * `access_token` is refused (400 `invalid_request`, RFC 6750 §3.1: a token sent by more than one method). Other
 * bodies still stream; forms to REST APIs are small.
 */
export async function refuseTokenInFormBody(exchange: McpExchange): Promise<void> {
  const { upload, request } = exchange;
  if (upload === undefined) return;
  if (mediaTypeOf(request.headers['content-type']) !== 'application/x-www-form-urlencoded') return;
  // A compressed form cannot be read for a token here, and backends inflate one (Express's body parser does).
  const coding = request.headers['content-encoding'];
  if (namesContentCoding(coding)) {
    throw new ProtocolError('invalid_request', 'A form body must be sent without a content coding: the gateway reads it for access tokens.', {
      status: 415,
      headers: { 'accept-encoding': 'identity' },
      detail: `content-encoding ${JSON.stringify(coding ?? null).slice(0, 120)}`,
    });
  }
  let body: Buffer;
  try {
    // The upload holds the body to the cap and the deadline (capRequestBody) and fails first; its refusal is the answer.
    body = await readRequestBody(upload, bodyLimits(exchange));
  } catch (error) {
    throw upload.errored instanceof ProtocolError ? upload.errored : error;
  }
  if (namesAccessToken(body.toString('latin1'))) {
    throw new ProtocolError('invalid_request', 'Access tokens are accepted only in the Authorization header: this form body names `access_token`, which would reach the backend.');
  }
  exchange.upload = undefined;
  exchange.uploadOverLimit = undefined;
  exchange.heldBody = body;
}

function confinedBackendUrl(exchange: McpExchange): string {
  if (exchange.backendUrl === undefined) throw new Error(`step order: ${exchange.request.url} has no backend URL yet`);
  return exchange.backendUrl;
}

/**
 * A backend's 401 cannot go to the client as it is: the client's token was the gateway's to judge, and the backend was
 * given the gateway's identity assertion, not that token, so the 401 (whose challenge, if any, names the backend) is
 * about the gateway — a 502 — unless it is a step-up the user can complete, which becomes the gateway's own challenge
 * (shared.refuseBackendRefusal). It reached the client without a `WWW-Authenticate` (relay-response.ts drops the
 * backend's), a 401 no client can act on (RFC 9110 §15.5.2), and a refresh brought the same 401 back forever. A 403
 * stays the backend's answer about the resource.
 */
export function refuseBackendUnauthorized(exchange: McpExchange): void | Promise<void> {
  const response = backendResponse(exchange);
  if (response.statusCode === 401) return shared.refuseBackendRefusal(exchange, response);
}

/**
 * A backend names its own resources by its own URLs: `Location: http://api:3001/v1/users/7` after a create, or a
 * redirect to `/v1/login`. Passed on as they are, the client would be sent to an address it cannot reach (or
 * reach around the gateway), and the path-absolute form would resolve against the gateway to a path no route
 * serves. A `Location` or `Content-Location` under the backend's base URL is given back as the same resource under
 * the route (`https://gateway/api/users/7`), as a reverse proxy's default redirect rewriting does; one elsewhere (an
 * identity provider's sign-in, another site) is the backend's to choose and goes as it is.
 */
function routeLocations(exchange: McpExchange): void {
  const headers = backendResponse(exchange).headers;
  for (const name of ['location', 'content-location'] as const) {
    const value = headers[name];
    if (typeof value === 'string') headers[name] = routeLocation(value, confinedBackendUrl(exchange), exchange.state);
  }
}

function routeLocation(value: string, requested: string, state: Pick<RouteState, 'backendBase' | 'resource'>): string {
  let url: URL;
  try {
    url = new URL(value, requested);
  } catch {
    return value;
  }
  const { origin, basePath } = state.backendBase;
  if (url.origin !== origin) return value;
  const path = url.pathname;
  if (path !== basePath && !path.startsWith(`${basePath}/`)) return value;
  // A route at `/` has the resource `https://gateway/`, whose slash the rest of the path brings.
  const routeUrl = state.resource.endsWith('/') ? state.resource.slice(0, -1) : state.resource;
  return routeUrl + path.slice(basePath.length) + url.search + url.hash;
}

/** In order; the README table of src/proxy is checked against these names. */
export const httpRouteSteps: readonly ExchangeStep[] = [
  confineBackendPath,
  shared.authenticateCaller,
  checkContentLength,
  shared.forwardIdentity,
  capRequestBody,
  refuseTokenInFormBody,
  shared.forwardToBackend({ url: confinedBackendUrl }),
  refuseBackendUnauthorized,
  shared.concealBackendFailure,
];

export function httpRouteHandler(runtime: GatewayRuntime, state: RouteState) {
  return exchangeHandler(runtime, state, async function handleHttpRoute(exchange) {
    // The resource a REST call touched is what its audit is for: the path (`DELETE /api/users/42`), not the query
    // (which may carry anything), with a token written into the path cut out as the log does, and bounded.
    const { url } = exchange.request;
    const query = url.indexOf('?');
    exchange.draft.method = `${exchange.request.method} ${scrubUrl(query === -1 ? url : url.slice(0, query))}`;
    await runSteps(httpRouteSteps, exchange);
    routeLocations(exchange);
    await relayResponse(exchange.reply, backendResponse(exchange), exchange.draft, state.route, undefined, { keepLength: true });
  });
}
