import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoad } from './load.ts';
import { cpuMicros } from './process-stats.ts';
import { SCENARIOS } from './scenarios.ts';
import { startAllTargets } from './targets/start-all.ts';

/**
 * `node bench/warmup.ts [seconds] [scenario]`: how a freshly started target's CPU per request settles. Each proxy
 * target, in turn and untouched before, serves back-to-back 1 s loads (16 connections, as fast as possible) for
 * `seconds` (default 12) on one scenario (default canned); printed per second: requests served so far and CPU µs
 * per request in that second. What the bench's warm-up length (settings.ts, BENCH_WARMUP) rests on.
 */
const seconds = Number(process.argv[2] ?? 12);
const scenario = SCENARIOS.find((candidate) => candidate.key === (process.argv[3] ?? 'canned'));
if (!scenario || scenario.backend === 'legacy') throw new Error('warmup.ts takes canned, json or sse');
const dir = await mkdtemp(join(tmpdir(), 'gatehouse-warmup-'));
const bench = await startAllTargets(dir, 100);
try {
  const rows: string[] = [];
  for (const target of bench.targets.filter((candidate) => candidate.name !== 'direct')) {
    const figures: string[] = [];
    let served = 0;
    for (let second = 0; second < seconds; second++) {
      const before = cpuMicros(target.pids());
      const result = await runLoad({
        url: target.url(scenario.backend),
        headers: { ...scenario.headers, ...target.headers(scenario.backend) },
        body: scenario.body,
        connections: 16,
        durationSeconds: 1,
      });
      served += result.total;
      figures.push(String(Math.round((cpuMicros(target.pids()) - before) / Math.max(1, result.total))));
    }
    rows.push(`| ${target.name} | ${figures.join(' ')} | ${served} |`);
  }
  process.stdout.write(`\nCPU µs per request in each second of load from a fresh start (${scenario.key}):\n\n| target | seconds 1–${seconds} | requests served |\n|---|---|---:|\n${rows.join('\n')}\n`);
} finally {
  await bench.stop();
  await rm(dir, { recursive: true, force: true });
}
