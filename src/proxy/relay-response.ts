import { Readable, Transform } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { RouteConfig } from '../config/schema.ts';
import { backendFailure, type BackendResponse } from './backend-client.ts';
import { clientResponseHeaders, namesContentCoding } from './forward-headers.ts';
import type { AuditDraft } from './request-audit.ts';
import { SseEventTooLargeError } from './sse-events.ts';
import { mediaTypeOf } from '../protocol/media-type.ts';

/**
 * Sends a backend response to the client as it arrives. `X-Accel-Buffering: no` tells nginx-style proxies in front
 * of the gateway not to buffer SSE; Node writes each chunk as it comes, so keep-alive comments and events are
 * passed on at once. When the client goes away the stream is destroyed, which aborts the undici request.
 *
 * One exception: a body that is one message, not a stream — a declared length, or `application/json` (a single
 * JSON-RPC response, which the SDKs send chunked) — is collected while it stays small and sent in one write with its
 * length. A caller whose answers are messages unless they are SSE (an MCP message POST, whose other answer is a
 * `202 Accepted` ack the backends send chunked) says so with `oneMessageUnlessSse`; a plain HTTP route does not,
 * since its backend may stream any type. Holding it costs no latency (a message is useless to the client until
 * complete), and it saves the chunked-encoding writes: the profile of the benchmark shows socket writes as the
 * largest share of the gateway's CPU, and a streamed response costs a write for its headers and one for its final
 * chunk besides the body's. A body that outgrows the limit is streamed on, starting with what was collected.
 */
const SMALL_BODY_BYTES = 64 * 1024;

// Listeners here (and on the response elsewhere in src/proxy) are added with `on`, not `once`, for events a stream or
// response emits once at most ('pipe', 'close', 'error'): `once` wraps each in a closure and a state object, which an
// open SSE stream holds for its whole life.

export async function relayResponse(
  reply: FastifyReply,
  response: BackendResponse,
  draft: AuditDraft,
  route: Pick<RouteConfig, 'path'>,
  body: Readable = response.body,
  options: { bytesCounted?: boolean; oneMessageUnlessSse?: boolean; keepLength?: boolean } = {},
): Promise<void> {
  const headers = clientResponseHeaders(response.headers);
  // A body relayed as it is keeps its declared length (a plain HTTP route: nothing there rewrites a body): without
  // it, a HEAD answered `Content-Length: 0` for a resource of any size, and a large download came chunked, with no
  // size for progress or for a client's check that it arrived whole.
  const declaredLength = response.headers['content-length'];
  if (options.keepLength === true && typeof declaredLength === 'string' && /^\d{1,15}$/.test(declaredLength)) headers['content-length'] = declaredLength;
  // The backend's own challenge would point the client at the wrong authorization server.
  delete headers['www-authenticate'];
  // Set only once the answer goes out: a body that fails while it is collected becomes the gateway's 502, which must
  // carry nothing of the backend's (its `X-Debug`, its `Location`).
  const answer = () =>
    reply
      .code(response.statusCode)
      .headers(headers)
      .header('x-accel-buffering', 'no')
      .header('cache-control', headers['cache-control'] ?? 'no-store');

  const declared = Number(response.headers['content-length'] ?? Number.NaN);
  const type = mediaType(response.headers);
  const oneMessage =
    declared <= SMALL_BODY_BYTES ||
    (Number.isNaN(declared) && (type === 'application/json' || (options.oneMessageUnlessSse === true && type !== 'text/event-stream')));
  if (body === response.body && oneMessage) {
    let collected: { whole: Buffer } | { head: Buffer[] };
    try {
      collected = await collectSmall(body, SMALL_BODY_BYTES);
    } catch (error) {
      throw backendFailure(route, error);
    }
    answer();
    if ('whole' in collected) {
      draft.bytesOut += collected.whole.length;
      // No body (a 202 to a notification): sent as none, or Fastify would give a Buffer its default
      // `application/octet-stream`, a type the backend never sent.
      if (collected.whole.length === 0) reply.send();
      else reply.send(collected.whole);
      return;
    }
    body = Readable.from(prepend(collected.head, response.body));
  } else {
    answer();
  }

  // A transforming stage of the caller's that already counts `bytesOut` is sent as it is: one pass-through stage
  // less per SSE event (the legacy stream's endpoint rewriter counts what it passes).
  if (options.bytesCounted && body !== response.body) {
    const last = body;
    response.body.on('error', (error) => {
      streamFailed(draft, error);
      last.destroy(error);
    });
    last.on('error', (error) => streamFailed(draft, error));
    last.on('close', () => {
      if (!response.body.destroyed) response.body.destroy();
    });
    sendStream(reply, last);
    return;
  }

  // The backend's own stream goes to the client as it is: no pass-through stage, so an idle SSE stream costs the
  // sockets and little else. Fastify pipes it into the response, ends it when the client goes away (which aborts the
  // undici request) and cuts the response when it fails; the bytes are counted by a 'data' listener added when the
  // pipe starts (earlier, it would start the flow before anyone reads).
  if (body === response.body) {
    const backendBody = body;
    backendBody.on('error', (error) => {
      // The backend's stream failed while the client was still there: the gateway cuts the response, an error. (When
      // the client left first, its audit record is already written as `client_closed`.)
      streamFailed(draft, error);
    });
    reply.raw.on('pipe', () => backendBody.on('data', (chunk: Buffer) => (draft.bytesOut += chunk.length)));
    sendStream(reply, backendBody);
    return;
  }

  // A stage of the caller's (a rewritten or filtered SSE stream) is counted in one more pass-through stage.
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
  for (const stage of new Set([response.body, body])) {
    stage.on('error', (error) => {
      streamFailed(draft, error);
      counted.destroy(error);
    });
  }
  counted.on('close', () => {
    if (!response.body.destroyed) response.body.destroy();
  });
  sendStream(reply, counted);
}

