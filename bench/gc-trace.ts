import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackends, stopChild } from './child-process.ts';
import { freePort } from '../test/support/ports.ts';
import { collectionsIn, writeTracedEntry } from './gc-trace-log.ts';
import { runLoad } from './load.ts';
import { startBenchIdentityProvider } from './oauth/identity-provider.ts';
import { SCENARIOS } from './scenarios.ts';
import { compileTargets } from './targets/compiled.ts';
import { createCredentials } from './targets/credentials.ts';
import { startGatehouse } from './targets/gatehouse.ts';

/**
 * `node bench/gc-trace.ts [scenario] [node options]`: how much of Gatehouse's time per request goes to garbage
 * collection, from V8's own account. Gatehouse starts as the bench starts it (with the image's Node options unless
 * others are given, e.g. `--max-semi-space-size=4`) behind a wrapper that turns `--trace-gc` on at run time (the flag
 * is not allowed in NODE_OPTIONS); after an 8 s warm-up, 8 s of full load are measured, and the trace lines of that
 * window are summed by kind: count, pause per request and average pause (a mark-compact's incremental marking steps
 * included). Pauses on the main thread only: the parallel and concurrent work on V8's helper threads is not in them.
 */
const scenario = SCENARIOS.find((candidate) => candidate.key === (process.argv[2] ?? 'canned'));
if (!scenario || scenario.backend === 'legacy') throw new Error('gc-trace.ts takes canned, json or sse');
const nodeOptions = process.argv[3];

const dir = await mkdtemp(join(tmpdir(), 'gatehouse-gc-trace-'));
const { urls, child: backends } = await startBackends();
try {
  const compiled = compileTargets(dir);
  const traced = await writeTracedEntry(dir);
  const port = await freePort();
  const credentials = await createCredentials(dir, `http://127.0.0.1:${port}`);
  const { idp, upstream } = await startBenchIdentityProvider(dir, `http://127.0.0.1:${port}`);
  const gatehouse = await startGatehouse(port, dir, urls, credentials, upstream, {
    ...compiled,
    gatehouseEntry: traced,
    ...(nodeOptions === undefined ? {} : { gatehouseNodeOptions: nodeOptions }),
  });
  const load = (durationSeconds: number) =>
    runLoad({ url: gatehouse.url(scenario.backend), headers: { ...scenario.headers, ...gatehouse.headers(scenario.backend) }, body: scenario.body, connections: 16, durationSeconds });
  const logFile = join(dir, 'gatehouse.log');
  let window = '';
  let requests = 0;
  try {
    await load(8);
    const before = (await readFile(logFile, 'utf8')).length;
    requests = (await load(8)).total;
    window = (await readFile(logFile, 'utf8')).slice(before);
  } finally {
    await gatehouse.stop();
    await idp.close();
  }
  const kinds = collectionsIn(window);
  process.stdout.write(`\n${scenario.key}, Node options "${nodeOptions ?? compiled.gatehouseNodeOptions}": ${requests} requests in 8 s\n\n| collection | count | pause per request (µs) | average pause (ms) |\n|---|---:|---:|---:|\n`);
  for (const [name, { count, ms }] of kinds) {
    process.stdout.write(`| ${name} | ${count} | ${((ms * 1000) / Math.max(1, requests)).toFixed(2)} | ${(ms / count).toFixed(2)} |\n`);
  }
} finally {
  await stopChild(backends);
  await rm(dir, { recursive: true, force: true });
}
