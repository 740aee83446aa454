import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackends, stopChild } from './child-process.ts';
import { freePort } from '../test/support/ports.ts';
import { collectionsIn, writeTracedEntry } from './gc-trace-log.ts';
import { runLoad } from './load.ts';
import { startBenchIdentityProvider } from './oauth/identity-provider.ts';
import { cpuMicros, rssBytes } from './process-stats.ts';
import { SCENARIOS } from './scenarios.ts';
import { compileTargets } from './targets/compiled.ts';
import { createCredentials } from './targets/credentials.ts';
import { startGatehouse } from './targets/gatehouse.ts';

/**
 * `node bench/idle-gap.ts [gaps] [v8-default]`: what an idle gap costs the next burst. Gatehouse starts as the bench
 * starts it, gets 20 s of full load (16 connections, canned backend), and then, for each gap in `gaps` (seconds,
 * comma-separated, default `12,12,12`): nothing for that long, then eight 0.5 s slices of full load, each printed as
 * CPU µs per request, with the RSS at the end of the gap and the collections V8 ran during the gap and the 4 s after
 * it (from `--trace-gc`, gc-trace-log.ts), and 5 s of load before the next gap. `v8-default` puts V8's memory reducer back as V8 ships it (heap shrunk after ≈ 8 s quiet)
 * instead of Gatehouse's setting (src/runtime/process-heap.ts): the wrapper sets `--memory-reducer-favors-memory`
 * again every second, after `gatehouse start` has set it off.
 */
const gaps = (process.argv[2] ?? '12,12,12').split(',').map(Number);
const v8Default = process.argv[3] === 'v8-default';
const scenario = SCENARIOS.find((candidate) => candidate.key === 'canned')!;

const dir = await mkdtemp(join(tmpdir(), 'gatehouse-idle-gap-'));
const { urls, child: backends } = await startBackends();
try {
  const compiled = compileTargets(dir);
  const reset = v8Default ? "setInterval(() => setFlagsFromString('--memory-reducer-favors-memory'), 1000).unref();\n" : '';
  const traced = await writeTracedEntry(dir, reset);
  const port = await freePort();
  const credentials = await createCredentials(dir, `http://127.0.0.1:${port}`);
  const { idp, upstream } = await startBenchIdentityProvider(dir, `http://127.0.0.1:${port}`);
  const gatehouse = await startGatehouse(port, dir, urls, credentials, upstream, { ...compiled, gatehouseEntry: traced });
  const logFile = join(dir, 'gatehouse.log');
  const load = (durationSeconds: number) =>
    runLoad({ url: gatehouse.url('canned'), headers: { ...scenario.headers, ...gatehouse.headers('canned') }, body: scenario.body, connections: 16, durationSeconds });
  const logLength = async () => (await readFile(logFile, 'utf8')).length;
  /** The collections in the trace since `from`, by kind: count and main-thread pause. */
  const collections = async (from: number) =>
    [...collectionsIn((await readFile(logFile, 'utf8')).slice(from))].map(([name, { count, ms }]) => `${name} ${count}× ${ms.toFixed(0)} ms`).join(', ') || 'none';
  const rows: string[] = [];
  try {
    await load(20);
    for (const gap of gaps) {
      const gapStart = await logLength();
      await new Promise((resolve) => setTimeout(resolve, gap * 1000));
      const rss = rssBytes(gatehouse.pids());
      const duringGap = await collections(gapStart);
      const burstStart = await logLength();
      const slices: number[] = [];
      for (let slice = 0; slice < 8; slice++) {
        const before = cpuMicros(gatehouse.pids());
        const result = await load(0.5);
        slices.push(Math.round((cpuMicros(gatehouse.pids()) - before) / Math.max(1, result.total)));
      }
      rows.push(`| ${gap} s | ${(rss / 1e6).toFixed(0)} MB | ${duringGap} | ${slices.join(' ')} | ${await collections(burstStart)} |`);
      await load(5);
    }
  } finally {
    await gatehouse.stop();
    await idp.close();
  }
  process.stdout.write(
    `\nIdle gaps, canned backend, memory reducer ${v8Default ? "as V8 ships it" : "as Gatehouse sets it"}:\n\n` +
      '| gap | RSS after the gap | collections during the gap | CPU µs/request in the eight 0.5 s slices after it | collections in those 4 s |\n|---|---:|---|---|---|\n' +
      `${rows.join('\n')}\n`,
  );
} finally {
  await stopChild(backends);
  await rm(dir, { recursive: true, force: true });
}
