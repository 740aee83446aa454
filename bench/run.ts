import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { SignJWT } from 'jose';
import { generateKeySet, serializeKeySet } from '../src/keys/key-set.ts';
import { keyringFromKeySet } from '../src/keys/key-set-keyring.ts';
import { runLoad, type LoadResult } from './load.ts';
import { openSseStreams } from './sse-streams.ts';

/**
 * `npm run bench`: the same load sent straight to SDK-built backends and through the gateway, in one run, for
 * `tools/call` answered with JSON, answered with SSE, and over the legacy HTTP+SSE transport; then the gateway's peak
 * RSS while it holds 5,000 open SSE streams. Loopback only; every phase is bounded in time. Prints a table and writes
 * the measured block of docs/performance.md.
 *
 * Processes: backends (one child), gateway (another child), load generator (this process), so the gateway's CPU and
 * memory are its own. BENCH_SECONDS sets the length of each measured run (default 5), BENCH_STREAMS the stream count,
 * BENCH_CPU_PROF a directory for the gateway's CPU profiles.
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const streamCount = Number(process.env.BENCH_STREAMS ?? 5_000);
const node = process.execPath;
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((child) => child.kill('SIGKILL')));

async function startBackends(): Promise<{ json: string; sse: string; legacy: string; hold: string }> {
  const child = spawn(node, ['bench/fixtures.ts'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  return JSON.parse(line) as { json: string; sse: string; legacy: string; hold: string };
}

async function startGateway(config: unknown, keySet: string): Promise<{ url: string; child: ChildProcess }> {
  // BENCH_CPU_PROF=<dir>: the gateway writes a V8 CPU profile there when it stops (open it in Chrome DevTools).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  const child = fork('bench/gateway.ts', [], {
    execPath: node,
    execArgv: [...process.execArgv, ...profile],
    env: { ...process.env, BENCH_CONFIG: JSON.stringify(config), BENCH_KEYSET: keySet },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  children.push(child);
  const [message] = (await once(child, 'message')) as [{ ready: string }];
  return { url: message.ready, child };
}

async function cpuMicrosOf(child: ChildProcess): Promise<number> {
  child.send('cpu');
  const [message] = (await once(child, 'message')) as [{ cpuMicros: number }];
  return message.cpuMicros;
}

async function memoryOf(child: ChildProcess, reset = false): Promise<{ rss: number; peakRss: number }> {
  if (reset) child.send('reset-peak');
  child.send('memory');
  const [message] = (await once(child, 'message')) as [{ rss: number; peakRss: number }];
  return message;
}

/**
 * The v2 SDK backend answers a 2025-11-25 request (the stateless fallback) with an SSE stream and a 2026-07-28
 * request (per-request `_meta` envelope, mirrored `Mcp-Method`/`Mcp-Name`) with plain JSON, so the two revisions
 * give the JSON and the SSE scenario against the same kind of backend.
 */
const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello' } } });
const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' };
const modernCall = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: {
    name: 'echo',
    arguments: { text: 'hello' },
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  },
});
const modernHeaders = { ...mcpHeaders, 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'echo' };

/** Opens a legacy SSE session (endpoint event + initialize) and returns the message URL; the stream is drained. */
async function openLegacySession(sseUrl: string, headers: Record<string, string>, controller: AbortController): Promise<string> {
  const response = await fetch(sseUrl, { headers: { ...headers, accept: 'text/event-stream' }, signal: controller.signal });
  const reader = response.body!.getReader();
  let text = '';
  while (!/event: endpoint\r?\ndata: (\S+)/.test(text)) text += Buffer.from((await reader.read()).value ?? []).toString();
  const endpoint = new URL(/event: endpoint\r?\ndata: (\S+)/.exec(text)![1]!, sseUrl).href;
  void (async () => {
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return;
  })();
  const post = (body: unknown) => fetch(endpoint, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } });
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return endpoint;
}

interface Row {
  scenario: string;
  /** Every throughput run, req/s, in the order run: the spread within one run of the bench. */
  directRuns: number[];
  gatewayRuns: number[];
  direct: LoadResult;
  gateway: LoadResult;
  directLatency: LoadResult;
  gatewayLatency: LoadResult;
  /** Gateway CPU time (user + system) per proxied request during its throughput runs, µs. */
  gatewayCpuMicrosPerRequest: number;
}

