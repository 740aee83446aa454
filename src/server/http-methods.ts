import type { FastifyInstance, HTTPMethods } from 'fastify';

/**
 * The methods a route refuses with 405: every routable one (all that Node's parser accepts, see app.ts) but those it
 * serves and those another registration answers on the same URL (`answeredElsewhere`: OPTIONS where a CORS preflight
 * route is registered, HEAD where Fastify answers it with the GET route).
 */
export function methodsToRefuse(app: FastifyInstance, served: readonly string[], answeredElsewhere: readonly string[] = []): HTTPMethods[] {
  return app.supportedMethods.filter((method) => !served.includes(method) && !answeredElsewhere.includes(method)) as HTTPMethods[];
}
