import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBackends, stopChild } from './child-process.ts';
import { freePort } from '../test/support/ports.ts';
import { runLoad } from './load.ts';
import { startBenchIdentityProvider } from './oauth/identity-provider.ts';
import { runRefreshLoad, type RefreshChain } from './oauth/refresh-load.ts';
import { obtainRefreshToken, registerClient, registrationBody } from './oauth/sign-in.ts';
import { area, location, type CpuProfile } from './profile-summary.ts';
import { SCENARIOS } from './scenarios.ts';
import { compileTargets } from './targets/compiled.ts';
import { createCredentials } from './targets/credentials.ts';
import { startGatehouse } from './targets/gatehouse.ts';
import { startNodeFloor } from './targets/node-floor.ts';
import { startOidcProviderFloor, type OidcProviderFloor } from './targets/oidc-provider-floor.ts';
import type { Target } from './targets/target.ts';
import { CookieBrowser } from '../test/upstream/support/cookie-browser.ts';

/**
 * `node bench/profile-diff.ts [seconds] [workload] [top] [area]`: where Gatehouse's CPU per request goes beyond its floor's,
 * in µs per request rather than in shares. The workload is a proxy scenario (`canned`, `json`, `sse`), measured
 * against the Node floor in front of the same backend, or an OAuth endpoint (`registration`: RFC 7591 registrations
 * on 16 connections; `refresh`: rotating refresh-token grants on 8 chains), measured against the oidc-provider floor
 * (the library Gatehouse's authorization server is built on, alone on `node:http` with a Map for a store). Both run
 * with V8's CPU profiler on (the floor with `--cpu-prof`, Gatehouse as the bench starts it, with `BENCH_CPU_PROF`);
 * each gets an 8 s warm-up and then `seconds` (default 8) of full load. Only the samples inside that measured window
 * count (the profile's clock is the monotonic clock `process.hrtime` reads), and each area's self time is divided by
 * the requests served in it. Prints the areas side by side, largest difference first, and Gatehouse's top functions
 * of its own code (`src/`), and with `area`, that area's functions on both sides. Sampled time is the main thread's only: the figures add up to a little less than the CPU
 * time `/proc` counts (V8's helper threads, the kernel's share of a syscall outside its sample).
 */
