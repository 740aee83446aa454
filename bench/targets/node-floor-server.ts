import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import type { ProxyRoute } from './target.ts';

/**
 * The Node floor (child process): `node:http` in, an undici pool per backend out, bodies streamed both ways, no
 * checks and no logging. What no Node gateway can beat, since every Node gateway does at least this.
 */
const routes = JSON.parse(process.env.BENCH_ROUTES ?? '[]') as ProxyRoute[];
const pools = new Map(routes.map((route) => [route.prefix, new Pool(new URL(route.upstream).origin)]));

/** RFC 9110 §7.6.1: hop-by-hop headers are not forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  return out;
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const route = routes.find((candidate) => url.startsWith(candidate.prefix));
  if (!route) return void res.writeHead(404).end();
  const controller = new AbortController();
  res.once('close', () => controller.abort());
  const target = new URL(route.upstream);
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  pools
    .get(route.prefix)!
    .request({
      method: req.method as 'GET',
      path: target.pathname + url.slice(route.prefix.length),
      headers: forwardable(req.headers),
      body: hasBody ? req : null,
      signal: controller.signal,
    })
    .then(({ statusCode, headers, body }) => {
      const out: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
      res.writeHead(statusCode, out);
      res.flushHeaders();
      body.on('error', () => res.destroy()).pipe(res);
    })
    .catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
});
server.listen(0, '127.0.0.1', 8192, () => {
  process.stdout.write(`${JSON.stringify({ origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
