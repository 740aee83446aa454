import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';

/**
 * `node bench/profile-summary.ts <file.cpuprofile> [top] [skip-seconds]`: the top self-time entries of a V8 CPU
 * profile (as written by `BENCH_CPU_PROF`), summed by function and location, as a share of the busy samples (all but
 * `(idle)`), plus a summary by area (our code per src/ folder, each dependency, Node internals, GC, native).
 * `skip-seconds` leaves out the first seconds of the profile (start-up: module loading, route compilation), so
 * what remains is the process under load. What docs/performance.md's profile tables are made of.
 */
export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  /** Monotonic clock, µs (the clock of `process.hrtime` on Linux). */
  startTime?: number;
  samples?: number[];
  timeDeltas?: number[];
}

const root = relative(process.cwd(), new URL('..', import.meta.url).pathname) || '.';

export function location(url: string, line: number): string {
  if (url === '') return '';
  const path = url.replace(/^file:\/\//, '');
  const short = path.includes('/node_modules/') ? path.slice(path.lastIndexOf('/node_modules/') + 14) : relative(root, path);
  return `${short}:${line + 1}`;
}

export function area(url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)';
  const path = url.replace(/^file:\/\//, '');
  const dependency = /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (dependency) return dependency[1]!;
  if (path.startsWith('node:')) return 'node internals';
  const ours = /\/(src|bench)\/([^/]+)\//.exec(path);
  return ours ? `${ours[1]}/${ours[2]}` : 'other';
}

async function main(): Promise<void> {
  const [file, topArg, skipArg] = process.argv.slice(2);
  const skipMicros = Number(skipArg ?? 0) * 1e6;
  if (!file) throw new Error('usage: node bench/profile-summary.ts <file.cpuprofile> [top]');
  const top = Number(topArg ?? 25);
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  // Sample time per node (µs), from the sample list when present (hitCount otherwise, at a nominal interval).
  const time = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    let elapsed = 0;
    profile.samples.forEach((id, index) => {
      const delta = profile.timeDeltas![index] ?? 0;
      elapsed += delta;
      if (elapsed >= skipMicros) time.set(id, (time.get(id) ?? 0) + delta);
    });
  } else {
    for (const node of profile.nodes) time.set(node.id, node.hitCount ?? 0);
  }
  const functions = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, micros] of time) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    total += micros;
    if (functionName === '(idle)') idle += micros;
    const name = `${functionName || '(anonymous)'} ${location(url, lineNumber)}`.trim();
    functions.set(name, (functions.get(name) ?? 0) + micros);
    areas.set(area(url, functionName), (areas.get(area(url, functionName)) ?? 0) + micros);
  }
  const busy = total - idle;
  const pct = (micros: number, of: number) => `${((100 * micros) / of).toFixed(1)} %`;
  process.stdout.write(`samples: ${(total / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s (${pct(busy, total)})\n\n`);
  process.stdout.write('| self time (function, location) | % of busy |\n|---|---:|\n');
  for (const [name, micros] of [...functions].filter(([name]) => !name.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`| ${name} | ${pct(micros, busy)} |\n`);
  }
  process.stdout.write('\n| area | % of busy |\n|---|---:|\n');
  for (const [name, micros] of [...areas].filter(([name]) => name !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`| ${name} | ${pct(micros, busy)} |\n`);
  }
}

if (import.meta.main) await main();
