import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstLine, spawnTracked, stopChild } from './child-process.ts';
import { runLoad } from './load.ts';
import { cpuMicros } from './process-stats.ts';
import { SCENARIOS } from './scenarios.ts';
import { startAllTargets } from './targets/start-all.ts';
import { proxiedUrl, proxyRoutes, type Target } from './targets/target.ts';

/**
 * `node bench/layers.ts [rounds] [scenario]`: where Gatehouse's CPU per request goes beyond the Node floor. Three
 * proxies in front of the same backend — the Node floor (bare `node:http` + undici), the Fastify floor (the same
 * pass-through inside one Fastify route, `targets/fastify-floor-server.ts`) and Gatehouse — each warmed for 8 s,
 * then loaded in turn for 2 s per round (16 connections, as fast as possible), the order reversed every round so
 * the machine's drift falls on all three. Prints each one's median CPU µs per request over the rounds (default 12)
 * and its median ratio to the Node floor's figure of the same round.
 */
const rounds = Number(process.argv[2] ?? 12);
const scenario = SCENARIOS.find((candidate) => candidate.key === (process.argv[3] ?? 'canned'));
if (!scenario || scenario.backend === 'legacy') throw new Error('layers.ts takes canned, json or sse');
const dir = await mkdtemp(join(tmpdir(), 'gatehouse-layers-'));
const bench = await startAllTargets(dir, 100);
const child = spawnTracked(process.execPath, [join(dir, 'js', 'bench', 'fastify-floor-server.js')], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, BENCH_ROUTES: JSON.stringify(proxyRoutes(bench.urls)) },
});
try {
  const { origin } = JSON.parse(await firstLine(child, 'the Fastify floor')) as { origin: string };
  const fastifyFloor: Target = { name: 'fastify floor', url: (backend) => proxiedUrl(origin, backend), headers: () => ({}), pids: () => [child.pid!], stop: () => stopChild(child) };
  const byName = new Map(bench.targets.map((target) => [target.name, target]));
  const targets = [byName.get('node floor')!, fastifyFloor, byName.get('gatehouse')!];
  const cpu = new Map<string, number[]>(targets.map((target) => [target.name, []]));
  const load = (target: Target, durationSeconds: number) =>
    runLoad({ url: target.url(scenario.backend), headers: { ...scenario.headers, ...target.headers(scenario.backend) }, body: scenario.body, connections: 16, durationSeconds });
  for (const target of targets) await load(target, 8);
  for (let round = 0; round < rounds; round++) {
    for (const target of round % 2 === 0 ? targets : [...targets].reverse()) {
      const before = cpuMicros(target.pids());
      const result = await load(target, 2);
      cpu.get(target.name)!.push((cpuMicros(target.pids()) - before) / Math.max(1, result.total));
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const floor = cpu.get('node floor')!;
  process.stdout.write(`\n${scenario.key}, ${rounds} rounds of 2 s after an 8 s warm-up each:\n\n| proxy | CPU µs per request (median) | ÷ Node floor (median of the rounds' ratios) |\n|---|---:|---:|\n`);
  for (const [name, values] of cpu) {
    process.stdout.write(`| ${name} | ${Math.round(median(values))} | ${median(values.map((value, round) => value / floor[round]!)).toFixed(2)}× |\n`);
  }
} finally {
  await stopChild(child);
  await bench.stop();
  await rm(dir, { recursive: true, force: true });
}
