import { openSync, closeSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { BackendUrls } from '../backends/main.ts';
import { spawnTracked, stopChild } from '../child-process.ts';
import type { CompiledTargets } from './compiled.ts';
import type { BenchCredentials } from './credentials.ts';
import { proxiedUrl, type BackendName, type Target } from './target.ts';
import { startTraceSink } from './trace-sink.ts';

/**
 * Gatehouse started as production starts it: the package build run with the container image's environment
 * (`NODE_OPTIONS`, `NODE_ENV=production`; `node dist/src/cli/main.js start --config <file>`, see compiled.ts) and `mode: production`,
 * a SQLite store and the key file in a temp dir, audit to the store, rate limits on, identity assertions, and the
 * default log level (info), its log lines written to a file as a service manager would collect them.
 *
 * Two settings differ from the defaults because the bench is one client and one IP sending thousands of requests
 * per second: the per-user and per-client route limits and the per-IP registration limit are set far above the
 * load, so the counters run on every request but never refuse one.
 */
export interface UpstreamSettings {
  issuer: string;
  scope: string;
  privateKeyFile: string;
  keyId: string;
}

const UNLIMITED = 1_000_000_000;

export function gatehouseConfig(port: number, dir: string, urls: BackendUrls, keyFile: string, upstream: UpstreamSettings): Record<string, unknown> {
  // The bench is one user and one client: every budget is set far above its load (the counters still run).
  const rateLimit = { perUserPerMinute: UNLIMITED, perClientPerMinute: UNLIMITED, streamsPerUser: UNLIMITED };
  const route = (path: string, backend: string, transports: string[]) => ({ path, backend, transports, rateLimit });
  return {
    mode: 'production',
    server: { host: '127.0.0.1', port, publicUrl: `http://127.0.0.1:${port}` },
    store: { type: 'sqlite', sqlitePath: join(dir, 'gatehouse.db') },
    keys: { source: 'file', file: keyFile },
    upstream: {
      type: 'oidc',
      issuer: upstream.issuer,
      clientId: 'gatehouse',
      clientAuth: { method: 'private_key_jwt', privateKeyFile: upstream.privateKeyFile, keyId: upstream.keyId },
      scopes: ['openid', 'profile', 'email', 'offline_access', upstream.scope],
    },
    authorization: { dynamicRegistration: { perIpPerHour: UNLIMITED } },
    routes: [
      route('/canned', urls.canned, ['streamable-http']),
      route('/json', urls.json, ['streamable-http']),
      route('/sse', urls.sse, ['streamable-http']),
      route('/hold', urls.hold, ['streamable-http']),
      route('/legacy', urls.legacy, ['sse']),
    ],
    audit: { output: 'store' },
    // Plain http on loopback: browser cookies without `Secure` (the consent and sign-in pages only), which production
    // allows on a loopback public URL with a warning.
    dev: { insecureCookies: true },
  };
}

export interface GatehouseTarget extends Target {
  origin: string;
}

export async function startGatehouse(
  port: number,
  dir: string,
  urls: BackendUrls,
  credentials: BenchCredentials,
  upstream: UpstreamSettings,
  compiled: CompiledTargets,
): Promise<GatehouseTarget> {
  const configFile = join(dir, 'gatehouse.yaml');
  await writeFile(configFile, stringify(gatehouseConfig(port, dir, urls, credentials.keyFile, upstream)));
  const logFile = join(dir, 'gatehouse.log');
  const log = openSync(logFile, 'a');
  // BENCH_CPU_PROF=<dir>: Gatehouse writes a V8 CPU profile there when it stops (open it in Chrome DevTools).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  // BENCH_HEAP_SNAPSHOT=<dir>: Gatehouse writes a heap snapshot there on SIGUSR2, which the streams part sends while
  // its streams are held (what each open stream keeps alive; summarise with bench/heap-summary.ts).
  if (process.env.BENCH_HEAP_SNAPSHOT) profile.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${process.env.BENCH_HEAP_SNAPSHOT}`);
  // BENCH_TRACING=1: OpenTelemetry tracing on (every request sampled, OTLP protobuf to a sink) — compare with a run without.
  const sink = process.env.BENCH_TRACING === '1' ? await startTraceSink() : undefined;
  const tracingEnv = sink ? { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_TRACES_SAMPLER: 'always_on', OTEL_SERVICE_NAME: 'gatehouse-bench' } : {};
  const child = spawnTracked(process.execPath, [...profile, compiled.gatehouseEntry, 'start', '--config', configFile], {
    stdio: ['ignore', log, log],
    env: { ...process.env, NODE_ENV: 'production', NODE_OPTIONS: compiled.gatehouseNodeOptions, ...tracingEnv },
  });
  closeSync(log);
  const origin = `http://127.0.0.1:${port}`;
  await waitUntilHealthy(origin, child.pid!, () => readFile(logFile, 'utf8').catch(() => ''));
  const tokens = await credentials.tokensFor(origin);
  return {
    name: sink ? 'gatehouse (tracing on)' : 'gatehouse',
    origin,
    url: (backend: BackendName) => proxiedUrl(origin, backend),
    headers: (backend: BackendName) => ({ authorization: `Bearer ${tokens(backend)}` }),
    pids: () => [child.pid!],
    stop: async () => {
      await stopChild(child);
      if (sink) {
        process.stdout.write(`tracing on: ${sink.exports()} OTLP exports received\n`);
        await sink.close();
      }
    },
  };
}

async function waitUntilHealthy(origin: string, pid: number, log: () => Promise<string>): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const ok = await fetch(`${origin}/healthz`).then(
      async (response) => (await response.body?.cancel(), response.ok),
      () => false,
    );
    if (ok) return;
    try {
      process.kill(pid, 0);
    } catch {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Gatehouse did not start:\n${(await log()).slice(-2000)}`);
}
