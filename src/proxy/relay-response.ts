import { Transform, type Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { RouteConfig } from '../config/schema.ts';
import { backendFailure, type BackendResponse } from './backend-client.ts';
import { clientResponseHeaders } from './forward-headers.ts';
import type { AuditDraft } from './request-audit.ts';

/**
 * Sends a backend response to the client as it arrives. `X-Accel-Buffering: no` tells nginx-style proxies in front
 * of the gateway not to buffer SSE; Node writes each chunk as it comes, so keep-alive comments and events are
 * passed on at once. When the client goes away the stream is destroyed, which aborts the undici request.
 *
 * One exception: a small body whose length the backend declared is already complete on the wire, so it is
 * collected and sent in one write with its length — holding it costs no latency, and it saves the chunked-encoding
 * writes (on loopback benchmarks, socket writes are a large share of the gateway's CPU).
 */
const SMALL_BODY_BYTES = 64 * 1024;

export async function relayResponse(
  reply: FastifyReply,
  response: BackendResponse,
  draft: AuditDraft,
  route: Pick<RouteConfig, 'path'>,
  body: Readable = response.body,
): Promise<FastifyReply> {
  const headers = clientResponseHeaders(response.headers);
  // The backend's own challenge would point the client at the wrong authorization server.
  delete headers['www-authenticate'];
  reply
    .code(response.statusCode)
    .headers(headers)
    .header('x-accel-buffering', 'no')
    .header('cache-control', headers['cache-control'] ?? 'no-store');

  const declared = Number(response.headers['content-length'] ?? Number.NaN);
  if (body === response.body && declared <= SMALL_BODY_BYTES) {
    let whole: Buffer;
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk as Buffer);
      whole = Buffer.concat(chunks);
    } catch (error) {
      throw backendFailure(route, error);
    }
    draft.bytesOut += whole.length;
    return reply.send(whole);
  }

  // Counted in a pass-through stage: a 'data' listener would start the flow before Fastify pipes the stream.
  const counted = body.pipe(
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        draft.bytesOut += chunk.length;
        callback(null, chunk);
      },
    }),
  );
  // pipe() does not forward errors or teardown: a dead backend stream must end the client's, and a gone client
  // must release the backend connection.
  for (const stage of new Set([response.body, body])) stage.once('error', (error) => counted.destroy(error));
  counted.once('close', () => {
    if (!response.body.destroyed) response.body.destroy();
  });
  return reply.send(counted);
}

export const mediaType = (headers: BackendResponse['headers']): string =>
  String(headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
