import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLegacySession } from './legacy-session.ts';
import { measureOAuth } from './measure-oauth.ts';
import { findMemoryDaemons } from './kernel-stalls.ts';
import { measureScenario, type Endpoints, type ScenarioFigures } from './measure-scenario.ts';
import { measureStreams, type StreamFigures } from './measure-streams.ts';
import { measureDpopVerification } from './dpop-micro.ts';
import { MICRO_BENCHMARKS, runMicroBenchmarks } from './micro.ts';
import { renderResults, writeDocsBlock } from './report.ts';
import { SCENARIOS } from './scenarios.ts';
import { benchSettings } from './settings.ts';
import { startAllTargets } from './targets/start-all.ts';

/**
 * `npm run bench`: Gatehouse and its anchors measured in one run, on loopback, each in its own process — direct (no
 * proxy), nginx, the Express + SDK `requireBearerAuth` + `http-proxy-middleware` peer, the Node floor, and
 * Gatehouse started by its CLI in production mode — on the canned, SDK-JSON, SDK-SSE and legacy HTTP+SSE backends;
 * then idle SSE streams per target, Gatehouse's OAuth endpoints and the micro-benchmarks. Prints the results and
 * rewrites the measured block of docs/performance.md (not in quick mode). Knobs: see settings.ts.
 */
const settings = benchSettings();
const dir = await mkdtemp(join(tmpdir(), 'gatehouse-bench-'));
const loadBefore = loadavg()[0] ?? 0;
const started = Date.now();
const log = (text: string) => process.stderr.write(`${text}\n`);

const bench = await startAllTargets(dir, settings.streams);
try {
  for (const skipped of bench.skipped) log(`skipped: ${skipped}`);
  // Streams first, on freshly started targets: the idle RSS is then the RSS of a target that has served nothing.
  const streams: StreamFigures[] = [];
  const measured = bench.targets.filter((target) => target.name === 'direct' || !settings.targets || settings.targets.has(target.name.replace(/ \(.*\)$/, '')));
  for (const target of settings.parts.has('streams') ? measured.filter((candidate) => candidate.name !== 'direct') : []) {
    log(`streams: ${settings.streams} through ${target.name}`);
    streams.push(await measureStreams(target, settings.streams));
  }

  const scenarios: ScenarioFigures[] = [];
  // The machine's memory daemon, whose runs the latency runs record (kernel-stalls.ts); none on most machines.
  const daemons = findMemoryDaemons();
  const scenarioList = settings.parts.has('scenarios') ? SCENARIOS.filter((scenario) => !settings.scenarios || settings.scenarios.has(scenario.key)) : [];
  for (const scenario of scenarioList) {
    const endpoints: Endpoints = new Map();
    const sessions = new AbortController();
    for (const target of measured) {
      const headers = target.headers(scenario.backend);
      const url = scenario.backend === 'legacy' ? await openLegacySession(target.url('legacy'), headers, sessions) : target.url(scenario.backend);
      endpoints.set(target, { url, headers });
    }
    scenarios.push(await measureScenario(scenario, measured, endpoints, settings, scenarios.length, daemons));
    sessions.abort();
  }

  const oauth = settings.parts.has('oauth') ? await measureOAuth(bench.gatehouse, bench.compiled, settings) : undefined;
  if (settings.parts.has('micro')) log('micro-benchmarks');
  const scale = settings.quick ? 0.1 : 1;
  const micro = settings.parts.has('micro') ? [...runMicroBenchmarks(MICRO_BENCHMARKS, scale), ...(await measureDpopVerification(scale))] : [];

  const body = renderResults({ scenarios, streams, oauth, micro, skipped: bench.skipped }, settings.streams);
  const loadAfter = loadavg()[0] ?? 0;
  const header =
    `Last run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ` +
    `Node ${process.version}, loopback only; ${settings.reps} repetitions of ${settings.seconds} s per figure, shown as median (min–max); ` +
    `latency at ${settings.latencyRate} req/s; whole run ${Math.round((Date.now() - started) / 1000)} s; ` +
    `1-minute load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after.` +
    (settings.streamsNote ? `\nIdle streams: ${settings.streamsNote}.` : '') +
    (daemons.length > 0
      ? `\nKernel memory daemon: ${daemons.map((daemon) => `${daemon.name}${daemon.settings ? ` (${daemon.settings})` : ''}`).join(', ')}; the stretches in which it ran were recorded during the latency runs.`
      : '\nKernel memory daemon: none found (no kdamond thread); the latency columns about it are empty.');
  process.stdout.write(`\n${header}\n\n${body}\n`);
  if (!settings.quick && !settings.partial) await writeDocsBlock(join(import.meta.dirname, '..', 'docs', 'performance.md'), header, body);
} finally {
  await bench.stop();
  await rm(dir, { recursive: true, force: true });
}
