import type { BackendUrls } from '../backends/main.ts';
import type { CompiledTargets } from './compiled.ts';
import { firstLine, spawnTracked, stopChild } from '../child-process.ts';
import { proxiedUrl, proxyRoutes, type Target } from './target.ts';

/**
 * Starts the Node floor (node-floor-server.ts) in its own process; `nodeArgs` go to its `node` (e.g. `--cpu-prof`).
 * It keeps its heap across idle gaps as `gatehouse start` does (src/runtime/process-heap.ts), so the two compare
 * under the same V8 memory policy; the floor's own small heap made it little affected either way (docs/performance.md,
 * "Idle gaps").
 */
export async function startNodeFloor(urls: BackendUrls, compiled: CompiledTargets, nodeArgs: string[] = []): Promise<Target> {
  const child = spawnTracked(process.execPath, ['--no-memory-reducer-favors-memory', ...nodeArgs, compiled.script('node-floor-server')], {
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
