import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthInfo } from '@modelcontextprotocol/server';
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
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
 * plus the same capabilities as plain HTTP endpoints under `/api`. It trusts nothing but the gateway: every request
 * must carry the gateway's identity assertion (or, in `obo` mode, a Graph token Graph accepts), and the user's
 * identity comes from there, never from tool arguments.
 *
 * The two surfaces are kept apart. The MCP endpoints (`/mcp`, `/sse`, `/messages`) accept only assertions minted for
 * an MCP route, the REST endpoints (`/api/…`) only assertions minted for a plain HTTP route: the gateway enforces
 * per-tool policy and filters `tools/list` on MCP routes only, so an assertion from an HTTP route must never reach
 * the tools (docs/security.md, "HTTP routes and MCP backends").
 */
/** Base path of the REST endpoints: a plain HTTP route forwards here (`backend: http://host:port/api`), never to `/`. */
export const REST_BASE_PATH = '/api';
/** Every path this server answers (the MCP transports and the REST endpoints): what its request log shows as it is. */
const SERVED_PATHS = new Set(['/mcp', '/sse', '/messages', ...['/hello', '/echo', '/tools', '/me', '/status'].map((endpoint) => `${REST_BASE_PATH}${endpoint}`)]);
const MCP_PATHS: ReadonlySet<string> = new Set(['/mcp', '/sse', '/messages']);

