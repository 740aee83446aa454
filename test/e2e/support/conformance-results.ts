import { spawn } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/**
 * Runs the official conformance suite's `server` command for one requirement set and reads what it wrote: one folder
 * per scenario (`server-<scenario>-<timestamp>/checks.json`) and, on stdout, which scenarios the set does not score.
 */
const conformanceBin = resolve(import.meta.dirname, '..', '..', '..', 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');

export type RequirementSet = '2025-11-25' | '2026-07-28';

interface Check {
  id: string;
  status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'SKIPPED' | 'INFO';
  errorMessage?: string;
}

export interface ScenarioResult {
  /** `id: STATUS` of every check that is not INFO, sorted: what two runs must agree on. */
  verdicts: string[];
  failures: string[];
}

export interface ConformanceRun {
  scenarios: Map<string, ScenarioResult>;
  /** Scenarios the set runs but does not score (extensions, pending, added after release). */
  unscored: Set<string>;
  output: string;
}

export async function runServerConformance(url: string, set: RequirementSet, outputDir: string): Promise<ConformanceRun> {
  await rm(outputDir, { recursive: true, force: true });
  const child = spawn(process.execPath, [conformanceBin, 'server', '--url', url, '--requirements', set, '--output-dir', outputDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: string[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  await new Promise((done) => child.once('exit', done));
  const output = chunks.join('');
  return { scenarios: await readScenarios(outputDir), unscored: unscoredScenarios(output), output };
}

async function readScenarios(dir: string): Promise<Map<string, ScenarioResult>> {
  const scenarios = new Map<string, ScenarioResult>();
  for (const folder of await readdir(dir)) {
    const name = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(folder)?.[1];
    if (!name) continue;
    const checks = JSON.parse(await readFile(join(dir, folder, 'checks.json'), 'utf8')) as Check[];
    const scored = checks.filter((check) => check.status !== 'INFO');
    scenarios.set(name, {
      verdicts: scored.map((check) => `${check.id}: ${check.status}`).sort(),
      failures: scored.filter((check) => check.status === 'FAILURE').map((check) => `${check.id}: ${check.errorMessage ?? ''}`),
    });
  }
  return scenarios;
}

function unscoredScenarios(output: string): Set<string> {
  const section = output.split(/Not scored for [^\n]*\n/)[1] ?? '';
  return new Set([...section.matchAll(/^\s+[✓✗] (\S+) \(/gm)].map((match) => match[1] ?? ''));
}

/**
 * Scenario by scenario, where the two runs' verdicts differ. A check in `answeredByGateway` is one the gateway answers
 * itself, whatever the backend would: it must pass through the gateway (its direct verdict is the fixture's own).
 */
export function compareRuns(direct: ConformanceRun, gateway: ConformanceRun, answeredByGateway: ReadonlySet<string> = new Set()): string[] {
  const differences: string[] = [];
  const seen = new Set([...gateway.scenarios.values()].flatMap((result) => result.verdicts.map((verdict) => verdict.slice(0, verdict.indexOf(': ')))));
  for (const check of answeredByGateway) if (!seen.has(check)) differences.push(`${check}: the gateway's own answer was not checked through the gateway`);
  const judged = (verdicts: readonly string[]) => verdicts.filter((verdict) => !answeredByGateway.has(verdict.slice(0, verdict.indexOf(': '))));
  for (const name of new Set([...direct.scenarios.keys(), ...gateway.scenarios.keys()])) {
    const gatewayVerdicts = gateway.scenarios.get(name)?.verdicts ?? [];
    for (const verdict of gatewayVerdicts) {
      const check = verdict.slice(0, verdict.indexOf(': '));
      if (answeredByGateway.has(check) && !verdict.endsWith(': SUCCESS')) differences.push(`${name}: the gateway's own answer failed [${verdict}]`);
    }
    const left = judged(direct.scenarios.get(name)?.verdicts ?? ['(not run)']);
    const right = judged(gateway.scenarios.get(name)?.verdicts ?? ['(not run)']);
    if (JSON.stringify(left) === JSON.stringify(right)) continue;
    const onlyDirect = left.filter((verdict) => !right.includes(verdict));
    const onlyGateway = right.filter((verdict) => !left.includes(verdict));
    differences.push(`${name}: direct [${onlyDirect.join('; ')}] vs gateway [${onlyGateway.join('; ')}]`);
  }
  return differences.sort();
}
