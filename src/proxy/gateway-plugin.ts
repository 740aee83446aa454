import { methodsToRefuse } from '../server/http-methods.ts';
import { answerPublicPreflights } from '../server/public-document-cors.ts';
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { RouteConfig } from '../config/schema.ts';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import type { ErrorFormat } from '../errors/render-error.ts';
import { sendProtocolError, storeOutageWarning, toProtocolError } from '../server/error-handler.ts';
import { StoreUnavailableError } from '../store/store.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { onKeyringChange } from '../keys/keyring.ts';
import { NO_TOKEN_DETAIL } from '../errors/bearer-challenge.ts';
import { NO_TOKEN_REASON } from '../records/audit.ts';
import { JSONRPC, McpGatewayError, requestJsonRpcBatchIds, requestJsonRpcId } from './gateway-error.ts';
import { HTTP_ROUTE_CORS, installCors, MCP_CORS } from './cors.ts';
import { createGatewayRuntime, type GatewayDeps, type GatewayRuntime } from './gateway-runtime.ts';

export type { GatewayDeps } from './gateway-runtime.ts';
import { httpRouteHandler } from './http-route.ts';
import { assertForwardingConfigured } from './identity-forwarding.ts';
import { LEGACY_MESSAGES_SUFFIX, LEGACY_SSE_SUFFIX, legacySseMessageHandler, legacySseStreamHandler } from './legacy-sse.ts';
import { buildProtectedResourceMetadata, PRM_PATH, resourceMetadataPath } from './protected-resource-metadata.ts';
import { auditDraft, startAudit } from './request-audit.ts';
import { decorateGatewayRequests } from './request-state.ts';
import { startRequestTrace } from './request-trace.ts';
import { createRouteState, withSlashMetadata, type RouteState } from './route-state.ts';
import { streamableHttpHandler } from './streamable-http.ts';
import { ConfigError } from '../config/config-error.ts';
import { backendStreamFailure } from './backend-client.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on gateway routes: the configured route path, for audit. */
    gatewayRoute?: string;
    /** Legacy `<route>/messages`: answers travel on the SSE stream, so a client never reads a 200 POST body. */
    legacyMessages?: boolean;
  }
}

/**
 * The MCP gateway as a Fastify plugin: the Protected Resource Metadata documents and, for every configured route,
 * its transports (Streamable HTTP and legacy HTTP+SSE) or its plain HTTP forwarding. Everything is built and
 * validated here, when the plugin is created, so a bad route fails at start rather than on the first request.
 */
