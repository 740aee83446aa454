import { METHODS, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { fastify, LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import { createFrameworkErrorHandler, installErrorHandler } from './error-handler.ts';
import { handleClientError, refuseConnect } from './client-errors.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { registerHealthRoutes, type ReadinessCheck } from './health.ts';
import { refuseRepeatedHeaders } from './repeated-headers.ts';
import { logRequestCompleted } from './logger.ts';
import type { Logger } from 'pino';
import { createRequestIdGenerator, requestIdHeader } from './request-id.ts';
import { installSecurityHeaders, unhookedResponseHeaders, type SecurityHeadersOptions } from './security-headers.ts';
import { readFileSync } from 'node:fs';
import { STYLESHEET_PATH } from '../web/html.ts';
import { BRANDING_STYLESHEET_PATH } from '../web/branding.ts';
import { brandingImageOrigins, brandingStylesheet } from './branding-assets.ts';

/** The methods routes may be registered for beyond Fastify's own (see buildServer). */
const EXTRA_METHODS = METHODS.filter((method) => method !== 'CONNECT');

const pageStylesheet = readFileSync(new URL('../web/gatehouse.css', import.meta.url), 'utf8');

/**
 * The HTTP server every part of Gatehouse is mounted on.
 *
 * Parts (authorization server, MCP proxy, admin, demo stand-ins) are ordinary Fastify plugins passed in
 * `options.plugins`, registered in order after the shared behaviour below. A part that needs the context closes over
 * it: `plugins: [authorizationServer(ctx), mcpProxy(ctx)]`. Each plugin inherits the error handler, so its handlers
 * just throw ProtocolError; a route chooses how errors render with `config: { errorFormat: 'jsonrpc' | 'html' }`.
 */

export interface BuildServerOptions {
  plugins?: FastifyPluginAsync[];
  /** Readiness checks added to `/readyz` next to `store` (e.g. upstream discovery). */
  readinessChecks?: Record<string, ReadinessCheck>;
  /** How long a readiness check may take before it counts as unavailable (default 2 s). */
  readinessTimeoutMs?: number;
}

/** Shutdown state shared by the server and src/server/graceful-shutdown.ts. */
export interface ServerLifecycle {
  readonly draining: boolean;
  beginDraining(): void;
  /** True once shutdown cuts the connections still open (grace period over): a response cut now was cut by us. */
  readonly cutting: boolean;
  beginCutting(): void;
  /** Counts `response` as in flight until it closes (finished, cut, or abandoned by the client). */
  track(response: ServerResponse): void;
  /**
   * Resolves once every tracked response has closed. Each response's own `close` listeners (its audit record) have
   * run by then, so what they queued can be flushed before the store closes.
   */
  whenIdle(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: ServerLifecycle;
  }
}

function createLifecycle(): ServerLifecycle {
  let draining = false;
  let cutting = false;
  let open = 0;
  let idle: PromiseWithResolvers<void> | undefined;
  return {
    get draining() {
      return draining;
    },
    beginDraining() {
      draining = true;
    },
    get cutting() {
      return cutting;
    },
    beginCutting() {
      cutting = true;
    },
    track(response) {
      open += 1;
      // `on`, not `once`: a response closes once, and `once` wraps every listener in a closure of its own.
      response.on('close', () => {
        open -= 1;
        // Resolving runs the waiter after this `close` event's other listeners: the audit record is queued first.
        if (open === 0) idle?.resolve();
      });
    },
    whenIdle() {
      if (open === 0) return Promise.resolve();
      idle ??= Promise.withResolvers<void>();
      return idle.promise;
    },
  };
}

/**
 * One log line per request, when its response has been sent (or the client went away), instead of Fastify's two
 * ("incoming request" and "request completed"): each line costs a serialization and a write, and the second can
 * hold everything the first did.
 */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) request.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else logRequestCompleted(request.log as Logger, request, reply, reply.elapsedTime);
  }
}

/**
 * Fastify accepts a hop count at runtime but its types do not, so a count becomes the equivalent function:
 * trust the `hops` nearest proxies (proxy-addr semantics), so `X-Forwarded-*` from the client itself is ignored.
 */
function trustProxySetting(setting: boolean | number | string[]): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof setting !== 'number') return setting;
  return (_address, hop) => hop < setting;
}

/**
 * `Expect: 100-continue` is answered when the request's body is first read, not on arrival: Node sent `100 Continue`
 * before any route ran, inviting an unauthenticated client to upload what the gateway then refused unread (RFC 9110
 * §10.1.1: a server that will not read the body should send the final answer instead). A request refused before its
 * body is read gets its 401, 404 or 413 and no invitation; one whose body is read gets `100` at that moment.
 */
function sendContinueOnlyWhenRead(server: Server): void {
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    let invited = false;
    const invite = () => {
      if (invited) return;
      invited = true;
      request.off('newListener', onListener);
      if (!response.headersSent && !response.writableEnded) response.writeContinue();
    };
    const onListener = (event: string | symbol) => {
      if (event === 'data' || event === 'readable') invite();
    };
    request.on('newListener', onListener);
    request.once('resume', invite);
    server.emit('request', request, response);
  });
}