async function measure(
  gatewayProcess: ChildProcess,
  scenario: string,
  direct: { url: string; headers: Record<string, string> },
  viaGateway: { url: string; headers: Record<string, string> },
  body = call,
): Promise<Row> {
  const run = (target: typeof direct, rate?: number) =>
    runLoad({ url: target.url, headers: target.headers, body, connections: rate ? 4 : 16, durationSeconds: seconds, overallRate: rate });
  const best = (a: LoadResult, b: LoadResult) => (a.requestsPerSecond >= b.requestsPerSecond ? a : b);
  process.stderr.write(`${scenario}: warming up\n`);
  await runLoad({ url: direct.url, headers: direct.headers, body, connections: 8, durationSeconds: 2 });
  await runLoad({ url: viaGateway.url, headers: viaGateway.headers, body, connections: 8, durationSeconds: 2 });
  // Alternating runs, best of two each: the machine's other load drifts, and alternating spreads it over both sides.
  process.stderr.write(`${scenario}: throughput\n`);
  let cpuMicros = 0;
  let proxied = 0;
  const runGateway = async () => {
    const before = await cpuMicrosOf(gatewayProcess);
    const result = await run(viaGateway);
    cpuMicros += (await cpuMicrosOf(gatewayProcess)) - before;
    proxied += result.total + result.failures;
    return result;
  };
  const directRuns: LoadResult[] = [];
  const gatewayRuns: LoadResult[] = [];
  for (let round = 0; round < 2; round++) {
    directRuns.push(await run(direct));
    gatewayRuns.push(await runGateway());
  }
  const directMax = directRuns.reduce(best);
  const gatewayMax = gatewayRuns.reduce(best);
  process.stderr.write(`${scenario}: latency at a moderate fixed rate\n`);
  const calmer = (a: LoadResult, b: LoadResult) => (a.p50Ms <= b.p50Ms ? a : b);
  let directLatency = await run(direct, 300);
  let gatewayLatency = await run(viaGateway, 300);
  directLatency = calmer(directLatency, await run(direct, 300));
  gatewayLatency = calmer(gatewayLatency, await run(viaGateway, 300));
  const rates = (runs: LoadResult[]) => runs.map((result) => result.requestsPerSecond);
  const row: Row = {
    scenario,
    directRuns: rates(directRuns),
    gatewayRuns: rates(gatewayRuns),
    direct: directMax,
    gateway: gatewayMax,
    directLatency,
    gatewayLatency,
    gatewayCpuMicrosPerRequest: cpuMicros / proxied,
  };
  process.stderr.write(`${scenario}: ${summary(row)}\n`);
  return row;
}

/** One line per scenario, printed as soon as it is measured. */
function summary(row: Row): string {
  const runs = (values: number[]) => values.map((value) => fmt(value, 0)).join(', ');
  return (
    `direct ${runs(row.directRuns)} req/s, gateway ${runs(row.gatewayRuns)} req/s, ` +
    `ratio ${fmt(row.gateway.requestsPerSecond / row.direct.requestsPerSecond)}×, ` +
    `added p50 ${fmt(row.gatewayLatency.p50Ms - row.directLatency.p50Ms)} ms, ` +
    `${fmt(row.gatewayCpuMicrosPerRequest, 0)} µs gateway CPU per request`
  );
}

/** Each scenario against the targets, stated plainly so the note cannot overstate a run. */
function verdicts(rows: Row[]): string {
  return rows
    .map((row) => {
      const ratio = row.gateway.requestsPerSecond / row.direct.requestsPerSecond;
      const added = row.gatewayLatency.p50Ms - row.directLatency.p50Ms;
      return (
        `- ${row.scenario}: throughput ${fmt(ratio)}× direct (target ≥ 0.8×: ${ratio >= 0.8 ? 'met' : 'not met'}), ` +
        `added p50 ${fmt(added)} ms (target ≤ 1 ms: ${added <= 1 ? 'met' : 'not met'}).`
      );
    })
    .join('\n');
}

const fmt = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