export interface GraphServerOptions {
  port: number;
  host?: string;
  /** The gateway's issuer (its public URL). */
  gatewayIssuer: string;
  /**
   * The resource URL(s) at the gateway of the MCP routes that forward here, e.g. `https://gatehouse.example.com/mcp`:
   * the audiences accepted on the MCP endpoints, and only there.
   */
  audience: string | string[];
  /**
   * The resource URL(s) of the plain HTTP routes that forward to `/api`, e.g. `https://gatehouse.example.com/graph`:
   * the audiences accepted on the REST endpoints, and only there. Without it, the REST endpoints refuse every
   * assertion.
   */
  httpAudience?: string | string[];
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
  let verifiers: Record<Surface, CallerVerifier>;
  let deps: CapabilityDeps;
  if (options.tokenSource === 'broker') {
    if (!options.broker) throw new Error('tokenSource "broker" needs broker.tokenUrl and client credentials');
    verifiers = surfaceVerifiers(options);
    const tokenSource = createBrokerTokenSource({
      resource: GRAPH_AUDIENCE,
      scope: `${GRAPH_AUDIENCE}/User.Read`,
      ...options.broker,
      logger,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    deps = { graph, tokenSource, tokenSourceKind: 'broker' };
  } else {
    // A Graph token names no gateway route, so it cannot tell the surfaces apart (README: run obo mode privately).
    const verifier = createGraphTokenVerifier({ graph });
    verifiers = { mcp: verifier, http: verifier };
    deps = { graph, tokenSource: createOboTokenSource(), tokenSourceKind: 'obo' };
  }
  const transports = createMcpTransports(deps, logger);

  async function authenticate(req: IncomingMessage, path: string): Promise<CallerIdentity> {
    return verifiers[surfaceOf(path)].verify(req.headers.authorization);
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
    // The path is not echoed: a client may put anything there, a token included.
    if (!path.startsWith(`${REST_BASE_PATH}/`)) return sendJson(res, 404, { error: 'not_found', error_description: `No such endpoint for ${method}.` });
    const endpoint = path.slice(REST_BASE_PATH.length);
    if (endpoint === '/hello' && (method === 'GET' || method === 'POST')) {
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
    if (endpoint === '/echo' && method === 'POST') {
      // The exact bytes back, with the caller's content type: a debugging aid, so nothing is parsed or rewritten.
      const body = await readBody(req, maxBodyBytes);
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
      return;
    }
    if (endpoint === '/tools' && method === 'GET') return sendJson(res, 200, { tools: toolList() });
    if (endpoint === '/me' && method === 'GET') return sendJson(res, 200, await graphUserDetails(deps, caller));
    if (endpoint === '/status' && method === 'GET') return sendJson(res, 200, status(deps, caller));
    // The path is not echoed (a client may put a token in it); the endpoints are named below the REST base, as a
    // caller through a gateway route sees them (`/graph/me`, not this server's `/api/me`).
    return sendJson(res, 404, { error: 'not_found', error_description: `No such endpoint for ${method}: the REST endpoints are GET /me, GET|POST /hello, POST /echo, GET /tools and GET /status.` });
  }

  const server = createServer((req, res) => {
    const controller = new AbortController();
    res.on('close', () => controller.abort());
    // The path alone, against a fixed base: a request target such as `//x` or a Host header no URL can hold (`a b`)
    // must be a 400, not an exception thrown outside any handler (which ends the process).
    const url = URL.parse(`http://localhost${req.url?.startsWith('/') ? req.url : '/'}`);
    if (url === null) return sendJson(res, 400, { error: 'invalid_request', error_description: 'The request URL is malformed.' });
    void (async () => {
      let caller: CallerIdentity | undefined;
      try {
        caller = await authenticate(req, url.pathname);
        await route(req, res, url, caller, controller.signal);
      } catch (error) {
        respondWithError(res, error, logger);
      } finally {
        // Only a path this server serves is logged as it is: a client may put anything in one, a token included.
        logger.info({ method: req.method, path: SERVED_PATHS.has(url.pathname) ? url.pathname : '(another path)', status: res.statusCode, subject: caller?.subject }, 'request');
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

type Surface = 'mcp' | 'http';

function surfaceOf(path: string): Surface {
  return MCP_PATHS.has(path) ? 'mcp' : 'http';
}

/** One assertion verifier per surface, sharing the gateway's key set; an audience may belong to one surface only. */
function surfaceVerifiers(options: GraphServerOptions): Record<Surface, CallerVerifier> {
  const mcpAudience = [options.audience].flat();
  const httpAudience = [options.httpAudience ?? []].flat();
  const shared = mcpAudience.find((audience) => httpAudience.includes(audience));
  if (shared) throw new Error(`${shared} is given as both an MCP and an HTTP audience: a route forwards to one surface only`);
  const jwks = options.jwks ?? createRemoteJWKSet(new URL(options.jwksUrl));
  const common = { gatewayIssuer: options.gatewayIssuer, jwksUrl: options.jwksUrl, jwks };
  return {
    mcp: createAssertionVerifier({ ...common, audience: mcpAudience }),
    http: httpAudience.length > 0 ? createAssertionVerifier({ ...common, audience: httpAudience }) : refuseEveryCaller('This server accepts no assertion on its HTTP endpoints.'),
  };
}

function refuseEveryCaller(message: string): CallerVerifier {
  return {
    async verify() {
      throw new CallerRejectedError(message);
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
    // The REST endpoints answer a step-up as the MCP endpoint does (step-up-preflight.ts) and as Graph itself does under
    // continuous access evaluation: the gateway turns this challenge into its own, and the client re-authorizes.
    if (error.status === 401) {
      const description = 'Microsoft Graph needs the user to sign in again.';
      return sendJson(res, 401, { error: 'insufficient_claims', error_description: description }, { 'www-authenticate': `Bearer error="insufficient_claims", error_description="${description}"` });
    }
    // A 503 says when to come back, as the gateway's own do.
    return sendJson(res, error.status, { error: 'downstream_error', error_description: error.message }, error.status === 503 ? { 'retry-after': '5' } : {});
  }
  if (error instanceof BodyTooLargeError) return sendJson(res, 413, { error: 'payload_too_large', error_description: 'The request body is too large.' });
  logger.error({ reason: error instanceof Error ? error.name : typeof error }, 'unexpected error');
  return sendJson(res, 500, { error: 'server_error', error_description: 'Unexpected error; see the server log.' });
}