export function createGatewayPlugin(ctx: GatehouseContext, deps: GatewayDeps): FastifyPluginAsync {
  const routes = ctx.config.routes;
  assertForwardingConfigured(routes, deps.broker);
  const paths = new Set<string>();
  for (const route of routes) {
    if (paths.has(route.path)) throw new ConfigError([`routes: ${route.path} is configured twice`]);
    paths.add(route.path);
  }
  const runtime = createGatewayRuntime(ctx, deps);
  const states = routes.map((route) => createRouteState(ctx.publicUrl, route, routes));

  return async function gatewayPlugin(app: FastifyInstance) {
    // Bodies are left unread for the handlers: MCP POSTs are read with a cap and deadline, HTTP routes stream.
    decorateGatewayRequests(app);
    app.removeAllContentTypeParsers();
    const leaveUnread = (_request: FastifyRequest, payload: unknown, done: (error: null, body: unknown) => void) => done(null, payload);
    // The same parser twice: Fastify caches the parser it finds for a Content-Type, except the catch-all `*`, for
    // which it parses the header anew on every request (≈ 3 µs of a POST). Every MCP POST is `application/json`.
    app.addContentTypeParser('application/json', leaveUnread);
    app.addContentTypeParser('*', leaveUnread);

    const now = () => ctx.clock.now();
    app.addHook('onRequest', (request, reply, done) => {
      const route = request.routeOptions.config.gatewayRoute;
      if (route) {
        // First: the trace ends (and names its id) before the audit record that carries the id is written.
        if (runtime.tracing.enabled) startRequestTrace(runtime.tracing, request, reply, route);
        startAudit(request, reply, runtime.audit, route, now);
      }
      done();
    });
    // Gateway requests failing in a store outage: a warning at most every 10 s, as the server's error handler gives.
    const warnStoreUnavailable = storeOutageWarning();
    // Returns nothing: the error is answered (or the response cut) inside, and a returned reply would make Fastify
    // wait on it (`reply.then`, see exchangeHandler in exchange.ts).
    app.setErrorHandler((error: FastifyError, request, reply) => {
      sendGatewayError(request, reply, error, warnStoreUnavailable);
    });
    // A revoked grant's open streams end with it (open-streams.ts); every other request is refused by the check. So do
    // a Streamable HTTP session's, on whichever replica (a legacy session's one stream is what ended it).
    const stopClosingStreams = deps.revokedGrants.onRevoked((grantId) => void runtime.openStreams.closeGrant(grantId));
    // A token of a key taken out of the set (`gatehouse keys revoke`) is refused from then on; its streams end too.
    const stopCuttingRevokedKeys = onKeyringChange(ctx.keyring, () => {
      const cut = runtime.openStreams.closeSignedByOtherKeys(new Set(ctx.keyring.signingKeys().map((key) => key.kid)));
      if (cut > 0) ctx.logger.warn({ streams: cut }, 'open streams cut: the key that signed their tokens left the key set');
    });
    // A replica that can no longer learn of grant ends refuses new requests (verify-access-token.ts) and cuts its open
    // streams: a grant ended during the outage went on streaming until the store came back.
    const stopCuttingWhenStale = deps.revokedGrants.onStale(() => {
      const cut = runtime.openStreams.closeAll('revocations cannot be checked');
      if (cut > 0) ctx.logger.warn({ streams: cut }, 'open streams cut: grant revocations cannot be checked (the store is out of reach)');
    });
    // A stream is one request, admitted under the route's required scopes of its time: a reload that raises them ends
    // the streams whose tokens lack one, as the next request of that token is refused.
    const stopRejudgingOnReload = deps.onReloaded?.(() => {
      const cut = runtime.openStreams.closeOutOfScope(new Map(routes.map((route) => [route.path, route.requiredScopes])));
      if (cut > 0) ctx.logger.info({ streams: cut }, 'open streams cut: a reload made their route require a scope their token lacks');
    });
    await runtime.sessions.start((kind, sessionId) => {
      if (kind === 'mcp-session') runtime.openStreams.closeSession(sessionId);
    });
    app.addHook('onClose', async () => {
      stopRejudgingOnReload?.();
      stopClosingStreams();
      stopCuttingWhenStale();
      stopCuttingRevokedKeys();
      runtime.stopFollowingKeys();
      await runtime.sessions.stop();
      await runtime.rateLimiter.stop();
      await Promise.all(states.map((state) => state.backend.close()));
      await runtime.audit.close();
    });

    registerResourceMetadata(app, ctx.publicUrl, routes);
    const mcpEndpoints = states.filter((state) => state.route.type !== 'http').flatMap((state) => registerRoute(app, runtime, state));
    const httpPaths = states.filter((state) => state.route.type === 'http').flatMap((state) => registerRoute(app, runtime, state).map((endpoint) => endpoint.url));
    // Each URL's preflight (and plain OPTIONS) names the methods that URL serves: `/sse` is GET only, `/messages` POST.
    const bySet = Map.groupBy(mcpEndpoints, (endpoint) => endpoint.serves.join(', '));
    const mcpPolicies = [...bySet].map(([serves, endpoints]) => ({ ...MCP_CORS, paths: endpoints.map((endpoint) => endpoint.url), methods: `${serves}, OPTIONS` }));
    installCors(app, [...mcpPolicies, { paths: httpPaths, ...HTTP_ROUTE_CORS }], runtime.isAllowedOrigin);
  };
}

/** Registers the PRM documents, readable (and preflighted) from any origin. */
function registerResourceMetadata(app: FastifyInstance, publicUrl: string, routes: readonly RouteConfig[]): void {
  const send = (route: RouteConfig, slash = false) => async (_request: FastifyRequest, reply: FastifyReply) =>
    // Public metadata: browser-based MCP clients fetch it cross-origin.
    reply.header('access-control-allow-origin', '*').header('cache-control', 'public, max-age=300').send(buildProtectedResourceMetadata(publicUrl, route, slash));
  const serve = (path: string, route: RouteConfig, slash = false) => {
    app.get(path, send(route, slash));
    // Not the MCP endpoints' Origin allow-list: the GET answers any origin, so must its preflight (an MCP client's
    // `MCP-Protocol-Version` makes the browser send one), or a browser client cannot discover the server.
    answerPublicPreflights(app, path, 'GET, HEAD, OPTIONS');
    // Any other method is a 405 naming the ones served (it was a 404, as if no document were there).
    app.route({ method: methodsToRefuse(app, ['GET'], ['HEAD', ...PREFLIGHT]), url: path, exposeHeadRoute: false, handler: refuseMethod('GET, HEAD, OPTIONS', 'metadata document') });
  };
  const paths = routes.flatMap((route) => {
    const path = resourceMetadataPath(route);
    serve(path, route);
    if (route.type !== 'mcp' || path.endsWith('/')) return [path];
    // The MCP URL with a trailing slash has its document under the same spelling (RFC 9728 §3.1 inserts the path as
    // given), naming that spelling as its `resource` (§3.3: identical to the URL the client derived it from).
    serve(`${path}/`, route, true);
    return [path, `${path}/`];
  });
  // The root document serves clients that only try the root well-known URL: it describes the first route (unless a
  // route at `/` already owns it).
  const first = routes[0];
  if (first && !paths.includes(PRM_PATH)) serve(PRM_PATH, first);
}