function table(rows: Row[]): string {
  const lines = [
    '| scenario | direct req/s (runs) | gateway req/s (runs) | ratio | direct p50 / p99 (ms) | gateway p50 / p99 (ms) | added p50 / p99 (ms) | gateway CPU per request | failures |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    const failures = row.direct.failures + row.gateway.failures + row.directLatency.failures + row.gatewayLatency.failures;
    lines.push(
      `| ${row.scenario} | ${fmt(row.direct.requestsPerSecond, 0)} (${row.directRuns.map((v) => fmt(v, 0)).join(', ')}) | ` +
        `${fmt(row.gateway.requestsPerSecond, 0)} (${row.gatewayRuns.map((v) => fmt(v, 0)).join(', ')}) | ` +
        `${fmt(row.gateway.requestsPerSecond / row.direct.requestsPerSecond)}× | ` +
        `${fmt(row.directLatency.p50Ms)} / ${fmt(row.directLatency.p99Ms)} | ${fmt(row.gatewayLatency.p50Ms)} / ${fmt(row.gatewayLatency.p99Ms)} | ` +
        `${fmt(row.gatewayLatency.p50Ms - row.directLatency.p50Ms)} / ${fmt(row.gatewayLatency.p99Ms - row.directLatency.p99Ms)} | ` +
        `${fmt(row.gatewayCpuMicrosPerRequest, 0)} µs | ${failures} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const loadBefore = loadavg()[0] ?? 0;
  const backends = await startBackends();
  const keySet = generateKeySet({ now: Date.now(), signingAlgorithm: 'ES256' });
  const keyring = keyringFromKeySet(keySet);
  const unlimited = { perUserPerMinute: 1_000_000_000, perClientPerMinute: 1_000_000_000 };
  const config = {
    server: { port: 0 },
    audit: { output: 'store', retentionDays: 1 },
    routes: [
      { path: '/json', backend: backends.json, transports: ['streamable-http'], rateLimit: unlimited },
      { path: '/sse', backend: backends.sse, transports: ['streamable-http'], rateLimit: unlimited },
      { path: '/legacy', backend: backends.legacy, transports: ['sse'], rateLimit: unlimited },
      { path: '/hold', backend: backends.hold, transports: ['streamable-http'], rateLimit: unlimited },
    ],
  };
  const gateway = await startGateway(config, serializeKeySet(keySet));
  const key = keyring.currentSigningKey();
  const token = (path: string) =>
    new SignJWT({ client_id: 'bench', scope: 'mcp:tools', gid: 'bench-grant' })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(gateway.url)
      .setAudience(gateway.url + path)
      .setSubject('bench/user')
      .setJti(`bench-${path}`)
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(key.privateKey);
  const auth = async (path: string) => ({ ...mcpHeaders, authorization: `Bearer ${await token(path)}` });

  const rows: Row[] = [];
  rows.push(
    await measure(
      gateway.child,
      'tools/call, JSON response (2026-07-28)',
      { url: backends.json, headers: modernHeaders },
      { url: gateway.url + '/json', headers: { ...(await auth('/json')), ...modernHeaders } },
      modernCall,
    ),
  );
  rows.push(await measure(gateway.child, 'tools/call, SSE response (2025-11-25)', { url: backends.sse, headers: mcpHeaders }, { url: gateway.url + '/sse', headers: await auth('/sse') }));

  const streams = new AbortController();
  const legacyAuth = await auth('/legacy');
  const directEndpoint = await openLegacySession(`${backends.legacy}/sse`, {}, streams);
  const gatewayEndpoint = await openLegacySession(`${gateway.url}/legacy/sse`, { authorization: legacyAuth.authorization }, streams);
  rows.push(
    await measure(
      gateway.child,
      'legacy HTTP+SSE, tools/call POST (202)',
      { url: directEndpoint, headers: { 'content-type': 'application/json' } },
      { url: gatewayEndpoint, headers: { 'content-type': 'application/json', authorization: legacyAuth.authorization } },
    ),
  );
  streams.abort();

  // A fresh gateway process for the memory run, so the figure is about streams, not the heap grown by the load above.
  for (const child of children.splice(1)) child.kill('SIGTERM');
  process.stderr.write(`opening ${streamCount} SSE streams through a fresh gateway\n`);
  const streamGateway = await startGateway(config, serializeKeySet(keySet));
  const holdToken = await new SignJWT({ client_id: 'bench', scope: 'mcp:tools', gid: 'bench-grant' })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
    .setIssuer(streamGateway.url)
    .setAudience(`${streamGateway.url}/hold`)
    .setSubject('bench/user')
    .setJti('bench-hold')
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(key.privateKey);
  const idle = await memoryOf(streamGateway.child, true);
  const open = await openSseStreams(`${streamGateway.url}/hold`, { authorization: `Bearer ${holdToken}` }, streamCount, 120_000);
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const held = await memoryOf(streamGateway.child);
  open.close();

  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);
  const results = `${table(rows)}\n\n${verdicts(rows)}`;
  const memory =
    `| open SSE streams through the gateway | gateway RSS before | gateway peak RSS | per stream |\n|---:|---:|---:|---:|\n` +
    `| ${open.opened} of ${streamCount} (${open.failed} failed) | ${mb(idle.rss)} MB | ${mb(held.peakRss)} MB | ` +
    `${open.opened > 0 ? ((held.peakRss - idle.rss) / 1024 / open.opened).toFixed(1) : 'n/a'} KB |`;
  process.stdout.write(`\n${results}\n\n${memory}\n`);
  const load = `1-minute load average ${loadBefore.toFixed(1)} before the run, ${(loadavg()[0] ?? 0).toFixed(1)} after`;
  process.stdout.write(`${load}\n`);
  await writeReport(results, memory, load);
  for (const child of children) child.kill('SIGTERM');
}

const BEGIN = '<!-- bench:begin (written by npm run bench) -->';
const END = '<!-- bench:end -->';

/**
 * The measured block of docs/performance.md. Only the text between the markers is replaced, so the method and the
 * analysis written around it (profile findings, variance across runs) survive a re-run.
 */
async function writeReport(results: string, memory: string, load: string): Promise<void> {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const block = `${BEGIN}
Last run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cpus().length} × ${cpu}, Node ${process.version},
loopback only, ${seconds} s per measured run (${load}).

${results}

${memory}
${END}`;
  const path = 'docs/performance.md';
  const current = await readFile(path, 'utf8').catch(() => '');
  const start = current.indexOf(BEGIN);
  const end = current.indexOf(END);
  const next = start >= 0 && end > start ? current.slice(0, start) + block + current.slice(end + END.length) : `# Performance\n\n${block}\n`;
  await writeFile(path, next);
}

await main();
