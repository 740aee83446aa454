import type { Readable } from 'node:stream';
import { buildConnector, Client, Pool, errors as undiciErrors, type Dispatcher } from 'undici';
import { responseHeadersTimeoutMs, type RouteConfig } from '../config/schema.ts';
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
  /**
   * A stream open for minutes or hours (an MCP listen stream, a legacy HTTP+SSE event stream): it gets a connection of
   * its own, closed with it, not a client of the route's Pool.
   */
  ownConnection?: boolean;
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
  const originUrl = new URL(origin);
  const options = {
    // One connector for the Pool and every stream's own connection. Each undici client otherwise builds its own, with
    // its own TLS session cache (a stream's connection to an HTTPS backend could never resume a session: a full
    // handshake per stream) and a registry, a map and closures held for the stream's life. Connection options (TLS,
    // cached sessions, HTTP/2) belong in this call: a client or pool given a connector ignores its own.
    connect: buildConnector({ timeout: route.timeouts.connectMs }),
    headersTimeout: responseHeadersTimeoutMs(route),
    // Between body chunks: SSE streams carry keep-alive comments, so an idle stream this long is dead.
    bodyTimeout: route.timeouts.idleStreamMs,
    // Idle keep-alive connections are closed before most servers close theirs (uvicorn's 5 s, said by no header): a
    // request written to a connection its server was closing failed with a reset and became the client's 502. A
    // server that says how long it keeps them (Node's `Keep-Alive: timeout=5`) is believed, less undici's margin.
    keepAliveTimeout: 4_000,
    pipelining: 1,
  };
  // No cap on connections per backend: a POST answered with a long SSE stream holds one for the stream's life, so a
  // cap would make the request after it wait. Idle keep-alive sockets are reused first.
  const pool = new Pool(origin, options);
  // A long-lived stream (`ownConnection`) gets a connection of its own, closed with the stream. Through the Pool,
  // every stream added a client that the Pool kept after its connection closed (to reconnect it later): a burst of
  // 10,000 streams left 10,000 clients in it for the life of the process (a heap snapshot: ≈ 27 MB, every later major
  // GC longer). Everything else, a plain HTTP route's GETs included, keeps the Pool's keep-alive connections.
  const streams = new Set<Client>();
  const targets = createTargetCache();
  return {
    async send(input) {
      // A stream's own connection, or the Pool itself (with the URL split once per URL: undici's top-level
      // `request(url)` parses the URL and copies the options on every call).
      const own = input.ownConnection === true ? new Client(originUrl, options) : undefined;
      if (own) streams.add(own);
      const discard = () => {
        if (own && streams.delete(own)) void own.destroy().catch(() => undefined);
      };
      try {
        const target = targets.split(input.url);
        if (target.origin !== origin) throw new Error(`${route.path} forwards only to ${origin}`);
        const request = {
          path: target.path,
          method: input.method,
          headers: input.headers,
          body: input.body ?? null,
          signal: input.signal,
          reset: mayBeLeftUnread(input),
        };
        const response = await (own ?? pool).request(request).catch((error: unknown) => {
          if (own || !mayRetry(input, error)) throw error;
          return pool.request(request);
        });
        // Ended, failed or cancelled (the client went away): a stream's connection goes with it.
        if (own) response.body.on('close', discard);
        return { statusCode: response.statusCode, headers: response.headers, body: response.body };
      } catch (error) {
        discard();
        throw backendFailure(route, error);
      }
    },
    // Called once the server stopped accepting and its connections are gone: anything still in flight is orphaned.
    close: async () => {
      const open = [...streams];
      streams.clear();
      await Promise.all([pool.destroy(), ...open.map((client) => client.destroy())]);
    },
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

/**
 * Whether a request that failed on its connection may be sent again: a safe method (RFC 9110 §9.2.1: GET, HEAD,
 * OPTIONS), lost with its connection — typically a keep-alive connection its server closed as the request was written
 * (RFC 9112 §9.3.1 lets a client retry it). A safe request changes nothing, so one the backend did serve before the
 * connection died costs only the second answer. Not PUT or DELETE, though idempotent: sent again after it was served,
 * a DELETE answers 404 (an MCP session's binding then outlived the session). Never a POST: a tool call may have run.
 */
function mayRetry(input: BackendRequest, error: unknown): boolean {
  if (!SAFE_METHODS.has(input.method) || input.signal.aborted) return false;
  if (input.body !== undefined && input.body !== null && !Buffer.isBuffer(input.body)) return false;
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof undiciErrors.SocketError || code === 'ECONNRESET' || code === 'EPIPE';
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What of a refused answer's body is read to keep its connection for the next request; past either, it is cut. */
export const DISCARDED_BODY_LIMIT = { bytes: 64 * 1024, ms: 1_000 } as const;

/**
 * A backend answer the gateway refused (a 5xx concealed, a 401 to its identity, something that is not MCP): its body
 * is read off so the connection can serve the next request — but only so much, for so long. Resumed without a bound,
 * a backend streaming an endless body kept its connection and a core of the gateway busy after the client had its
 * 502, and one trickling a byte a second held the connection until the idle timeout (15 minutes by default).
 */
export function discardBody(body: Readable, limit: { bytes: number; ms: number } = DISCARDED_BODY_LIMIT): void {
  if (body.destroyed || body.readableEnded) return;
  let read = 0;
  const cut = () => {
    clearTimeout(timer);
    body.destroy();
  };
  const timer = setTimeout(cut, limit.ms);
  timer.unref();
  body.on('data', (chunk: Buffer) => {
    read += chunk.length;
    if (read > limit.bytes) cut();
  });
  body.on('close', () => clearTimeout(timer));
  // A late error of the cut or failed body is expected here: nobody else listens.
  body.on('error', () => {});
  body.resume();
}

/** Socket errors a backend connection fails with, raw (a stage that is not undici's passing them on). */
const BACKEND_SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'ECONNREFUSED']);

/**
 * A backend's answer failing as it streams (undici's `SocketError: other side closed`, a reset), reaching the error
 * handler before any byte of it went out: the backend failed, a 502 like any other backend failure (backendFailure),
 * not the gateway's own 500 with an "unexpected" line in its log. Undefined for an error that is no backend's.
 */
export function backendStreamFailure(route: Pick<RouteConfig, 'path'>, error: unknown): ProtocolError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (!(error instanceof undiciErrors.UndiciError) && !(typeof code === 'string' && BACKEND_SOCKET_ERRORS.has(code))) return undefined;
  return backendFailure(route, error);
}

export function backendFailure(route: Pick<RouteConfig, 'path'>, error: unknown): ProtocolError {
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.ConnectTimeoutError) {
    return new ProtocolError('gateway_timeout', `The backend of ${route.path} did not answer in time.`, { cause: error });
  }
  return new ProtocolError('bad_gateway', `The backend of ${route.path} failed or returned an invalid response.`, { cause: error });
}
