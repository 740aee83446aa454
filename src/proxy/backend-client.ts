import type { Readable } from 'node:stream';
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import type { RouteConfig } from '../config/schema.ts';
import { ProtocolError } from '../errors/protocol-error.ts';

/**
 * Outbound HTTP to backends: one undici Pool per route (keep-alive connections are what keeps the added
 * latency small), with the route's timeouts, and failures mapped to gateway errors: unreachable, reset or unparsable
 * → 502, no headers in time → 504. Nothing from the backend's error (addresses, stack) reaches the client.
 */
export interface BackendResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

export interface BackendRequest {
  url: string;
  method: Dispatcher.HttpMethod;
  headers: Record<string, string>;
  body?: Buffer | Readable | null;
  signal: AbortSignal;
}

export interface BackendClient {
  send(input: BackendRequest): Promise<BackendResponse>;
  close(): Promise<void>;
}

export function createBackendClient(route: RouteConfig): BackendClient {
  // One Pool for the route's backend origin (every URL a route forwards to is on it: the backend URL, its paths, and
  // a legacy session's message URL, which legacy-sse.ts refuses on any other origin). Not an Agent: an Agent counts
  // the connections of the whole pool every time one of them closes, so closing n idle SSE streams cost n² steps —
  // after 10,000 streams the gateway spent tens of seconds of CPU and answered nothing meanwhile.
  const origin = new URL(route.backend).origin;
  const pool = new Pool(origin, {
    connectTimeout: route.timeouts.connectMs,
    headersTimeout: route.timeouts.responseHeadersMs,
    // Between body chunks: SSE streams carry keep-alive comments, so an idle stream this long is dead.
    bodyTimeout: route.timeouts.idleStreamMs,
    keepAliveTimeout: 30_000,
    // No cap on connections per backend: every open SSE stream holds one for its whole life, so a cap would make
    // the stream after it wait forever. Idle keep-alive sockets are reused first.
    pipelining: 1,
  });
  const targets = createTargetCache();
  return {
    async send(input) {
      try {
        // The Pool itself, with the URL split once per URL: undici's top-level `request(url)` parses the URL and
        // copies the options on every call.
        const target = targets.split(input.url);
        if (target.origin !== origin) throw new Error(`${route.path} forwards only to ${origin}`);
        const response = await pool.request({
          path: target.path,
          method: input.method,
          headers: input.headers,
          body: input.body ?? null,
          signal: input.signal,
          reset: mayBeLeftUnread(input),
        });
        return { statusCode: response.statusCode, headers: response.headers, body: response.body };
      } catch (error) {
        throw backendFailure(route, error);
      }
    },
    // Called once the server stopped accepting and its connections are gone: anything still in flight is orphaned.
    close: () => pool.destroy(),
  };
}

/**
 * Backend URLs split into origin and path, remembered: a route's backend URL is the same on every request (a legacy
 * session's message URL for the session's life). Bounded; emptied when full.
 */
const TARGET_CACHE_SIZE = 1024;

function createTargetCache() {
  const cache = new Map<string, { origin: string; path: string }>();
  return {
    split(url: string): { origin: string; path: string } {
      let target = cache.get(url);
      if (target) return target;
      const parsed = new URL(url);
      target = { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
      if (cache.size >= TARGET_CACHE_SIZE) cache.clear();
      cache.set(url, target);
      return target;
    },
  };
}

/**
 * A body the backend may answer without reading — a refusal at its own smaller body limit (413), or before
 * authentication — would leave its unread rest on the connection, and the next request on it (any client's) would be
 * read as part of it: it hangs, then fails when the backend gives the connection up. From the gateway nothing tells a
 * read body from one merely accepted by the socket buffers (megabytes on a fast link), so the connection that
 * carried a large body, or a streamed body of unknown length, is closed after its exchange (`Connection: close`,
 * RFC 9112 §9.6) instead of going back to the pool. Small bodies arrive with their headers and stay pooled.
 */
const POOLED_BODY_MAX_BYTES = 64 * 1024;

function mayBeLeftUnread(input: BackendRequest): boolean {
  const { body } = input;
  if (body === undefined || body === null) return false;
  if (Buffer.isBuffer(body)) return body.length > POOLED_BODY_MAX_BYTES;
  const declared = Number(input.headers['content-length'] ?? Number.NaN);
  return !(declared <= POOLED_BODY_MAX_BYTES);
}

export function backendFailure(route: Pick<RouteConfig, 'path'>, error: unknown): ProtocolError {
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.ConnectTimeoutError) {
    return new ProtocolError('gateway_timeout', `The backend of ${route.path} did not answer in time.`, { cause: error });
  }
  return new ProtocolError('bad_gateway', `The backend of ${route.path} failed or returned an invalid response.`, { cause: error });
}
