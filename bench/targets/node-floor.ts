import type { BackendUrls } from '../backends/main.ts';
import type { CompiledTargets } from './compiled.ts';
import { firstLine, spawnTracked, stopChild } from '../child-process.ts';
import { proxiedUrl, proxyRoutes, type Target } from './target.ts';

/** Starts the Node floor (node-floor-server.ts) in its own process; `nodeArgs` go to its `node` (e.g. `--cpu-prof`). */
export async function startNodeFloor(urls: BackendUrls, compiled: CompiledTargets, nodeArgs: string[] = []): Promise<Target> {
  const child = spawnTracked(process.execPath, [...nodeArgs, compiled.script('node-floor-server')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BENCH_ROUTES: JSON.stringify(proxyRoutes(urls)) },
  });
  const { origin } = JSON.parse(await firstLine(child, 'the Node floor')) as { origin: string };
  return {
    name: 'node floor',
    url: (backend) => proxiedUrl(origin, backend),
    headers: () => ({}),
    pids: () => [child.pid!],
    stop: () => stopChild(child),
  };
}
