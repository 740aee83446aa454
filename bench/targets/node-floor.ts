import { KEEP_HEAP_FLAG } from '../../src/runtime/process-heap.ts';
import type { BackendUrls } from '../backends/main.ts';
import type { CompiledTargets } from './compiled.ts';
import { firstLine, spawnTracked, stopChild } from '../child-process.ts';
import { proxiedUrl, proxyRoutes, type Target } from './target.ts';

/**
 * Starts the Node floor (node-floor-server.ts) in its own process; `nodeArgs` go to its `node` (e.g. `--cpu-prof`).
 * It runs with the V8 flag `gatehouse start` sets to keep its heap across idle gaps (KEEP_HEAP_FLAG), so the two
 * compare under the same V8 memory policy; the floor's own small heap made it little affected either way
 * (docs/performance.md, "Idle gaps"). Gatehouse's return of the heap after 5 quiet minutes never comes into a bench.
 */
export async function startNodeFloor(urls: BackendUrls, compiled: CompiledTargets, nodeArgs: string[] = []): Promise<Target> {
  const child = spawnTracked(process.execPath, [KEEP_HEAP_FLAG, ...nodeArgs, compiled.script('node-floor-server')], {
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