const seconds = Number(process.argv[2] ?? 8);
const workload = process.argv[3] ?? 'canned';
const top = Number(process.argv[4] ?? 20);
/** An area (as the first table names it) whose functions to list side by side, e.g. 'node internals'. */
const zoom = process.argv[5];
const scenario = SCENARIOS.find((candidate) => candidate.key === workload && candidate.backend !== 'legacy');
const oauth = workload === 'registration' || workload === 'refresh' ? workload : undefined;
if (!scenario && !oauth) throw new Error('profile-diff.ts takes canned, json, sse, registration or refresh');
/** Refresh chains on each side, as the bench's OAuth part runs them. */
const CHAINS = 8;

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
  const profileArgs = (into: string) => ['--cpu-prof', `--cpu-prof-dir=${into}`];
  const port = await freePort();
  const credentials = await createCredentials(dir, `http://127.0.0.1:${port}`);
  const { idp, upstream } = await startBenchIdentityProvider(dir, `http://127.0.0.1:${port}`);
  process.env.BENCH_CPU_PROF = gatehouseProfiles;
  const gatehouse = await startGatehouse(port, dir, urls, credentials, upstream, compiled);
  const floor = oauth
    ? await startOidcProviderFloor(compiled, CHAINS, profileArgs(floorProfiles))
    : await startNodeFloor(urls, compiled, profileArgs(floorProfiles));
  /** Runs the workload against one side for `durationSeconds`; resolves with the requests it completed. */
  type Load = (durationSeconds: number) => Promise<number>;
  const loads: Load[] = [];
  /** The measured windows, the floor's first. */
  const windows: Window[] = [];
  try {
    if (scenario) {
      for (const target of [floor as Target, gatehouse]) {
        loads.push(async (durationSeconds) =>
          (await runLoad({ url: target.url(scenario.backend), headers: { ...scenario.headers, ...target.headers(scenario.backend) }, body: scenario.body, connections: 16, durationSeconds })).total);
      }
    } else if (oauth === 'registration') {
      for (const { origin } of [floor as OidcProviderFloor, gatehouse]) {
        loads.push(async (durationSeconds) =>
          (await runLoad({ url: `${origin}/register`, headers: { 'content-type': 'application/json' }, body: registrationBody, connections: 16, durationSeconds })).total);
      }
    } else {
      const oidcFloor = floor as OidcProviderFloor;
      const clientId = await registerClient(gatehouse.origin);
      const browser = new CookieBrowser();
      const chains: RefreshChain[] = [];
      for (let i = 0; i < CHAINS; i++) chains.push({ clientId, refreshToken: await obtainRefreshToken(gatehouse.origin, clientId, `${gatehouse.origin}/canned`, browser) });
      const floorChains = oidcFloor.refreshTokens.map((refreshToken) => ({ clientId: oidcFloor.clientId, refreshToken }));
      loads.push(async (durationSeconds) => (await runRefreshLoad(oidcFloor.origin, floorChains, durationSeconds)).total);
      // A chain's token rotates with every grant; runRefreshLoad carries each chain's latest token over to the next run.
      loads.push(async (durationSeconds) => (await runRefreshLoad(gatehouse.origin, chains, durationSeconds)).total);
    }
    for (const load of loads) {
      await load(8);
      const from = nowMicros();
      const requests = await load(seconds);
      windows.push({ from, to: nowMicros(), requests });
    }
  } finally {
    // The profiles are written when the processes exit.
    await floor.stop();
    await gatehouse.stop();
    await idp.close();
  }
  const byArea = (url: string, name: string) => (url === '' && !name.startsWith('(') ? `(native) ${name}` : area(url, name));
  const perRequest = (totals: Map<string, number>, window: Window) => new Map([...totals].map(([key, micros]) => [key, micros / Math.max(1, window.requests)]));
  const [floorWindow, gatehouseWindow] = windows as [Window, Window];
  const floorAreas = perRequest(selfTime(await onlyProfile(floorProfiles), floorWindow, byArea), floorWindow);
  const gatehouseProfile = await onlyProfile(gatehouseProfiles);
  const gatehouseAreas = perRequest(selfTime(gatehouseProfile, gatehouseWindow, byArea), gatehouseWindow);

  const out = (text: string) => process.stdout.write(text);
  const floorName = oauth ? 'oidc-provider floor' : 'Node floor';
  out(`\n${workload}: ${seconds} s of full load after an 8 s warm-up; ${floorName} ${floorWindow.requests} requests, Gatehouse ${gatehouseWindow.requests}\n\n`);
  out(`| area (self time, main thread) | ${floorName} µs/request | Gatehouse µs/request | difference |\n|---|---:|---:|---:|\n`);
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

  if (zoom !== undefined) {
    // The functions of one area on both sides, largest difference first: where an area's difference sits.
    const inZoom = (url: string, name: string, line: number) => (byArea(url, name) === zoom ? `${name || '(anonymous)'} ${location(url, line)}` : undefined);
    const floorFunctions = perRequest(selfTime(await onlyProfile(floorProfiles), floorWindow, inZoom), floorWindow);
    const gatehouseFunctions = perRequest(selfTime(gatehouseProfile, gatehouseWindow, inZoom), gatehouseWindow);
    const names = [...new Set([...floorFunctions.keys(), ...gatehouseFunctions.keys()])];
    const difference = (name: string) => (gatehouseFunctions.get(name) ?? 0) - (floorFunctions.get(name) ?? 0);
    out(`\n| ${zoom}: function | ${floorName} µs/request | Gatehouse µs/request |\n|---|---:|---:|\n`);
    for (const name of names.sort((a, b) => difference(b) - difference(a)).slice(0, top)) {
      out(`| ${name} | ${(floorFunctions.get(name) ?? 0).toFixed(2)} | ${(gatehouseFunctions.get(name) ?? 0).toFixed(2)} |\n`);
    }
  }
} finally {
  await stopChild(backends);
  await rm(dir, { recursive: true, force: true });
}
