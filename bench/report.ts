import { readFile, writeFile } from 'node:fs/promises';
import type { ScenarioFigures, TargetFigures } from './measure-scenario.ts';
import type { StreamFigures } from './measure-streams.ts';
import type { OAuthFigures } from './measure-oauth.ts';
import { fmt, fmtSpread, type Spread } from './stats.ts';

/**
 * The bench's output: one table per scenario, the idle-streams table, the OAuth endpoints, the micro-benchmarks,
 * and every target of the issue stated as met / not met, so a note cannot overstate a run.
 */
export interface BenchResults {
  scenarios: ScenarioFigures[];
  streams: StreamFigures[];
  oauth: OAuthFigures | undefined;
  micro: Array<{ name: string; microsPerOp: number; iterations: number }>;
  skipped: string[];
}

const MB = 1024 * 1024;

function find(figures: ScenarioFigures | undefined, target: string): TargetFigures | undefined {
  return figures?.targets.find((row) => row.target === target);
}

export function scenarioTable(figures: ScenarioFigures): string {
  const direct = find(figures, 'direct');
  const lines = [
    `**${figures.scenario.title}**`,
    '',
    '| target | req/s | × direct | CPU µs/request | p50 / p99 (ms) | added p50 (ms) | added p99 (ms) | requests clear of kdamond: p99 / added p99 (ms) | slowest 1 % during kdamond (all requests) | failures |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const sampled = figures.daemonStretches !== undefined;
  for (const row of figures.targets) {
    const ratio = direct ? row.requestsPerSecond.median / direct.requestsPerSecond.median : Number.NaN;
    const isDirect = row.target === 'direct';
    lines.push(
      `| ${row.target} | ${fmtSpread(row.requestsPerSecond, 0)} | ${fmt(ratio)}× | ${isDirect ? '—' : fmtSpread(row.cpuMicrosPerRequest, 0)} | ` +
        `${fmt(row.p50Ms.median)} / ${fmt(row.p99Ms.median)} | ${isDirect ? '—' : fmtSpread(row.addedP50Ms)} | ${isDirect ? '—' : fmtSpread(row.addedP99Ms)} | ` +
        `${sampled ? `${fmt(row.p99ClearMs.median)} / ${isDirect ? '—' : fmtSpread(row.addedP99ClearMs)}` : '—'} | ` +
        `${sampled ? `${row.slowestDuringDaemon} of ${row.slowest} (${fmt(row.shareDuringDaemon * 100, 1)} %)` : '—'} | ${row.failures} |`,
    );
  }
  if (figures.daemonStretches) {
    lines.push(
      '',
      `The machine's memory daemon (kdamond) ran in ${figures.daemonStretches.count} stretches during these latency runs, ${fmt(figures.daemonStretches.ranMs, 0)} ms of CPU in all. ` +
        'A request is "during kdamond" when its span meets one of them; "(all requests)" is the median share of each target\'s requests that did.',
    );
  }
  return lines.join('\n');
}

export function streamsTable(rows: StreamFigures[], count: number): string {
  const lines = [
    `| ${count} idle SSE streams through | opened (failed) | RSS idle | RSS peak | per stream above idle |`,
    '|---|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    const perStream = row.opened > 0 ? (row.peakRss - row.idleRss) / 1024 / row.opened : Number.NaN;
    lines.push(`| ${row.target} | ${row.opened} (${row.failed}) | ${fmt(row.idleRss / MB, 0)} MB | ${fmt(row.peakRss / MB, 0)} MB | ${fmt(perStream, 1)} KB |`);
  }
  return lines.join('\n');
}

export function oauthTable(oauth: OAuthFigures): string {
  const row = (label: string, ours: Spread, ourCpu: Spread, floor: Spread, floorCpu: Spread) =>
    `| ${label} | ${fmtSpread(ours, 0)} | ${fmtSpread(ourCpu, 0)} | ${fmtSpread(floor, 0)} | ${fmtSpread(floorCpu, 0)} | ${fmt(ours.median / floor.median)}× |`;
  return [
    '| OAuth endpoint | Gatehouse (SQLite) per second | Gatehouse CPU µs per call | oidc-provider floor per second | floor CPU µs per call | Gatehouse ÷ floor, per second |',
    '|---|---:|---:|---:|---:|---:|',
    row('DCR registrations (RFC 7591)', oauth.registrationsPerSecond, oauth.registrationCpuMicros, oauth.floor.registrationsPerSecond, oauth.floor.registrationCpuMicros),
    row('refresh-token grants (rotating)', oauth.refreshesPerSecond, oauth.refreshCpuMicros, oauth.floor.refreshesPerSecond, oauth.floor.refreshCpuMicros),
    '',
    'The oidc-provider floor is the library Gatehouse\'s authorization server is built on, alone on `node:http` with a',
    'Map for a store (no Fastify, hooks, rate limits, logging or metrics): what these endpoints cannot beat while it serves them.',
  ].join('\n');
}

export function microTable(micro: BenchResults['micro']): string {
  if (micro.length === 0) return '_No micro-benchmarks registered (bench/micro.ts)._';
  return ['| micro-benchmark (bench/micro.ts) | µs/op | iterations |', '|---|---:|---:|', ...micro.map((row) => `| ${row.name} | ${fmt(row.microsPerOp, 3)} | ${row.iterations} |`)].join('\n');
}

/**
 * The same figure for the floor that checks nothing, from the same run: the Node floor (a bare `node:http` + undici
 * pass-through), or for the OAuth endpoints the oidc-provider floor. A target the floor misses too is one no Node
 * gateway meets on this machine in that run; Gatehouse's own cost there is how far it is from the floor's figure,
 * said on the line. One the floor meets and Gatehouse misses is Gatehouse's own to close.
 */
interface Reference {
  name: string;
  value: number;
}

/** The issue's targets for Gatehouse, each checked against this run's medians, beside the floor's figure where it has one. */
export function verdicts(results: BenchResults): string[] {
  const lines: string[] = [];
  const missed = { floorMeets: 0, floorMisses: 0, noFloor: 0 };
  const verdict = (label: string, value: number, limit: number, atMost: boolean, unit: string, missing?: string, note = '', reference?: Reference) => {
    if (missing) return lines.push(`- ${label}: not measured (${missing})`);
    if (!Number.isFinite(value)) return lines.push(`- ${label}: not measured`);
    const meets = (figure: number) => (atMost ? figure <= limit : figure >= limit);
    const met = meets(value);
    let beside = '';
    if (reference && Number.isFinite(reference.value)) {
      const floorMeets = meets(reference.value);
      // Latencies are added to the floor's; every other figure is a multiple of it.
      const distance =
        unit !== ' ms'
          ? `${fmt(value / reference.value)}× the floor's`
          : `${fmt(Math.abs(value - reference.value))} ms ${value >= reference.value ? 'over' : 'under'} the floor's`;
      beside = `; ${reference.name}: ${fmt(reference.value)}${unit}, ${floorMeets ? 'meets it' : `misses it too (Gatehouse ${distance})`}`;
      if (!met) missed[floorMeets ? 'floorMeets' : 'floorMisses']++;
    } else if (!met) {
      // No reference at all: a target measured against the floor itself (CPU ≤ 1.5× it), which the floor meets.
      missed[reference ? 'noFloor' : 'floorMeets']++;
    }
    lines.push(`- ${label}: ${fmt(value)}${unit} (target ${atMost ? '≤' : '≥'} ${limit}${unit}): **${met ? 'met' : 'not met'}**${note}${beside}`);
  };
  const figure = (scenario: string, target: string, field: 'cpuMicrosPerRequest' | 'requestsPerSecond' | 'addedP50Ms' | 'addedP99Ms') =>
    find(
      results.scenarios.find((entry) => entry.scenario.key === scenario),
      target,
    )?.[field].median ?? Number.NaN;
  const ratio = (scenario: string, target: string, reference: string, field: 'cpuMicrosPerRequest' | 'requestsPerSecond') =>
    figure(scenario, target, field) / figure(scenario, reference, field);
  const nodeFloor = (value: number): Reference => ({ name: 'the Node floor', value });
  const skippedNginx = results.skipped.some((name) => name.startsWith('nginx')) ? 'nginx not installed' : undefined;
  verdict('canned: Gatehouse CPU/request vs Node floor', ratio('canned', 'gatehouse', 'node floor', 'cpuMicrosPerRequest'), 1.5, true, '×');
  for (const { scenario } of results.scenarios) {
    const key = scenario.key;
    verdict(`${key}: Gatehouse CPU/request vs nginx`, ratio(key, 'gatehouse', 'nginx', 'cpuMicrosPerRequest'), 4, true, '×', skippedNginx, '', nodeFloor(ratio(key, 'node floor', 'nginx', 'cpuMicrosPerRequest')));
  }
  verdict('canned: Gatehouse throughput vs Express peer', ratio('canned', 'gatehouse', 'express peer', 'requestsPerSecond'), 2, false, '×', undefined, '', nodeFloor(ratio('canned', 'node floor', 'express peer', 'requestsPerSecond')));
  for (const [key, label, limit] of [['json', 'throughput', 0.95], ['sse', 'throughput', 0.95], ['legacy', 'POSTs/s', 0.8]] as const) {
    verdict(`${key}: Gatehouse ${label} vs direct`, ratio(key, 'gatehouse', 'direct', 'requestsPerSecond'), limit, false, '×', undefined, '', nodeFloor(ratio(key, 'node floor', 'direct', 'requestsPerSecond')));
  }
  for (const figures of results.scenarios) {
    const key = figures.scenario.key;
    const ours = find(figures, 'gatehouse');
    verdict(`${key}: Gatehouse added latency p50`, ours?.addedP50Ms.median ?? Number.NaN, 0.2, true, ' ms', undefined, '', nodeFloor(figure(key, 'node floor', 'addedP50Ms')));
    // The verdict is on the plain p99; the figure for the requests clear of the machine's memory daemon is said beside it.
    const clear = figures.daemonStretches && ours ? `; ${fmt(ours.addedP99ClearMs.median)} ms added p99 for the requests clear of the machine's kdamond` : '';
    verdict(`${key}: Gatehouse added latency p99`, ours?.addedP99Ms.median ?? Number.NaN, 1, true, ' ms', undefined, clear, nodeFloor(figure(key, 'node floor', 'addedP99Ms')));
  }
  const streams = results.streams.find((row) => row.target === 'gatehouse');
  const floorStreams = results.streams.find((row) => row.target === 'node floor');
  const perStream = (row: StreamFigures | undefined) => (row && row.opened > 0 ? (row.peakRss - row.idleRss) / 1024 / row.opened : Number.NaN);
  if (streams) {
    verdict(`Gatehouse RSS with ${streams.opened} idle streams`, streams.peakRss / MB, 300, true, ' MB', undefined, '', nodeFloor((floorStreams?.peakRss ?? Number.NaN) / MB));
    verdict('Gatehouse RSS per idle stream above idle', perStream(streams), 15, true, ' KB', undefined, '', nodeFloor(perStream(floorStreams)));
    verdict('Gatehouse idle RSS', streams.idleRss / MB, 120, true, ' MB', undefined, '', nodeFloor((floorStreams?.idleRss ?? Number.NaN) / MB));
  }
  const providerFloor = (rate: Spread | undefined): Reference => ({ name: 'the oidc-provider floor', value: rate?.median ?? Number.NaN });
  verdict('refresh-token grants/s', results.oauth?.refreshesPerSecond.median ?? Number.NaN, 3000, false, '/s', undefined, '', providerFloor(results.oauth?.floor.refreshesPerSecond));
  verdict('DCR registrations/s', results.oauth?.registrationsPerSecond.median ?? Number.NaN, 3000, false, '/s', undefined, '', providerFloor(results.oauth?.floor.registrationsPerSecond));
  const notMet = missed.floorMeets + missed.floorMisses + missed.noFloor;
  lines.push(
    '',
    notMet === 0
      ? 'Every target measured was met in this run.'
      : `Not met in this run: ${notMet}. Of them, the floor beside them (which checks nothing) meets ${missed.floorMeets}, and misses ${missed.floorMisses} too: ` +
          'no Node gateway meets those on this machine in this run, and what Gatehouse adds there is its distance from the floor, on each line' +
          (missed.noFloor > 0 ? `; ${missed.noFloor} had no floor figure in this run.` : '.'),
  );
  return lines;
}

export function renderResults(results: BenchResults, streamCount: number): string {
  const sections = [
    ...results.scenarios.map(scenarioTable),
    streamsTable(results.streams, streamCount),
    results.oauth ? oauthTable(results.oauth) : '_OAuth endpoints: not measured._',
    `Micro-benchmarks (${results.micro.length > 0 ? 'extra figures, one function run N times in the bench process' : 'place for extra figures'}):\n\n${microTable(results.micro)}`,
    `Targets (Gatehouse, medians of this run):\n\n${verdicts(results).join('\n')}`,
  ];
  if (results.skipped.length > 0) sections.unshift(`Skipped: ${results.skipped.join('; ')}.`);
  return sections.join('\n\n');
}

const BEGIN = '<!-- bench:begin (written by npm run bench) -->';
const END = '<!-- bench:end -->';

/** Replaces only the block between the markers, so the method and analysis written around it survive a re-run. */
export async function writeDocsBlock(path: string, header: string, body: string): Promise<void> {
  const block = `${BEGIN}\n${header}\n\n${body}\n${END}`;
  const current = await readFile(path, 'utf8').catch(() => '');
  const start = current.indexOf(BEGIN);
  const end = current.indexOf(END);
  const next = start >= 0 && end > start ? current.slice(0, start) + block + current.slice(end + END.length) : `# Performance\n\n${block}\n`;
  await writeFile(path, next);
}