export async function buildServer(ctx: GatehouseContext, options: BuildServerOptions = {}): Promise<FastifyInstance> {
  const { server } = ctx.config;
  const securityHeaders: SecurityHeadersOptions = { hsts: ctx.publicUrl.startsWith('https://'), imageOrigins: brandingImageOrigins(ctx.config.branding) };
  const app = fastify({
    // Fastify's types pin its own pino major; the instance is the same pino API, so the nominal mismatch is cast away.
    loggerInstance: ctx.logger as FastifyBaseLogger,
    logController: new OneLinePerRequest(),
    genReqId: createRequestIdGenerator(ctx.random, { fromProxy: server.trustProxy === true || (typeof server.trustProxy === 'number' ? server.trustProxy > 0 : Array.isArray(server.trustProxy) && server.trustProxy.length > 0) }),
    trustProxy: trustProxySetting(server.trustProxy),
    bodyLimit: server.bodyLimitBytes,
    // Fastify's default (0) lifts Node's bound on receiving a whole request, so a client trickling a body to an OAuth
    // endpoint could hold a socket forever (slow loris). Sixty seconds covers any legitimate upload; it bounds only
    // the request, never a long response such as an SSE stream. MCP routes apply their own, shorter body timeout.
    requestTimeout: 60_000,
    // Requests arriving while draining get our own JSON 503 (below) rather than Fastify's built-in body.
    return503OnClosing: false,
    // Idle keep-alive sockets are closed at once on shutdown; busy ones finish their request or stream.
    forceCloseConnections: 'idle',
    frameworkErrors: createFrameworkErrorHandler(unhookedResponseHeaders(securityHeaders)),
    clientErrorHandler: handleClientError,
  });

  // Every method Node's parser accepts is routable, so a route refuses one it does not serve with 405 naming those it
  // does (src/proxy/gateway-plugin.ts), and an unknown path is a 404 whatever the method. Fastify knows only a few
  // by itself, and sent PROPFIND or SEARCH on an MCP endpoint to the not-found handler, as if nothing were there.
  // CONNECT never reaches a route (Node hands it to the server's `connect` event, answered there with a 501).
  for (const method of EXTRA_METHODS) if (!app.supportedMethods.includes(method)) app.addHttpMethod(method);
  app.server.on('connect', refuseConnect);

  sendContinueOnlyWhenRead(app.server);

  const lifecycle = createLifecycle();
  app.decorate('lifecycle', lifecycle);

  // A callback hook, not an async one: it runs on every request and never waits.
  app.addHook('onRequest', (request, reply, done) => {
    lifecycle.track(reply.raw);
    reply.header(requestIdHeader, request.id);
    // RFC 9110 §7.1: the asterisk form names the server as a whole, for OPTIONS only; routed as a path it served
    // the start page to `GET *`.
    if (request.raw.url === '*' && request.method !== 'OPTIONS') {
      return done(new ProtocolError('invalid_request', 'The request target `*` is for OPTIONS only.'));
    }
    // RFC 9112 §3.2: a request target has no fragment. Node's parser passes `#` on, and what follows it is read by
    // some as part of the path (`/api/x#/../../y`) and by others not at all.
    if (request.raw.url?.includes('#') === true) return done(new ProtocolError('invalid_request', 'A request target has no fragment (`#`).'));
    if (!lifecycle.draining) return done();
    done(
      new ProtocolError('temporarily_unavailable', 'The server is shutting down; retry on another instance.', {
        headers: { connection: 'close', 'retry-after': '1' },
      }),
    );
  });

  refuseRepeatedHeaders(app);
  // An answer sent before its request's body has arrived (a 401 to an upload, a 404, a refused form) ends the
  // connection after it. Kept open, Node reads the rest of the body to reuse the connection, and discards it: an
  // unauthenticated client declaring gigabytes kept a connection reading junk at full speed for the request timeout.
  app.addHook('onSend', (request, reply, payload, done) => {
    const { headers, complete } = request.raw;
    if (!complete && (headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0'))) {
      reply.header('connection', 'close');
    }
    done(null, payload);
  });
  installSecurityHeaders(app, securityHeaders);
  // The error page (rendered wherever an error is sent) carries the operator's branding like the other pages.
  app.decorate('pageBranding', ctx.config.branding);
  installErrorHandler(app);
  registerHealthRoutes(app, {
    checks: { store: () => ctx.store.ping(), ...options.readinessChecks },
    isDraining: () => lifecycle.draining,
    checkTimeoutMs: options.readinessTimeoutMs,
  });

  // The stylesheet of every server-rendered page: consent, sign-in, and the error page (CSP `style-src 'self'`).
  app.get(STYLESHEET_PATH, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(pageStylesheet),
  );

  const brandCss = brandingStylesheet(ctx.config.branding);
  app.get(BRANDING_STYLESHEET_PATH, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(brandCss),
  );

  for (const plugin of options.plugins ?? []) await app.register(plugin);
  await app.ready();
  return app;
}
