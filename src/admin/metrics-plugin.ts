import { fastify, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import { constantTimeEqual } from '../keys/hashing.ts';
import { isLoopbackAddress } from '../authorization/address-policy.ts';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { sendProtocolError } from '../server/error-handler.ts';
import type { GatehouseMetrics } from '../observability/metrics.ts';
import { ConfigError } from '../config/config-error.ts';

/**
 * `/metrics` in Prometheus text format, exposed one of three ways by configuration:
 * - `admin.metricsPort` set: only on that separate listener (bind it to an internal interface), not on the main port;
 * - `admin.metricsToken` set: on the main port, behind `Authorization: Bearer <token>` compared in constant time;
 * - neither, in `mode: demo`: open, but only to loopback clients. In production with neither, it is not served
 *   (config rules should say so at start): metrics reveal traffic patterns and client ids.
 */

/** Observes every request for `gatehouse_http_requests_total` and the latency histogram. Call on the root instance. */
export function installRequestMetrics(app: FastifyInstance, metrics: GatehouseMetrics): void {
  // A callback hook, not an async one: it runs on every request and never waits.
  app.addHook('onResponse', (request, reply, done) => {
    // The route pattern, never the raw URL (cardinality, and URLs carry codes and state values).
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observeRequest({ route, method: request.method, status: reply.statusCode, durationSeconds: reply.elapsedTime / 1000 });
    done();
  });
}

async function sendMetrics(metrics: GatehouseMetrics, reply: FastifyReply): Promise<FastifyReply> {
  return reply.header('cache-control', 'no-store').type(metrics.registry.contentType).send(await metrics.registry.metrics());
}

function bearerMatches(request: FastifyRequest, token: string): boolean {
  const match = /^Bearer ([\x21-\x7e]+)$/i.exec(request.headers.authorization ?? '');
  return match !== null && constantTimeEqual(match[1] ?? '', token);
}

const metricsTokenRequired = () =>
  new ProtocolError('invalid_token', 'The metrics endpoint needs the configured bearer token.', {
    headers: { 'www-authenticate': 'Bearer realm="metrics"' },
  });

function checkBearer(request: FastifyRequest, token: string): void {
  if (!bearerMatches(request, token)) throw metricsTokenRequired();
}

/** The `/metrics` route on the main server (a no-op plugin when a separate metrics port is configured). */
export function createMetricsPlugin(ctx: GatehouseContext, metrics: GatehouseMetrics): FastifyPluginAsync {
  const { metricsToken, metricsPort } = ctx.config.admin;
  return async (app) => {
    if (metricsPort !== undefined) return;
    if (metricsToken === undefined && ctx.config.mode !== 'demo') return;
    app.get('/metrics', async (request, reply) => {
      if (metricsToken !== undefined) checkBearer(request, metricsToken);
      // `request.ip` is undefined once the client has closed its connection: not loopback, so a 404.
      else if (request.ip === undefined || !isLoopbackAddress(request.ip)) throw new ProtocolError('not_found', 'No such endpoint.');
      return sendMetrics(metrics, reply);
    });
  };
}

/**
 * The separate metrics listener for `admin.metricsPort` (on `server.host`). Serves `/metrics` only (plus the token
 * check when a token is also set). Returns the running server; close it on shutdown.
 */
export async function startMetricsListener(ctx: GatehouseContext, metrics: GatehouseMetrics, port = ctx.config.admin.metricsPort): Promise<FastifyInstance> {
  if (port === undefined) throw new ConfigError(['admin.metricsPort: not set']);
  const { metricsToken } = ctx.config.admin;
  const app = fastify({ logger: false });
  app.get('/metrics', async (request, reply) => {
    // A bare listener without the main error handler: its two refusals go through the same renderer.
    if (metricsToken !== undefined && !bearerMatches(request, metricsToken)) {
      return sendProtocolError(reply, metricsTokenRequired());
    }
    return sendMetrics(metrics, reply);
  });
  app.setNotFoundHandler((_request, reply) => sendProtocolError(reply, new ProtocolError('not_found', 'No such endpoint.')));
  await app.listen({ host: ctx.config.server.host, port });
  return app;
}
