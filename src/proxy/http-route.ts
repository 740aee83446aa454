import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import { ProtocolError } from '../errors/protocol-error.ts';
import { checkDeclaredLength, limitRequestBody } from '../server/request-body.ts';
import { backendBase, backendUrlFor } from './backend-path.ts';
import { abortOnClientClose, authorizeRequest, backendHeaders, type GatewayRuntime } from './gateway-runtime.ts';
import { relayResponse } from './relay-response.ts';
import { auditDraft } from './request-audit.ts';
import type { RouteState } from './route-state.ts';

/**
 * Plain HTTP routes (`type: http`): a REST API behind the same tokens and identity forwarding as the MCP routes.
 * `/hello/x?y` on a route at `/hello` with backend `http://api:3001/v1` goes to `http://api:3001/v1/x?y`, and never
 * outside `/v1` (backend-path.ts). Bodies
 * stream both ways; the gateway never reads them, but it holds the request body to `server.bodyLimitBytes` and the
 * route's `requestBodyMs` as it streams (src/server/request-body.ts, the same cap and deadline as MCP POSTs).
 */
export function httpRouteHandler(runtime: GatewayRuntime, state: RouteState) {
  const base = backendBase(state.route.backend);
  const limit = runtime.ctx.config.server.bodyLimitBytes;
  return async function handleHttpRoute(request: FastifyRequest, reply: FastifyReply) {
    const draft = auditDraft(request);
    draft.method = `${request.method} ${state.route.path}`;
    // Before the token check: a path that leaves the route is refused whoever sends it.
    const url = backendUrlFor(base, state.route.path, request.url);
    const call = await authorizeRequest(runtime, state, request, draft, { rateLimit: true });
    const declaredLength = request.headers['content-length'];
    const limits = { limit, timeoutMs: state.route.timeouts.requestBodyMs, declaredLength };
    checkDeclaredLength(limits);
    const headers = await backendHeaders(runtime, state, request, call);
    const incoming = request.method === 'GET' || request.method === 'HEAD' ? undefined : (request.body as Readable | undefined);
    const body = incoming?.pipe(limitRequestBody(incoming, { ...limits, onBytes: (bytes) => void (draft.bytesIn += bytes) }));
    // A declared length is passed on (it is within the limit); without one, undici sends the stream chunked.
    if (body && declaredLength !== undefined) headers['content-length'] = declaredLength;
    try {
      const response = await state.backend.send({
        url,
        method: request.method as Dispatcher.HttpMethod,
        headers,
        body: body ?? null,
        signal: abortOnClientClose(reply),
      });
      return relayResponse(reply, response, draft, state.route);
    } catch (error) {
      // The cap or the deadline stopped the upload: undici reports a failed request, the client must learn why.
      if (body?.errored instanceof ProtocolError) throw body.errored;
      body?.destroy();
      throw error;
    }
  };
}