/**
 * A relayed stream that failed is an error in the audit, and where the gateway itself refused what the backend sent
 * (an SSE event past the bound the screens hold: sse-events.ts) the record says so; it had no reason, and only the
 * warn log knew why the client's stream was cut after its headers.
 */
function streamFailed(draft: AuditDraft, error: unknown): void {
  draft.outcome ??= 'error';
  if (error instanceof SseEventTooLargeError) draft.reason ??= `backend stream refused: ${error.message}`;
}

/**
 * Node holds a response's headers back until its first body byte: an SSE stream whose backend has nothing to say
 * yet would leave the client without even a status, and clients time out. So once Fastify starts piping (it has set
 * the headers by then) the headers go out on their own if no body byte has followed within
 * HEADERS_ALONE_AFTER_MS; an answer whose first event is already there, or comes soon (a quick tool call over SSE),
 * sends its headers in the same write as that event. Flushing them at once cost a socket write of their own per
 * SSE answer, 8.6 % of the gateway's busy time in the benchmark's SSE profile.
 */
export const HEADERS_ALONE_AFTER_MS = 25;

function sendStream(reply: FastifyReply, body: Readable): void {
  reply.raw.on('pipe', () => {
    if (body.readableLength > 0) return;
    // Not cleared when the first byte goes out or the client leaves: it fires once, soon, and then does nothing; a
    // 'close' listener per stream would cost more.
    setTimeout(() => {
      if (!reply.raw.headersSent && !reply.raw.destroyed) reply.raw.flushHeaders();
    }, HEADERS_ALONE_AFTER_MS);
  });
  reply.send(body);
}

/**
 * Reads `body` to its end unless it grows past `limit`; then returns what was read, with the stream paused (the rest
 * is still unread). Listeners, not an async iterator: this runs on every JSON answer, and an iterator costs an
 * end-of-stream watcher and a promise per chunk.
 */
function collectSmall(body: Readable, limit: number): Promise<{ whole: Buffer } | { head: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= limit) return;
      body.pause();
      stop();
      resolve({ head: chunks });
    };
    const onEnd = () => {
      stop();
      resolve({ whole: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    // 'end' comes before 'close' on a complete body; a close without it is a cut answer.
    const onClose = () => onError(new Error('the backend answer was cut before its end'));
    // `on`, not `once`: stop() removes them all, and `once` would wrap each in a closure of its own.
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('close', onClose);
  });
}

async function* prepend(head: Buffer[], rest: Readable): AsyncGenerator<Buffer> {
  yield* head;
  for await (const chunk of rest) yield chunk as Buffer;
}

/** The media type of a response, lowercased and without parameters (`text/event-stream`, `application/json`). */
export function mediaType(headers: BackendResponse['headers']): string {
  return mediaTypeOf(headers['content-type']);
}

/**
 * Whether a response body is in a content coding (gzip, br …). The gateway asks every backend for `identity`
 * (forward-headers.ts); an answer it must read (a `tools/list` to screen, the legacy stream's `endpoint` event) that
 * comes compressed anyway cannot be read, and is a 502 rather than passed on unread.
 */
export function isContentCoded(headers: BackendResponse['headers']): boolean {
  return namesContentCoding(headers['content-encoding']);
}
