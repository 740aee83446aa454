import { Transform, type Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import { ProtocolError } from '../server/errors.ts';
import { backendBase, backendUrlFor } from './backend-path.ts';
import { abortOnClientClose, authorizeRequest, backendHeaders, type GatewayRuntime } from './gateway-runtime.ts';
import { relayResponse } from './relay-response.ts';
import { auditDraft } from './request-audit.ts';
import type { RouteState } from './route-state.ts';

/**
 * Plain HTTP routes (`type: http`): a REST API behind the same tokens and identity forwarding as the MCP routes.
 * `/hello/x?y` on a route at `/hello` with backend `http://api:3001/v1` goes to `http://api:3001/v1/x?y`, and never
 * outside `/v1` (backend-path.ts). Bodies stream both ways; the gateway never reads them, but it counts the request
 * body against `server.bodyLimitBytes`.
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
    if (declaredLength !== undefined && Number(declaredLength) > limit) throw bodyTooLarge(limit);
    const headers = await backendHeaders(runtime, state, request, call);
    const incoming = request.body as Readable | undefined;
    const cap = cappedBody(limit, (bytes) => {
      draft.bytesIn += bytes;
    });
    const body = incoming?.pipe(cap.stream);
    // A declared length is passed on (it is within the limit); without one, undici sends the stream chunked.
    if (body && declaredLength !== undefined) headers['content-length'] = declaredLength;
    try {
      const response = await state.backend.send({
        url,
        method: request.method as Dispatcher.HttpMethod,
        headers,
        body: request.method === 'GET' || request.method === 'HEAD' ? null : (body ?? null),
        signal: abortOnClientClose(reply),
      });
      return relayResponse(reply, response, draft, state.route);
    } catch (error) {
      // The cap aborted the upload: undici reports a failed request, the client must learn its body was too large.
      throw cap.overflow() ?? error;
    }
  };
}

/** 413 with `Connection: close`: the refusal goes out while the body may still be arriving. */
function bodyTooLarge(limit: number): ProtocolError {
  return new ProtocolError('payload_too_large', `The request body is larger than ${limit} bytes.`, { headers: { connection: 'close' } });
}

/**
 * A pass-through that counts bytes and fails before forwarding the chunk that would cross `limit`, so a body without
 * (or lying about) `Content-Length` costs the backend at most `limit` bytes.
 */
function cappedBody(limit: number, onBytes: (bytes: number) => void): { stream: Transform; overflow: () => ProtocolError | undefined } {
  let size = 0;
  let refused: ProtocolError | undefined;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (size > limit) {
        refused = bodyTooLarge(limit);
        return callback(refused);
      }
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
  return { stream, overflow: () => refused };
}