/** Registers a route's handlers; returns the URLs registered and the methods each serves (for CORS and OPTIONS). */
function registerRoute(app: FastifyInstance, runtime: GatewayRuntime, state: RouteState): Array<{ url: string; serves: readonly string[] }> {
  const { route } = state;
  const config = { gatewayRoute: route.path, errorFormat: (route.type === 'mcp' ? 'jsonrpc' : 'oauth-json') as ErrorFormat };
  if (route.type === 'http') {
    const handler = httpRouteHandler(runtime, state);
    // OPTIONS is the gateway's (CORS preflight): a preflight carries no token, so it could never reach the backend.
    const methods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
    const urls = [route.path, `${route.path.replace(/\/$/, '')}/*`];
    for (const url of urls) {
      app.route({ method: [...methods], url, config, handler });
      // Never forwarded: TRACE echoes the request (its headers, the token among them) back (cross-site tracing), and
      // the others (WebDAV's, QUERY) are no part of a REST API a gateway fronts.
      app.route({ config, method: methodsToRefuse(app, methods, PREFLIGHT), url, handler: refuseMethod([...methods, ...PREFLIGHT].join(', '), 'route') });
    }
    return urls.map((url) => ({ url, serves: methods }));
  }
  const urls: Array<{ url: string; serves: readonly string[] }> = [];
  // Fastify answers HEAD with a route's GET handler (`exposeHeadRoutes`): on a stream route that opened a backend
  // stream nobody would read or close, uncounted, until the idle timeout. MCP defines no HEAD: 405.
  const noHead = { config, exposeHeadRoute: false };
  // Any other method on an MCP endpoint is 405 naming the ones it serves (it was a 404, as if nothing were there),
  // whichever method Node's parser accepts (../server/app.ts makes them all routable).
  if (route.transports.includes('streamable-http')) {
    // The MCP URL with a trailing slash is the same endpoint (a URL pasted so was a 404 before any OAuth began, and
    // `resource` already takes both spellings): same handler, same resource, same tokens.
    for (const url of withTrailingSlash(route.path)) {
      // Its challenges name the document of the spelling the client called (whose `resource` is that spelling).
      const handler = streamableHttpHandler(runtime, url === route.path ? state : withSlashMetadata(state));
      app.route({ ...noHead, method: ['POST', 'GET', 'DELETE'], url, handler });
      app.route({ config, method: methodsToRefuse(app, ['GET', 'POST', 'DELETE'], PREFLIGHT), url, handler: refuseMethod('GET, POST, DELETE, OPTIONS') });
      urls.push({ url, serves: ['GET', 'POST', 'DELETE'] });
    }
  }
  if (route.transports.includes('sse')) {
    const base = route.path.replace(/\/$/, '');
    app.get(base + LEGACY_SSE_SUFFIX, noHead, legacySseStreamHandler(runtime, state));
    app.route({ config, method: methodsToRefuse(app, ['GET'], PREFLIGHT), url: base + LEGACY_SSE_SUFFIX, handler: refuseMethod('GET, OPTIONS') });
    app.post(base + LEGACY_MESSAGES_SUFFIX, { config: { ...config, legacyMessages: true } }, legacySseMessageHandler(runtime, state));
    app.route({ ...noHead, method: methodsToRefuse(app, ['POST'], PREFLIGHT), url: base + LEGACY_MESSAGES_SUFFIX, handler: refuseMethod('POST, OPTIONS') });
    urls.push({ url: base + LEGACY_SSE_SUFFIX, serves: ['GET'] }, { url: base + LEGACY_MESSAGES_SUFFIX, serves: ['POST'] });
  }
  return urls;
}

/** A path and, unless it is one already, its spelling with a trailing slash. */
const withTrailingSlash = (path: string): string[] => (path.endsWith('/') ? [path] : [path, `${path}/`]);

/** OPTIONS on a gateway URL is the CORS preflight's (cors.ts). */
const PREFLIGHT = ['OPTIONS'];

