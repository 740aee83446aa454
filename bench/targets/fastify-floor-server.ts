import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import type { ProxyRoute } from './target.ts';

/**
 * The Fastify floor (child process, not one of the bench's targets; `bench/layers.ts` uses it): the Node floor's
 * pass-through inside one Fastify route, the request body buffered by Fastify's parser and the backend's answer
 * sent with `reply.send(stream)`, as Gatehouse does. No hooks, no checks, no logging. Against the Node floor it shows
 * what Fastify itself costs a proxy; against Gatehouse, what Gatehouse's own work does.
 */
const routes = JSON.parse(process.env.BENCH_ROUTES ?? '[]') as ProxyRoute[];
const pools = new Map(routes.map((route) => [route.prefix, new Pool(new URL(route.upstream).origin)]));

/** RFC 9110 §7.6.1 hop-by-hop headers, and the length, which undici and Fastify set from the body they send. */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', 'content-length']);

function forwardable(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !NOT_FORWARDED.has(name)) out[name] = value;
  return out;
}

const app = Fastify({ logger: false });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
app.all('/*', async (request, reply) => {
  const route = routes.find((candidate) => request.url.startsWith(candidate.prefix));
  if (!route) return reply.code(404).send();
  const target = new URL(route.upstream);
  const { statusCode, headers, body } = await pools.get(route.prefix)!.request({
    method: request.method as 'POST',
    path: target.pathname + request.url.slice(route.prefix.length),
    headers: forwardable(request.headers),
    body: (request.body as Buffer | undefined) ?? null,
  });
  return reply.code(statusCode).headers(forwardable(headers)).send(body);
});
await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`${JSON.stringify({ origin: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` })}\n`);
process.on('SIGTERM', () => process.exit(0));
