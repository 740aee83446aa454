import { Transform, type Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import { abortOnClientClose, authorizeRequest, backendHeaders, type GatewayRuntime } from './gateway-runtime.ts';
import { relayResponse } from './relay-response.ts';
import { auditDraft } from './request-audit.ts';
import type { RouteState } from './route-state.ts';

/**
 * Plain HTTP routes (`type: http`): a REST API behind the same tokens and identity forwarding as the MCP routes.
 * `/hello/x?y` on a route at `/hello` with backend `http://api:3001/v1` goes to `http://api:3001/v1/x?y`. Bodies
 * stream both ways; the gateway never reads them.
 */
export function httpRouteHandler(runtime: GatewayRuntime, state: RouteState) {
  const backend = new URL(state.route.backend);
  const basePath = backend.pathname.replace(/\/$/, '');
  return async function handleHttpRoute(request: FastifyRequest, reply: FastifyReply) {
    const draft = auditDraft(request);
    draft.method = `${request.method} ${state.route.path}`;
    const call = await authorizeRequest(runtime, state, request, draft, { rateLimit: true });
    const suffix = request.url.slice(state.route.path.length);
    const url = `${backend.origin}${basePath}${suffix.startsWith('/') || suffix.startsWith('?') || suffix === '' ? suffix : `/${suffix}`}`;
    const headers = await backendHeaders(runtime, state, request, call);
    const incoming = request.body as Readable | undefined;
    const body = incoming?.pipe(
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          draft.bytesIn += chunk.length;
          callback(null, chunk);
        },
      }),
    );
    if (body) {
      // Streaming a body with unknown length: undici sends it chunked.
      const length = request.headers['content-length'];
      if (length !== undefined) headers['content-length'] = length;
    }
    const response = await state.backend.send({
      url,
      method: request.method as Dispatcher.HttpMethod,
      headers,
      body: request.method === 'GET' || request.method === 'HEAD' ? null : (body ?? null),
      signal: abortOnClientClose(reply),
    });
    return relayResponse(reply, response, draft, state.route);
  };
}
