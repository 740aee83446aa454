import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthInfo } from '@modelcontextprotocol/server';
import type { JWTVerifyGetKey } from 'jose';
import { pino, type Logger } from 'pino';
import {
  capabilitySchemas,
  CapabilityError,
  graphUserDetails,
  hello,
  status,
  toolList,
  type CapabilityDeps,
} from './capabilities.ts';
import { CallerRejectedError, createAssertionVerifier, createGraphTokenVerifier, type CallerIdentity, type CallerVerifier } from './caller-identity.ts';
import { createGraphClient } from './graph-client.ts';
import { createBrokerTokenSource, createOboTokenSource, type BrokerClientOptions } from './graph-token-source.ts';
import { CALLER_KEY } from './mcp-tools.ts';
import { createMcpTransports } from './mcp-transports.ts';
import { BodyTooLargeError, readBody, sendJson, sendWebResponse, toWebRequest } from './web-bridge.ts';

/**
 * The sample backend behind Gatehouse: an MCP server (tools `get_graph_user_details`, `hello`, `echo`, `status`, `me`)
 * plus the same capabilities as plain HTTP endpoints. It trusts nothing but the gateway: every request must carry the
 * gateway's identity assertion (or, in `obo` mode, a Graph token Graph accepts), and the user's identity comes from
 * there, never from tool arguments.
 */
export interface GraphServerOptions {
  port: number;
  host?: string;
  /** The gateway's issuer (its public URL). */
  gatewayIssuer: string;
  /**
   * This server's resource URL(s) at the gateway: the public URL of each route that forwards to it, e.g.
   * `https://gatehouse.example.com/mcp` and, for the plain HTTP endpoints, `https://gatehouse.example.com/graph`.
   */
  audience: string | string[];
  /** `${gatewayIssuer}/jwks`. */
  jwksUrl: string;
  /** `https://graph.microsoft.com`, or the local demo directory API. */
  graphBaseUrl: string;
  tokenSource: 'broker' | 'obo';
  broker?: Omit<BrokerClientOptions, 'resource' | 'scope'> & Partial<Pick<BrokerClientOptions, 'resource' | 'scope'>>;
  logger?: Logger;
  /** Outbound HTTP (gateway token endpoint, Graph); tests may pass their own. */
  fetch?: typeof globalThis.fetch;
  /** Waits for Graph's `Retry-After`; injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  maxRetryAfterMs?: number;
  maxBodyBytes?: number;
  /** Verification keys instead of fetching `jwksUrl` (tests). */
  jwks?: JWTVerifyGetKey;
}

export interface RunningGraphServer {
  url: string;
  close(): Promise<void>;
}

const GRAPH_AUDIENCE = 'https://graph.microsoft.com';

