import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startBackends, stopChild } from './child-process.ts';
import { runLoad } from './load.ts';
import { startBenchIdentityProvider } from './oauth/identity-provider.ts';
import { area, location, type CpuProfile } from './profile-summary.ts';
import { SCENARIOS } from './scenarios.ts';
import { compileTargets } from './targets/compiled.ts';
import { createCredentials } from './targets/credentials.ts';
import { startGatehouse } from './targets/gatehouse.ts';
import { startNodeFloor } from './targets/node-floor.ts';
import type { Target } from './targets/target.ts';

/**
 * `node bench/profile-diff.ts [seconds] [scenario] [top]`: where Gatehouse's CPU per request goes beyond the Node
 * floor's, in µs per request rather than in shares. Both run with V8's CPU profiler on (the floor with `--cpu-prof`,
 * Gatehouse as the bench starts it, with `BENCH_CPU_PROF`), in front of the same backend; each gets an 8 s warm-up
 * and then `seconds` (default 8) of full load (16 connections). Only the samples inside that measured window count
 * (the profile's clock is the monotonic clock `process.hrtime` reads), and each area's self time is divided by the
 * requests served in it. Prints the areas side by side, largest difference first, and Gatehouse's top functions of
 * its own code (`src/`). Sampled time is the main thread's only: the figures add up to a little less than the CPU
 * time `/proc` counts (V8's helper threads, the kernel's share of a syscall outside its sample).
 */
const seconds = Number(process.argv[2] ?? 8);
const scenario = SCENARIOS.find((candidate) => candidate.key === (process.argv[3] ?? 'canned'));
const top = Number(process.argv[4] ?? 20);
if (!scenario || scenario.backend === 'legacy') throw new Error('profile-diff.ts takes canned, json or sse');

interface Window {
  from: number;
  to: number;
  requests: number;
}

const nowMicros = () => Number(process.hrtime.bigint() / 1000n);

/** Self time (µs) per key inside the window, keyed by `keyOf(node)`; `(idle)` left out. */
function selfTime(profile: CpuProfile, window: Window, keyOf: (url: string, name: string, line: number) => string | undefined): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map<string, number>();
  let time = profile.startTime ?? 0;
  const samples = profile.samples ?? [];
  for (let index = 0; index < samples.length; index++) {
    const delta = profile.timeDeltas?.[index] ?? 0;
    time += delta;
    if (time < window.from || time > window.to) continue;
    const frame = byId.get(samples[index]!)?.callFrame;
    if (!frame || frame.functionName === '(idle)') continue;
    const key = keyOf(frame.url, frame.functionName, frame.lineNumber);
    if (key !== undefined) totals.set(key, (totals.get(key) ?? 0) + delta);
  }
  return totals;
}

async function onlyProfile(dir: string): Promise<CpuProfile> {
  const file = (await readdir(dir)).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no CPU profile was written in ${dir}`);
  return JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile;
}

const dir = await mkdtemp(join(tmpdir(), 'gatehouse-profile-diff-'));
const floorProfiles = join(dir, 'floor-profile');
const gatehouseProfiles = join(dir, 'gatehouse-profile');
await mkdir(floorProfiles);
await mkdir(gatehouseProfiles);
const { urls, child: backends } = await startBackends();
try {
  const compiled = compileTargets(dir);
  const floor = await startNodeFloor(urls, compiled, ['--cpu-prof', `--cpu-prof-dir=${floorProfiles}`]);
  const port = await freePort();
  const credentials = await createCredentials(dir, `http://127.0.0.1:${port}`);
  const { idp, upstream } = await startBenchIdentityProvider(dir, `http://127.0.0.1:${port}`);
  process.env.BENCH_CPU_PROF = gatehouseProfiles;
  const gatehouse = await startGatehouse(port, dir, urls, credentials, upstream, compiled);
  const windows = new Map<Target, Window>();
  try {
    for (const target of [floor, gatehouse]) {
      const load = (durationSeconds: number) =>
        runLoad({ url: target.url(scenario.backend), headers: { ...scenario.headers, ...target.headers(scenario.backend) }, body: scenario.body, connections: 16, durationSeconds });
      await load(8);
      const from = nowMicros();
      const result = await load(seconds);
      windows.set(target, { from, to: nowMicros(), requests: result.total });
    }
  } finally {
    // The profiles are written when the processes exit.
    await floor.stop();
    await gatehouse.stop();
    await idp.close();
  }
  const byArea = (url: string, name: string) => (url === '' && !name.startsWith('(') ? `(native) ${name}` : area(url, name));
  const perRequest = (totals: Map<string, number>, window: Window) => new Map([...totals].map(([key, micros]) => [key, micros / Math.max(1, window.requests)]));
  const floorWindow = windows.get(floor)!;
  const gatehouseWindow = windows.get(gatehouse)!;
  const floorAreas = perRequest(selfTime(await onlyProfile(floorProfiles), floorWindow, byArea), floorWindow);
  const gatehouseProfile = await onlyProfile(gatehouseProfiles);
  const gatehouseAreas = perRequest(selfTime(gatehouseProfile, gatehouseWindow, byArea), gatehouseWindow);

  const out = (text: string) => process.stdout.write(text);
  out(`\n${scenario.key}: ${seconds} s of full load after an 8 s warm-up; Node floor ${floorWindow.requests} requests, Gatehouse ${gatehouseWindow.requests}\n\n`);
  out('| area (self time, main thread) | Node floor µs/request | Gatehouse µs/request | difference |\n|---|---:|---:|---:|\n');
  const keys = new Set([...floorAreas.keys(), ...gatehouseAreas.keys()]);
  const rows = [...keys].map((key) => ({ key, floor: floorAreas.get(key) ?? 0, gatehouse: gatehouseAreas.get(key) ?? 0 }));
  rows.sort((a, b) => b.gatehouse - b.floor - (a.gatehouse - a.floor));
  let floorTotal = 0;
  let gatehouseTotal = 0;
  let rest = { floor: 0, gatehouse: 0 };
  for (const row of rows) {
    floorTotal += row.floor;
    gatehouseTotal += row.gatehouse;
    if (Math.abs(row.gatehouse - row.floor) < 1 && Math.max(row.floor, row.gatehouse) < 5) {
      rest = { floor: rest.floor + row.floor, gatehouse: rest.gatehouse + row.gatehouse };
      continue;
    }
    out(`| ${row.key} | ${row.floor.toFixed(1)} | ${row.gatehouse.toFixed(1)} | ${(row.gatehouse - row.floor).toFixed(1)} |\n`);
  }
  out(`| everything else | ${rest.floor.toFixed(1)} | ${rest.gatehouse.toFixed(1)} | ${(rest.gatehouse - rest.floor).toFixed(1)} |\n`);
  out(`| **total** | **${floorTotal.toFixed(1)}** | **${gatehouseTotal.toFixed(1)}** | **${(gatehouseTotal - floorTotal).toFixed(1)}** |\n`);

  const ours = perRequest(
    selfTime(gatehouseProfile, gatehouseWindow, (url, name, line) => (/\/src\//.test(url) ? `${name || '(anonymous)'} ${location(url, line).replace(/^.*?\/src\//, 'src/')}` : undefined)),
    gatehouseWindow,
  );
  out(`\n| Gatehouse's own functions (self time) | µs/request |\n|---|---:|\n`);
  for (const [name, micros] of [...ours].sort((a, b) => b[1] - a[1]).slice(0, top)) out(`| ${name} | ${micros.toFixed(2)} |\n`);
} finally {
  await stopChild(backends);
  await rm(dir, { recursive: true, force: true });
}
