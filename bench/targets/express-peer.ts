import type { BackendUrls } from '../backends/main.ts';
import type { CompiledTargets } from './compiled.ts';
import { firstLine, spawnTracked, stopChild } from '../child-process.ts';
import type { BenchCredentials } from './credentials.ts';
import { proxiedUrl, proxyRoutes, type Target } from './target.ts';

/** Starts the Express + SDK `requireBearerAuth` + `http-proxy-middleware` peer (express-peer-server.ts). */
export async function startExpressPeer(urls: BackendUrls, credentials: BenchCredentials, compiled: CompiledTargets): Promise<Target> {
  const child = spawnTracked(process.execPath, [compiled.script('express-peer-server')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      BENCH_ROUTES: JSON.stringify(proxyRoutes(urls)),
      BENCH_JWKS: JSON.stringify(credentials.publicJwks),
      BENCH_ISSUER: credentials.issuer,
    },
  });
  const { origin } = JSON.parse(await firstLine(child, 'the Express peer')) as { origin: string };
  const tokens = await credentials.tokensFor(origin);
  return {
    name: 'express peer',
    url: (backend) => proxiedUrl(origin, backend),
    headers: (backend) => ({ authorization: `Bearer ${tokens(backend)}` }),
    pids: () => [child.pid!],
    stop: () => stopChild(child),
  };
}