export async function startGraphServer(options: GraphServerOptions): Promise<RunningGraphServer> {
  const logger = options.logger ?? pino({ name: 'graph-server' });
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const graph = createGraphClient({
    baseUrl: options.graphBaseUrl,
    logger,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.sleep ? { sleep: options.sleep } : {}),
    ...(options.maxRetryAfterMs !== undefined ? { maxRetryAfterMs: options.maxRetryAfterMs } : {}),
  });
  let verifier: CallerVerifier;
  let deps: CapabilityDeps;
  if (options.tokenSource === 'broker') {
    if (!options.broker) throw new Error('tokenSource "broker" needs broker.tokenUrl and client credentials');
    verifier = createAssertionVerifier({ gatewayIssuer: options.gatewayIssuer, audience: options.audience, jwksUrl: options.jwksUrl, ...(options.jwks ? { jwks: options.jwks } : {}) });
    const tokenSource = createBrokerTokenSource({
      resource: GRAPH_AUDIENCE,
      scope: `${GRAPH_AUDIENCE}/User.Read`,
      ...options.broker,
      logger,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    deps = { graph, tokenSource, tokenSourceKind: 'broker' };
  } else {
    verifier = createGraphTokenVerifier({ graph });
    deps = { graph, tokenSource: createOboTokenSource(), tokenSourceKind: 'obo' };
  }
  const transports = createMcpTransports(deps, logger);

  async function authenticate(req: IncomingMessage): Promise<CallerIdentity> {
    return verifier.verify(req.headers.authorization);
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL, caller: CallerIdentity, abort: AbortSignal): Promise<void> {
    const authInfo: AuthInfo = {
      // The SDK's field is for an access token; the credential is kept out of it so no SDK path can echo it.
      token: 'verified-gateway-identity',
      clientId: caller.clientId ?? 'unknown',
      scopes: caller.scopes,
      extra: { [CALLER_KEY]: caller },
    };
    const method = req.method ?? 'GET';
    const path = url.pathname;

    if (path === '/mcp' && ['GET', 'POST', 'DELETE'].includes(method)) {
      const body = method === 'POST' ? await readBody(req, maxBodyBytes) : undefined;
      const response = await transports.handleStreamableHttp(toWebRequest(req, url.origin, body, abort), body, caller.subject, authInfo);
      return sendWebResponse(res, response);
    }
    if (path === '/sse' && method === 'GET') return transports.openSseStream(res, caller.subject);
    if (path === '/messages' && method === 'POST') {
      return transports.postSseMessage(req, res, url, await readBody(req, maxBodyBytes), caller.subject, authInfo);
    }
    if (path === '/hello' && (method === 'GET' || method === 'POST')) {
      let input: unknown = { name: url.searchParams.get('name') ?? undefined };
      if (method === 'POST') {
        const text = (await readBody(req, maxBodyBytes)).toString('utf8');
        try {
          input = text.trim() === '' ? {} : JSON.parse(text);
        } catch {
          return sendJson(res, 400, { error: 'invalid_request', error_description: 'The body must be JSON, e.g. {"name":"Ada"}.' });
        }
      }
      const parsed = capabilitySchemas.hello.input.safeParse(input);
      if (!parsed.success) return sendJson(res, 400, { error: 'invalid_request', error_description: '`name` must be a string of at most 200 characters.' });
      return sendJson(res, 200, hello(caller, parsed.data.name));
    }
    if (path === '/echo' && method === 'POST') {
      // The exact bytes back, with the caller's content type: a debugging aid, so nothing is parsed or rewritten.
      const body = await readBody(req, maxBodyBytes);
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    if (path === '/tools' && method === 'GET') return sendJson(res, 200, { tools: toolList() });
    if (path === '/me' && method === 'GET') return sendJson(res, 200, await graphUserDetails(deps, caller));
    if (path === '/status' && method === 'GET') return sendJson(res, 200, status(deps, caller));
    return sendJson(res, 404, { error: 'not_found', error_description: `No endpoint ${method} ${path}.` });
  }

  const server = createServer((req, res) => {
    const controller = new AbortController();
    res.on('close', () => controller.abort());
    // The path alone, against a fixed base: a request target such as `//x` or a Host header that is not a host
    // must be a 400, not an exception thrown outside any handler (which ends the process).
    const url = URL.parse(`http://localhost${req.url?.startsWith('/') ? req.url : '/'}`);
    if (url === null) return sendJson(res, 400, { error: 'invalid_request', error_description: 'The request URL is malformed.' });
    void (async () => {
      let caller: CallerIdentity | undefined;
      try {
        caller = await authenticate(req);
        await route(req, res, url, caller, controller.signal);
      } catch (error) {
        respondWithError(res, error, logger);
      } finally {
        logger.info({ method: req.method, path: url.pathname, status: res.statusCode, subject: caller?.subject }, 'request');
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', resolve);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    async close() {
      await transports.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function respondWithError(res: ServerResponse, error: unknown, logger: Logger): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  if (error instanceof CallerRejectedError) {
    const headers: Record<string, string> =
      error.status === 401 ? { 'www-authenticate': `Bearer error="invalid_token", error_description="${error.message}"` } : { 'retry-after': '5' };
    return sendJson(res, error.status, { error: error.status === 401 ? 'invalid_token' : 'temporarily_unavailable', error_description: error.message }, headers);
  }
  if (error instanceof CapabilityError) {
    return sendJson(res, error.status, { error: error.status === 401 ? 'interaction_required' : 'downstream_error', error_description: error.message });
  }
  if (error instanceof BodyTooLargeError) return sendJson(res, 413, { error: 'payload_too_large', error_description: 'The request body is too large.' });
  logger.error({ reason: error instanceof Error ? error.name : typeof error }, 'unexpected error');
  return sendJson(res, 500, { error: 'server_error', error_description: 'Unexpected error; see the server log.' });
}