/** RFC 9110 §15.5.6: 405 names the methods the resource does support — OPTIONS among them, as OPTIONS's own `Allow` says. */
function refuseMethod(allow: string, what = 'MCP endpoint') {
  return async function refuseMethodRequest(request: FastifyRequest): Promise<never> {
    throw new ProtocolError('invalid_request', `${request.method} is not supported on this ${what}.`, { status: 405, headers: { allow } });
  };
}

/**
 * Why a refusal is audited: the error's code, `no token` for a request that sent none (records/audit.ts), and for
 * standard headers that disagree with the body (`Mcp-Method`, `Mcp-Name`) which one: a probe of the policy looks
 * like that, and read as a bare `invalid_request` it was one malformed request among many.
 */
const auditReasonOf = (error: ProtocolError): string => {
  if (error.code === 'invalid_token' && error.detail === NO_TOKEN_DETAIL) return NO_TOKEN_REASON;
  if (error.jsonRpcCode === JSONRPC.headerMismatch) return `${error.code}: ${error.message}`;
  return error.code;
};

/**
 * Errors on gateway routes go through the server's renderer; MCP routes answer with a JSON-RPC error carrying the
 * failing request's id, and the code the error names (the catalogue's, or a more precise one such as -32020).
 */
function sendGatewayError(request: FastifyRequest, reply: FastifyReply, error: unknown, warnStoreUnavailable: ReturnType<typeof storeOutageWarning>): FastifyReply {
  const format = request.routeOptions.config.errorFormat ?? 'oauth-json';
  // A backend's answer failing as it streams, before any byte of it went out, is the backend's failure (a 502).
  const route = request.routeOptions.config.gatewayRoute;
  const protocolError = toProtocolError(error) ?? (route === undefined ? undefined : backendStreamFailure({ path: route }, error));
  if (reply.raw.destroyed && !reply.raw.writableFinished) {
    // The client went away first, and the backend call failed because it was cancelled with it: a normal end
    // (audited `client_closed`), not a backend failure worth a warning.
    request.log.info({ outcome: 'client_closed' }, 'client closed the request');
    return reply;
  }
  if (!protocolError) {
    request.log.error({ err: error }, 'unexpected gateway error');
  } else if (protocolError.cause instanceof StoreUnavailableError) {
    warnStoreUnavailable({ request, code: protocolError.code, reason: protocolError.cause.detail });
  } else if (protocolError.status >= 500) {
    // Backend trouble is worth a warning with its cause (never shown to the client).
    request.log.warn({ errorCode: protocolError.code, detail: protocolError.detail, cause: (protocolError.cause as Error | undefined)?.message }, 'gateway error');
  } else {
    request.log.info({ errorCode: protocolError.code, status: protocolError.status, detail: protocolError.detail }, 'request rejected');
  }
  // The audit record says why (the overview groups denials by it): the error's code — `invalid_token`,
  // `insufficient_scope`, `forbidden_origin`, `rate_limited`, … — unless a step recorded a finer reason first.
  if (protocolError !== undefined) auditDraft(request).reason ??= auditReasonOf(protocolError);
  const rendered = whereNoAnswerIsRead(request, protocolError ?? new ProtocolError('server_error'));
  if (reply.sent || reply.raw.headersSent) {
    auditDraft(request).outcome = 'error';
    reply.raw.destroy();
    return reply;
  }
  const id = requestJsonRpcId(request) ?? null;
  return sendProtocolError(reply, rendered, { format, id, batchIds: requestJsonRpcBatchIds(request) });
}

/**
 * A refusal sent as a JSON-RPC error with HTTP 200 (a denied or blocked `tools/call`) is read by Streamable HTTP
 * clients, but a legacy HTTP+SSE client reads answers only from its stream and treats the POST's 200 as "accepted":
 * the refusal would be lost and the call hang until the client's timeout. There it keeps the catalogue's status,
 * which the client surfaces with the JSON-RPC body. So does a POST of notifications only (no id to answer): a server
 * answers none with a JSON-RPC response, and one it does not accept with an HTTP error status (MCP transports,
 * "Sending Messages to the Server"), where it was a 200 with an `id: null` error.
 *
 * @see MCP 2024-11-05 basic/transports §HTTP with SSE
 */
function whereNoAnswerIsRead(request: FastifyRequest, error: ProtocolError): ProtocolError {
  if (error.status !== 200) return error;
  const answersARequest = requestJsonRpcId(request) !== undefined || requestJsonRpcBatchIds(request) !== undefined;
  if (!request.routeOptions.config.legacyMessages && answersARequest) return error;
  return new McpGatewayError(error.code, error.jsonRpcCode, error.message, { headers: error.headers, detail: error.detail, cause: error.cause });
}
