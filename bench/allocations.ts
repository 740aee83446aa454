import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackends, stopChild } from './child-process.ts';
import { freePort } from '../test/support/ports.ts';
import { runLoad } from './load.ts';
import { startBenchIdentityProvider } from './oauth/identity-provider.ts';
import { SCENARIOS } from './scenarios.ts';
import { compileTargets } from './targets/compiled.ts';
import { createCredentials } from './targets/credentials.ts';
import { startGatehouse } from './targets/gatehouse.ts';

/**
 * `node bench/allocations.ts [scenario] [top]`: the bytes Gatehouse allocates per request, by the function that
 * allocates them. CPU figures on this shared machine move by ±10 % between identical runs; what a request allocates
 * does not (garbage collection was 8–14 % of the busy time in the profiles), so it is the instrument for changes too
 * small for the bench to see. Gatehouse (the package build, started as the bench starts it, with the inspector on a
 * loopback port) is warmed for 8 s, then V8's sampling heap profiler — objects already collected included — runs
 * over 4 s of load (16 connections, as fast as possible). Prints the sampled total per request and the `top`
 * (default 25) allocating functions.
 */
const scenario = SCENARIOS.find((candidate) => candidate.key === (process.argv[2] ?? 'canned'));
if (!scenario || scenario.backend === 'legacy') throw new Error('allocations.ts takes canned, json or sse');
const top = Number(process.argv[3] ?? 25);

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
async function inspector(port: number) {
  const [target] = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
  const socket = new WebSocket(target!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true });
    socket.addEventListener('error', reject, { once: true });
  });
  let lastId = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) waiting.get(message.id)?.(message.result);
  });
  return {
    call: <T>(method: string, params: object = {}) =>
      new Promise<T>((resolve) => {
        const id = ++lastId;
        waiting.set(id, resolve as (result: unknown) => void);
        socket.send(JSON.stringify({ id, method, params }));
      }),
    close: () => socket.close(),
  };
}

const dir = await mkdtemp(join(tmpdir(), 'gatehouse-allocations-'));
const { urls, child: backends } = await startBackends();
const port = await freePort();
const inspectorPort = await freePort();
const compiled = compileTargets(dir);
const credentials = await createCredentials(dir, `http://127.0.0.1:${port}`);
const { idp, upstream } = await startBenchIdentityProvider(dir, `http://127.0.0.1:${port}`);
const gatehouse = await startGatehouse(port, dir, urls, credentials, upstream, {
  ...compiled,
  gatehouseNodeOptions: `${compiled.gatehouseNodeOptions} --inspect=127.0.0.1:${inspectorPort}`,
});
try {
  const load = (durationSeconds: number) =>
    runLoad({ url: gatehouse.url(scenario.backend), headers: { ...scenario.headers, ...gatehouse.headers(scenario.backend) }, body: scenario.body, connections: 16, durationSeconds });
  await load(8);
  const session = await inspector(inspectorPort);
  await session.call('HeapProfiler.enable');
  await session.call('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const result = await load(4);
  const { profile } = await session.call<{ profile: { head: SamplingNode } }>('HeapProfiler.stopSampling');
  session.close();
  const bySite = new Map<string, number>();
  let total = 0;
  const walk = (node: SamplingNode) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const site = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(dist\/src|node_modules)\//, '$1/')}:${lineNumber + 1}`;
    bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    total += node.selfSize;
    for (const child of node.children) walk(child);
  };
  walk(profile.head);
  const perRequest = (bytes: number) => Math.round(bytes / Math.max(1, result.total));
  process.stdout.write(`\n${scenario.key}: ${result.total} requests sampled, ${perRequest(total)} bytes allocated per request\n\n| bytes per request | function |\n|---:|---|\n`);
  for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`| ${perRequest(bytes)} | ${site} |\n`);
} finally {
  await gatehouse.stop();
  await idp.close();
  await stopChild(backends);
  await rm(dir, { recursive: true, force: true });
}
